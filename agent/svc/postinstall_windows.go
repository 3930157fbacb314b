package svc

import "github.com/netward/netward/winsvc"

// postInstall sets what kardianos/service cannot: the full recovery-action
// sequence (also on non-crash failures) and the service DACL.
func postInstall(name string) error { return winsvc.Configure(name) }
