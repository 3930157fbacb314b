package inspect

import (
	"errors"
	"testing"
)

func BenchmarkParseClientHello(b *testing.B) {
	for _, name := range []string{"curl-tls13.bin", "go-mlkem.bin"} {
		in := readCapture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := ParseClientHello(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHelloLength is the cryptobyte pre-check alone: the cost of
// rejecting or sizing a hello before crypto/tls runs.
func BenchmarkHelloLength(b *testing.B) {
	in := readCapture(b, "go-mlkem.bin")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HelloLength(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQUICInitial(b *testing.B) {
	dgs := datagrams(b, readCapture(b, "quicgo-v1.bin"))
	b.ReportAllocs()
	for b.Loop() {
		q := NewQUICFlow()
		_, err := q.Datagram(dgs[0])
		for i := 1; errors.Is(err, ErrNeedMore) && i < len(dgs); i++ {
			_, err = q.Datagram(dgs[i])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHTTPRequest(b *testing.B) {
	in := readCapture(b, "curl-http.bin")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHTTPRequest(in); err != nil {
			b.Fatal(err)
		}
	}
}

// The pre-check must not allocate: it runs on every queued first payload.
func TestHelloLengthAllocs(t *testing.T) {
	in := readCapture(t, "go-mlkem.bin")
	if n := testing.AllocsPerRun(100, func() { _, _ = HelloLength(in) }); n != 0 {
		t.Errorf("HelloLength allocates %v times, want 0", n)
	}
}
