//go:build !linux && !windows

package osinfo

func version() string { return "" }
