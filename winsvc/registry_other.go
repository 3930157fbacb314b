//go:build !windows

package winsvc

import "github.com/netward/netward/agent/config"

// SystemPolicy is nil off Windows: there is no Group Policy to read.
func SystemPolicy() config.Registry { return nil }
