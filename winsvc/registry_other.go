//go:build !windows

package winsvc

// SystemPolicy is nil off Windows: there is no Group Policy to read.
func SystemPolicy() Registry { return nil }
