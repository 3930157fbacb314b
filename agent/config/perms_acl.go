package config

import "fmt"

// Windows ACL rules of CheckPermissions, kept free of Windows types so they
// are tested everywhere (perms_windows.go reads the real ACLs).

// aclEntry is one ACE of a file or directory DACL.
type aclEntry struct {
	SID         string // string form, "S-1-5-18"
	Allow       bool   // ACCESS_ALLOWED_ACE_TYPE; deny ACEs are ignored (conservative)
	Mask        uint32
	InheritOnly bool // INHERIT_ONLY_ACE: applies to children only
}

// Well-known SIDs that may write netward's files.
var trustedSIDs = map[string]string{
	"S-1-5-18":     "SYSTEM",
	"S-1-5-32-544": "Administrators",
	"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464": "TrustedInstaller",
}

// Access rights (winnt.h) that let a holder change a file or directory's
// content, or its DACL or owner.
const (
	fileWriteData   = 0x2 // FILE_WRITE_DATA / FILE_ADD_FILE
	fileAppendData  = 0x4 // FILE_APPEND_DATA / FILE_ADD_SUBDIRECTORY
	fileDeleteChild = 0x40
	accessDelete    = 0x10000
	accessWriteDAC  = 0x40000
	accessWriteOwn  = 0x80000
	genericAll      = 0x10000000
	genericWrite    = 0x40000000

	// writeRights on the file or directory itself.
	writeRights = fileWriteData | fileAppendData | fileDeleteChild | accessDelete | accessWriteDAC | accessWriteOwn | genericAll | genericWrite
	// replaceRights on a parent directory: what lets someone remove or
	// rename an existing entry (or the directory). Adding new entries is
	// not enough — Users may create folders in C:\ and C:\ProgramData.
	replaceRights = fileDeleteChild | accessDelete | accessWriteDAC | accessWriteOwn | genericAll
)

// aclProblem reports why someone other than SYSTEM, Administrators or
// TrustedInstaller could change path, given its owner and DACL; subject
// names it in the message, parent selects the parent-directory rule. ""
// means none.
func aclProblem(subject, path, owner string, dacl []aclEntry, parent bool) string {
	if _, ok := trustedSIDs[owner]; !ok {
		return fmt.Sprintf("%s is owned by %s, not Administrators or SYSTEM, so that account can change what netward enforces; fix with: icacls \"%s\" /setowner *S-1-5-32-544", subject, owner, path)
	}
	need := uint32(writeRights)
	if parent {
		need = replaceRights
	}
	for _, e := range dacl {
		if !e.Allow || e.InheritOnly || e.Mask&need == 0 {
			continue
		}
		if _, ok := trustedSIDs[e.SID]; ok {
			continue
		}
		return fmt.Sprintf("%s grants %s write access (mask %#x), so that account can change what netward enforces; fix with: icacls \"%s\" /inheritance:r /grant:r *S-1-5-32-544:(OI)(CI)F *S-1-5-18:(OI)(CI)F *S-1-5-32-545:(OI)(CI)RX", subject, e.SID, e.Mask, path)
	}
	return ""
}
