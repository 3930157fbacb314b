package hostnet

// isNetwardTable reports whether an nftables table name is one netward
// creates.
func isNetwardTable(name string) bool {
	for _, t := range tables {
		if name == t {
			return true
		}
	}
	return false
}
