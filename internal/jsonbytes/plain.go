// Package jsonbytes holds the byte tests that the JSON writers and readers
// of telemetry lines share: the agent encodes every record it writes and
// the console decodes every record it ingests, and both spend most of
// their time in strings that are plain ASCII.
package jsonbytes

// Plain8 reports whether none of the eight bytes in x (any byte order)
// needs more than a copy in a JSON string (RFC 8259 §7): none below 0x20,
// none '"' or '\\', none at or above 0x80 (the start of a UTF-8 sequence,
// checked byte by byte by the caller). Each term is the "has a zero byte"
// test, (v − 0x01…) & ^v & 0x80…, which flags no byte unless one matches
// (a borrow can only spill past a byte that did), so the answer is exact
// for the eight bytes together (TestPlain8Pairs).
func Plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := x^(ones*'"'), x^(ones*'\\')
	return ((x-ones*0x20)&^x|(q-ones)&^q|(b-ones)&^b|x)&highs == 0
}
