package winsvc

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// SecureDir creates dir if needed and gives it DirSDDL and Administrators as
// owner; existing files and subdirectories inherit the new DACL.
func SecureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	sd, err := windows.SecurityDescriptorFromString(DirSDDL)
	if err != nil {
		return fmt.Errorf("parse directory DACL: %w", err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		return err
	}
	info := windows.SECURITY_INFORMATION(windows.OWNER_SECURITY_INFORMATION | windows.DACL_SECURITY_INFORMATION | windows.PROTECTED_DACL_SECURITY_INFORMATION)
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, info, admins, nil, dacl, nil); err != nil {
		return fmt.Errorf("set the permissions of %s: %w (run from an Administrator prompt)", dir, err)
	}
	return nil
}
