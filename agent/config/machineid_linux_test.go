package config

import "testing"

func TestParseMachineID(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"4e0f1c5d9a8b4f3e8d2c1b0a9f8e7d6c\n", true},
		{"00000000000000000000000000000000", false},
		{"uninitialized", false},
		{"4e0f1c5d", false},
	}
	for _, tt := range tests {
		if _, err := parseMachineID(tt.in); (err == nil) != tt.ok {
			t.Errorf("parseMachineID(%q) err = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}
