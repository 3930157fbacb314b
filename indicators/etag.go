package indicators

// ETagMatches reports whether an If-None-Match header names version
// (RFC 9110 §13.1.2), as the feed handler decides 304; the console's feed
// publisher uses the same rule.
func ETagMatches(header, version string) bool { return etagMatches(header, version) }
