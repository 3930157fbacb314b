package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Privileged reports whether the process runs elevated (an Administrator
// prompt, or the service as LocalSystem): the case CheckPermissions guards.
func Privileged() bool { return windows.GetCurrentProcessToken().IsElevated() }

// CheckPermissions refuses a config file or data directory that accounts
// other than SYSTEM, Administrators or TrustedInstaller could change (see
// perms_acl.go for the rules and perms_linux.go for why).
func CheckPermissions(cfg *Config) error {
	var errs []error
	if cfg.Path != "" && cfg.Path != "(embedded default)" {
		if err := checkTreeACL(cfg.Path, "config file"); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.DataDir != "" {
		dir := filepath.Clean(cfg.DataDir)
		for {
			_, err := os.Stat(dir)
			if err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(dir) == dir {
				break
			}
			dir = filepath.Dir(dir)
		}
		if err := checkTreeACL(dir, "data directory"); err != nil {
			errs = append(errs, err)
		}
	}
	// The file:// indicator source and the token file follow the same rule
	// (see perms_linux.go). Who may read the token file is not checked on
	// Windows yet: install locks down the data directory it lives in.
	if path, ok := FileSourcePath(cfg.Indicators.Source); ok {
		if err := checkTreeACL(nearestExisting(path), "indicator file"); err != nil {
			errs = append(errs, err)
		}
	}
	if tf := cfg.Indicators.TokenFile; tf != "" {
		if err := checkTreeACL(nearestExisting(tf), "token file"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkTreeACL checks path with the full write rule and every directory above
// it with the replace rule.
func checkTreeACL(path, what string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	for p, parent := abs, false; ; p, parent = filepath.Dir(p), true {
		owner, dacl, err := readACL(p)
		if err != nil {
			return fmt.Errorf("%s %s: read the permissions of %s: %w", what, path, p, err)
		}
		subject := what + " " + path
		if parent {
			subject = fmt.Sprintf("directory %s (above %s %s)", p, what, path)
		}
		if msg := aclProblem(subject, p, owner, dacl, parent); msg != "" {
			return errors.New(msg)
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

func readACL(path string) (string, []aclEntry, error) {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return "", nil, err
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return "", nil, err
	}
	acl, _, err := sd.DACL()
	if err != nil {
		return "", nil, err
	}
	if acl == nil {
		// A NULL DACL grants everyone full access.
		return owner.String(), []aclEntry{{SID: "S-1-1-0", Allow: true, Mask: genericAll}}, nil
	}
	entries := make([]aclEntry, 0, acl.AceCount)
	for i := range uint32(acl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(acl, i, &ace); err != nil {
			return "", nil, err
		}
		// Allowed and denied ACEs share this layout; other ACE types
		// (object, callback) are not used on files.
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		entries = append(entries, aclEntry{
			SID:         sid.String(),
			Allow:       ace.Header.AceType == windows.ACCESS_ALLOWED_ACE_TYPE,
			Mask:        uint32(ace.Mask),
			InheritOnly: ace.Header.AceFlags&windows.INHERIT_ONLY_ACE != 0,
		})
	}
	return owner.String(), entries, nil
}
