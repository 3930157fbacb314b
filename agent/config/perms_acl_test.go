package config

import (
	"strings"
	"testing"
)

func TestACLProblem(t *testing.T) {
	const (
		system = "S-1-5-18"
		admins = "S-1-5-32-544"
		users  = "S-1-5-32-545"
		alice  = "S-1-5-21-1-2-3-1001"
		owner  = "S-1-3-0" // CREATOR OWNER
	)
	full := uint32(0x1f01ff)   // FILE_ALL_ACCESS
	read := uint32(0x1200a9)   // FILE_GENERIC_READ | FILE_EXECUTE
	addSub := uint32(0x100004) // SYNCHRONIZE | FILE_ADD_SUBDIRECTORY (Users on C:\)
	tests := []struct {
		name   string
		owner  string
		dacl   []aclEntry
		parent bool
		want   string // substring; "" = accepted
	}{
		{"admins and system only", admins, []aclEntry{{admins, true, full, false}, {system, true, full, false}, {users, true, read, false}}, false, ""},
		{"users may write", admins, []aclEntry{{admins, true, full, false}, {users, true, read | fileWriteData, false}}, false, "grants S-1-5-32-545 write access"},
		{"generic write", system, []aclEntry{{alice, true, genericWrite, false}}, false, "grants S-1-5-21-1-2-3-1001"},
		{"change permissions", system, []aclEntry{{alice, true, read | accessWriteDAC, false}}, false, "icacls"},
		{"owned by a user", alice, []aclEntry{{admins, true, full, false}}, false, "owned by S-1-5-21-1-2-3-1001"},
		{"deny entries are not grants", admins, []aclEntry{{users, false, full, false}}, false, ""},
		{"inherit-only entries do not apply", admins, []aclEntry{{owner, true, full, true}}, false, ""},
		{"parent where users add folders", system, []aclEntry{{users, true, addSub, false}, {users, true, read, false}}, true, ""},
		{"parent where users delete entries", system, []aclEntry{{users, true, read | fileDeleteChild, false}}, true, "grants S-1-5-32-545"},
		{"file where users add data", system, []aclEntry{{users, true, addSub, false}}, false, "grants S-1-5-32-545"},
		{"trusted installer", "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := aclProblem("config file", `C:\ProgramData\netward\netward.json`, tt.owner, tt.dacl, tt.parent)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("aclProblem = %q, want %q", got, tt.want)
			}
		})
	}
}
