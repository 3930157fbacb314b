//go:build windows

package hostnet

// Cleanup removes netward's NRPT rule from both the local and the Group
// Policy key. Missing rules are not an error.
func Cleanup() error {
	n := &NRPT{cfg: NRPTConfig{Registry: WindowsRegistry{}, Refresh: RefreshNRPT}}
	return n.Remove()
}
