package agent

import "os"

// systemProxySettings reads the system-wide proxy variables of
// /etc/environment (pam_env), which desktop and login sessions inherit.
func systemProxySettings() []string {
	b, err := os.ReadFile("/etc/environment")
	if err != nil {
		return nil
	}
	return environmentProxies(b)
}
