package winsvc

// PostInstall sets what kardianos/service cannot, right after the service
// named name is installed: the full recovery-action sequence (also on
// non-crash failures), the service DACL, and a DACL on the config and data
// directories dirs that only SYSTEM and Administrators can write
// (%ProgramData% lets Users create files, and the agent refuses to start
// from directories others can write).
func PostInstall(name string, dirs []string) error {
	for _, d := range dirs {
		if err := SecureDir(d); err != nil {
			return err
		}
	}
	return Configure(name)
}
