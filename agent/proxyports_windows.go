package agent

import (
	"golang.org/x/sys/windows/registry"
)

// internetSettings is where WinINet keeps the proxy, machine-wide (used
// when the ProxySettingsPerUser policy is 0) and per user.
const internetSettings = `Software\Microsoft\Windows\CurrentVersion\Internet Settings`

// systemProxySettings reads the enabled ProxyServer values of the machine
// and of every loaded user profile (HKEY_USERS\<SID>): the service runs as
// LocalSystem, whose own settings say nothing about the users'.
func systemProxySettings() []string {
	var out []string
	if v, ok := proxyServer(registry.LOCAL_MACHINE, internetSettings); ok {
		out = append(out, v)
	}
	users, err := registry.OpenKey(registry.USERS, "", registry.ENUMERATE_SUB_KEYS)
	if err != nil {
		return out
	}
	defer users.Close()
	sids, _ := users.ReadSubKeyNames(-1)
	for _, sid := range sids {
		if v, ok := proxyServer(registry.USERS, sid+`\`+internetSettings); ok {
			out = append(out, v)
		}
	}
	return out
}

func proxyServer(root registry.Key, path string) (string, bool) {
	k, err := registry.OpenKey(root, path, registry.QUERY_VALUE)
	if err != nil {
		return "", false
	}
	defer k.Close()
	if on, _, err := k.GetIntegerValue("ProxyEnable"); err != nil || on == 0 {
		return "", false
	}
	v, _, err := k.GetStringValue("ProxyServer")
	return v, err == nil && v != ""
}
