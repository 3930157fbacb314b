package dnsproxy

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"
)

// msgQuery is the upstream query as miekg/dns builds it (what
// appendUpstreamQuery replaces).
func msgQuery(u *upQuery) *dns.Msg {
	m := new(dns.Msg)
	m.Id = u.id
	m.RecursionDesired = true
	m.CheckingDisabled = u.cd
	m.Question = []dns.Question{u.q}
	m.SetEdns0(upstreamUDPSize, u.do)
	return m
}

// checkUpstreamQuery holds appendUpstreamQuery to miekg/dns: what it packs
// is byte for byte miekg's packing of the same query, and miekg parses it
// back into that query; what it refuses is a name miekg cannot pack either,
// or packs into a message it cannot parse back.
func checkUpstreamQuery(t *testing.T, u *upQuery) {
	t.Helper()
	got, err := appendUpstreamQuery(nil, u)
	want, werr := msgQuery(u).Pack()
	if err != nil {
		if werr != nil {
			return
		}
		if _, ok := dns.IsDomainName(u.q.Name); !ok || !dns.IsFqdn(u.q.Name) {
			return // not a fully qualified name by miekg's own check
		}
		var back dns.Msg
		if back.Unpack(want) != nil || len(back.Question) != 1 {
			return // miekg packs it, but not into a parsable query
		}
		t.Fatalf("%q refused (%v); miekg packs it: % x", u.q.Name, err, want)
	}
	if werr != nil {
		t.Fatalf("%q packed as % x; miekg refuses it: %v", u.q.Name, got, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%q:\n got % x\nwant % x", u.q.Name, got, want)
	}
	var m dns.Msg
	if err := m.Unpack(got); err != nil {
		t.Fatalf("%q: miekg cannot parse % x: %v", u.q.Name, got, err)
	}
	opt := m.IsEdns0()
	if m.Id != u.id || m.Response || m.Opcode != dns.OpcodeQuery || !m.RecursionDesired || m.CheckingDisabled != u.cd ||
		len(m.Question) != 1 || m.Question[0].Qtype != u.q.Qtype || m.Question[0].Qclass != u.q.Qclass ||
		len(m.Answer) != 0 || len(m.Ns) != 0 || len(m.Extra) != 1 || opt == nil ||
		opt.UDPSize() != upstreamUDPSize || opt.Do() != u.do || opt.Version() != 0 || len(opt.Option) != 0 {
		t.Fatalf("%q parsed back as\n%v", u.q.Name, &m)
	}
	// The name parsed back packs to the same octets (it may be spelled
	// differently: \065 is A).
	again, err := appendName(nil, m.Question[0].Name)
	if err != nil || !bytes.Contains(got, again) {
		t.Fatalf("%q parsed back as %q, which packs to % x (%v)", u.q.Name, m.Question[0].Name, again, err)
	}
}

func TestPackUpstreamQuery(t *testing.T) {
	long := ""
	for range 4 {
		long += "a123456789b123456789c123456789d123456789e123456789f123456789.ab" // 63 + '.'
	}
	for _, name := range []string{
		"example.com.", "Www.ExAmple.COM.", ".", "a.", "xn--bcher-kva.example.", "_dmarc.example.",
		`a\.b.example.`, `\065bc.example.`, `\000.example.`, `sp\ ace.example.`, `a\\b.example.`,
		"", "example.com", "a..b.", ".a.", `a\.`, `a\`, `\999.`, long, long + "x.",
		"a123456789b123456789c123456789d123456789e123456789f123456789abcd.", // 64
	} {
		for _, do := range []bool{false, true} {
			checkUpstreamQuery(t, &upQuery{id: 0xBEEF, q: dns.Question{Name: name, Qtype: dns.TypeAAAA, Qclass: dns.ClassINET}, do: do, cd: !do})
		}
	}
	if _, err := appendUpstreamQuery(nil, &upQuery{q: dns.Question{Name: "a..b.", Qtype: 1, Qclass: 1}}); err == nil {
		t.Error("an empty label was packed")
	}
}

func FuzzPackUpstreamQuery(f *testing.F) {
	for _, s := range []string{"example.com.", ".", `a\.b.`, `\065.`, "a..b.", `x\`, "Mixed.Case.", `\255\000.`} {
		f.Add(s, uint16(dns.TypeA), uint16(dns.ClassINET), uint16(1), false, false)
	}
	f.Fuzz(func(t *testing.T, name string, qtype, qclass, id uint16, do, cd bool) {
		for _, c := range []byte(name) {
			if c >= 0x80 {
				// Names reach the packer from miekg's unpacker, which
				// writes such octets as \DDD; raw, they trip miekg's
				// IsFqdn (it measures the rune before a run of
				// backslashes as one byte), not a disagreement to find.
				return
			}
		}
		checkUpstreamQuery(t, &upQuery{id: id, q: dns.Question{Name: name, Qtype: qtype, Qclass: qclass}, do: do, cd: cd})
	})
}

// Building the forwarded query allocates nothing.
func TestPackUpstreamQueryAllocs(t *testing.T) {
	u := upQuery{id: 7, q: dns.Question{Name: "www.example.com.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, do: true}
	buf := make([]byte, 0, upstreamReadSize)
	if n := testing.AllocsPerRun(1000, func() { _, _ = appendUpstreamQuery(buf[:0], &u) }); n != 0 {
		t.Errorf("%v allocations per query", n)
	}
}

func BenchmarkPackUpstreamQuery(b *testing.B) {
	u := upQuery{id: 7, q: dns.Question{Name: "www.example.com.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, do: true}
	b.Run("hand", func(b *testing.B) {
		buf := make([]byte, 0, upstreamReadSize)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = appendUpstreamQuery(buf[:0], &u)
		}
	})
	b.Run("miekg", func(b *testing.B) {
		buf := make([]byte, upstreamReadSize)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = msgQuery(&u).PackBuffer(buf)
		}
	})
}
