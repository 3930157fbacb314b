package machine

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLogindUsers(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"1":  "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nCLASS=user\nTYPE=x11\n",
		"2":  "UID=1001\nUSER=bob\nSTATE=online\nCLASS=user\nREMOTE=1\n",
		"3":  "UID=102\nUSER=gdm\nSTATE=online\nCLASS=greeter\n",
		"4":  "UID=1002\nUSER=carol\nSTATE=closing\nCLASS=user\n",
		"5":  "UID=1000\nUSER=alice\nSTATE=online\nCLASS=user\n",
		"c6": "UID=0\nUSER=root\nSTATE=online\nCLASS=manager\n",
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
	}
	got, err := logindUsers(dir)
	if err != nil || !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("logindUsers = %q, %v; want alice, bob", got, err)
	}
	if _, err := logindUsers(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error without logind")
	}
}

func utmpRecord(typ int16, user string) []byte {
	b := make([]byte, utmpSize)
	binary.NativeEndian.PutUint16(b, uint16(typ))
	copy(b[utmpUserOffset:], user)
	return b
}

func TestUtmpUsers(t *testing.T) {
	var b []byte
	b = append(b, utmpRecord(2, "reboot")...) // BOOT_TIME
	b = append(b, utmpRecord(utmpUserProcess, "alice")...)
	b = append(b, utmpRecord(6, "LOGIN")...) // LOGIN_PROCESS: a getty
	b = append(b, utmpRecord(utmpUserProcess, "bob")...)
	b = append(b, utmpRecord(utmpUserProcess, "alice")...)
	b = append(b, utmpRecord(8, "carol")...)                    // DEAD_PROCESS: signed out
	b = append(b, utmpRecord(utmpUserProcess, "dave")[:100]...) // torn
	if got := utmpUsers(b); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("utmpUsers = %q, want alice, bob", got)
	}
}
