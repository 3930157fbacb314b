//go:build !windows

package dnsproxy

// osResolvers are the resolvers of resolv.conf (path).
func osResolvers(path string) ([]string, error) { return fileResolvers(path) }
