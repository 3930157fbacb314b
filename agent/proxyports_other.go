//go:build !linux && !windows

package agent

func systemProxySettings() []string { return nil }
