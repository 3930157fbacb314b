package svc

import "github.com/netward/netward/winsvc"

// postInstall sets what kardianos/service cannot: the full recovery-action
// sequence (also on non-crash failures), the service DACL, and a DACL on the
// config and data directories that only SYSTEM and Administrators can write
// (%ProgramData% lets Users create files, and the agent refuses to start from
// directories others can write).
func postInstall(name string, dirs []string) error {
	for _, d := range dirs {
		if err := winsvc.SecureDir(d); err != nil {
			return err
		}
	}
	return winsvc.Configure(name)
}
