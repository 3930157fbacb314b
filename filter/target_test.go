package filter

import "testing"

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind TargetKind
		want string
		bad  bool
	}{
		{"Example.COM.", TargetName, "example.com", false},
		{"example.com:443", TargetName, "example.com", false},
		{"198.51.100.7", TargetIP, "198.51.100.7", false},
		{"198.51.100.7:443", TargetIP, "198.51.100.7", false},
		{"[2001:db8::7]", TargetIP, "2001:db8::7", false},
		{"[2001:db8::7]:8443", TargetIP, "2001:db8::7", false},
		{"2001:db8::7", TargetIP, "2001:db8::7", false},
		{"::ffff:198.51.100.7", TargetIP, "198.51.100.7", false},
		{"http://198.51.100.7/", TargetIP, "198.51.100.7", false},
		{"https://198.51.100.7:8443/x?y=1", TargetIP, "198.51.100.7", false},
		{"http://[2001:db8::7]:8080/path", TargetIP, "2001:db8::7", false},
		{"198.51.100.7/downloads/", TargetIP, "198.51.100.7", false},
		{"http://example.com/dl/x.exe", TargetURL, "example.com/dl/x.exe", false},
		{"example.com/dl/", TargetURL, "example.com/dl/", false},
		{"https://example.com", TargetURL, "example.com/", false},
		{"ftp://198.51.100.7/", 0, "", true},
		{"bad_name!", 0, "", true},
		{"http:///x", 0, "", true},
		{"fe80::1%eth0", 0, "", true},
	} {
		got, err := ParseTarget(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseTarget(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.Kind != tc.kind || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %v %q, %v; want %v %q", tc.in, got.Kind, got.String(), err, tc.kind, tc.want)
		}
	}
}

func TestTargetHostSyntax(t *testing.T) {
	for q, ok := range map[string]bool{
		"-bad-.example": false, "bad-.example": false, "www.-x.example": false, "http://-x.example/p": false,
		"r3---sn-abc.googlevideo.com": true, "_dmarc.example.com": true, "xn--bcher-kva.example": true,
		"198.51.100.7": true, "http://example.com/a-": true,
	} {
		tg, err := ParseTarget(q)
		if err != nil {
			t.Fatalf("ParseTarget(%q): %v", q, err)
		}
		if err := tg.HostSyntax(); (err == nil) != ok {
			t.Errorf("HostSyntax(%q) = %v, want ok %v", q, err, ok)
		}
	}
}
