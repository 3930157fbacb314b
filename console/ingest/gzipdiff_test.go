package ingest

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strconv"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// stdAccepts reports whether the standard library reads body to io.EOF:
// what the chunk's other readers (the Kafka publisher, rawchunk) use, so
// the ingest must refuse whatever they refuse.
func stdAccepts(body []byte) bool {
	zr, err := stdgzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, zr)
	return err == nil
}

func kAccepts(body []byte) bool {
	zr, err := kgzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, struct{ io.Reader }{zr}) // Read, as parse does
	return err == nil
}

// gzipOddities are bodies built around one valid member: broken trailers,
// trailing bytes, second members (whole, truncated, with every header
// flag), reserved flag bits, an empty member.
func gzipOddities() map[string][]byte {
	good := gz(rec("ConnectionSuccess", `,"RemoteUrl":"www.dropbox.com"`))
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	hdr := func(flg byte) []byte { return []byte{0x1f, 0x8b, 8, flg, 0, 0, 0, 0, 0, 255} }
	emptyMember := func() []byte {
		var b bytes.Buffer
		zw := stdgzip.NewWriter(&b)
		zw.Close()
		return b.Bytes()
	}()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[len(b)+i] ^= 1
		return b
	}
	withHdrCRC := func(h []byte) []byte {
		var c [2]byte
		binary.LittleEndian.PutUint16(c[:], uint16(crc32.ChecksumIEEE(h)))
		return cat(h, c[:])
	}
	deflated := good[10 : len(good)-8]
	m := map[string][]byte{
		"good":                         good,
		"crc flipped":                  flip(-8),
		"length flipped":               flip(-1),
		"trailer cut":                  good[:len(good)-3],
		"no trailer":                   good[:len(good)-8],
		"cut in deflate":               good[:len(good)-12],
		"trailing zero":                cat(good, []byte{0}),
		"trailing zeros x10":           cat(good, make([]byte, 10)),
		"trailing garbage":             cat(good, []byte("garbage after the member")),
		"trailing magic only":          cat(good, []byte{0x1f, 0x8b}),
		"second member":                cat(good, good),
		"second member empty":          cat(good, emptyMember),
		"only an empty member":         emptyMember,
		"second header only":           cat(good, hdr(0)),
		"second FNAME unterminated":    cat(good, hdr(8), []byte("name")),
		"second FNAME no bytes":        cat(good, hdr(8)),
		"second FCOMMENT unterminated": cat(good, hdr(16), []byte("comment")),
		"second FEXTRA cut":            cat(good, hdr(4), []byte{10, 0, 1}),
		"second FHCRC cut":             cat(good, hdr(2), []byte{1}),
		"first FNAME unterminated":     cat(hdr(8), []byte("name")),
		"FNAME FCOMMENT FEXTRA FHCRC":  cat(withHdrCRC(cat(hdr(2|4|8|16), []byte{3, 0, 'a', 'b', 'c'}, []byte("n\x00c\x00"))), deflated, good[len(good)-8:]),
		"FHCRC wrong":                  cat(hdr(2), []byte{0, 0}, deflated, good[len(good)-8:]),
		"reserved flag bit":            cat(hdr(32), deflated, good[len(good)-8:]),
		"FNAME over 512 bytes":         cat(hdr(8), bytes.Repeat([]byte("n"), 600), []byte{0}, deflated, good[len(good)-8:]),
		"FEXTRA 65535 bytes":           cat(hdr(4), []byte{0xff, 0xff}, make([]byte, 65535), deflated, good[len(good)-8:]),
		"not deflate method":           cat([]byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 255}, deflated, good[len(good)-8:]),
		"empty body":                   nil,
	}
	return m
}

// TestGzipLikeStdlib: the handler takes a body exactly when the standard
// library reads it to the end (201) and refuses it with 400 otherwise —
// both gzip readers are on the network's side, and a chunk the ingest
// stores must be readable by the rest of the console. Reserved flag bits
// are the one allowed difference: RFC 1952 §2.3.1.2 requires refusing
// them, and the standard library does not.
func TestGzipLikeStdlib(t *testing.T) {
	f := newFixture(t, Config{})
	i := 0
	for name, body := range gzipOddities() {
		i++
		t.Run(name, func(t *testing.T) {
			std, k := stdAccepts(body), kAccepts(body)
			if std != k {
				t.Logf("standard library accepts %v, klauspost %v", std, k)
			}
			want := 400
			if std && name != "reserved flag bit" && name != "only an empty member" { // the last: no records
				want = 201
			}
			if got := f.put(t, "dev1", "g"+strconv.Itoa(i), body).StatusCode; got != want {
				t.Errorf("PUT = %d, want %d (standard library accepts: %v)", got, want, std)
			}
		})
	}
}

// FuzzGunzipLikeStdlib: on any body, what the ingest's reader takes the
// standard library takes too, with the same bytes; what the standard
// library takes, the ingest's reader takes too, but for ErrHeader
// (reserved flag bits, which RFC 1952 says to refuse).
func FuzzGunzipLikeStdlib(f *testing.F) {
	for _, b := range gzipOddities() {
		f.Add(b)
	}
	first := gz(rec("ConnectionSuccess", `,"RemoteUrl":"a.example"`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// body alone, and after a whole member: a member's back-references
		// may not reach into the one before it.
		gunzipsLikeStdlib(t, body)
		gunzipsLikeStdlib(t, append(append([]byte{}, first...), body...))
	})
}

func gunzipsLikeStdlib(t *testing.T, body []byte) {
	t.Helper()
	{
		var want []byte
		var stdErr error
		if zr, err := stdgzip.NewReader(bytes.NewReader(body)); err != nil {
			stdErr = err
		} else {
			want, stdErr = io.ReadAll(zr)
		}
		var got []byte
		var ourErr error
		if g, err := newGunzip(io.MultiReader(bytes.NewReader(body))); err != nil {
			ourErr = err
		} else {
			got, ourErr = io.ReadAll(g)
		}
		switch {
		case ourErr == nil && stdErr != nil:
			t.Fatalf("ingest reader takes %q, standard library: %v", body, stdErr)
		case ourErr == nil && !bytes.Equal(got, want):
			t.Fatalf("ingest reader reads %q, standard library %q", got, want)
		case stdErr == nil && ourErr != nil && ourErr != kgzip.ErrHeader:
			t.Fatalf("standard library takes %q, ingest reader: %v", body, ourErr)
		}
	}
}

// TestGzipMemberReadsAsAlone: a member after another reads as it reads
// alone, bytes and error (here a corrupt one FuzzGunzipLikeStdlib found: a
// reader Reset between members, klauspost's, read 24 more bytes of it
// than a new reader before failing, so its state is not a new reader's).
func TestGzipMemberReadsAsAlone(t *testing.T) {
	corrupt := []byte("\x1f\x8b\b\x00000000<\xc8\xb1\x0e\xc2 \x10\x06\xe0\xdd\xc7\xf8\xe7\xb6\x81&:\xdcftqqPYc\x10B %\x1c%X1\xc6w7:\xb8&00000000000000000000000000000000000000000000000070.10\xff000000000000")
	line := rec("ConnectionSuccess", `,"RemoteUrl":"a.example"`)
	read := func(body []byte) ([]byte, error) {
		g, err := newGunzip(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(g)
	}
	alone, errAlone := read(corrupt)
	after, errAfter := read(append(gz(line), corrupt...))
	if errAlone == nil || errAfter == nil {
		t.Fatalf("a corrupt member taken: alone %v, after another %v", errAlone, errAfter)
	}
	if want := append([]byte(line+"\n"), alone...); !bytes.Equal(after, want) {
		t.Errorf("after another member it reads %d bytes (%v), alone %d (%v)", len(after)-len(line)-1, errAfter, len(alone), errAlone)
	}
}

// TestGzipManyMembersCheap: a body of many empty members (20-odd bytes
// each, so an 8 MiB chunk holds ~350,000) costs about what one member
// does per member: a new klauspost reader for each allocated ~37 KB per
// member (its window and tables), 13 GB and a minute of CPU for one such
// upload, where a reader reset for each allocates almost nothing.
func TestGzipManyMembersCheap(t *testing.T) {
	const members = 2000
	var empty bytes.Buffer
	zw := stdgzip.NewWriter(&empty)
	zw.Close()
	body := append(gz(rec("ConnectionSuccess", `,"RemoteUrl":"a.example"`)), bytes.Repeat(empty.Bytes(), members)...)
	var got []byte
	var err error
	perBody := testing.AllocsPerRun(3, func() {
		var g *gunzip
		if g, err = newGunzip(bytes.NewReader(body)); err == nil {
			got, err = io.ReadAll(g)
		}
	})
	if err != nil || string(got) != rec("ConnectionSuccess", `,"RemoteUrl":"a.example"`)+"\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	// Allocations, not bytes, are what AllocsPerRun counts; a new reader
	// per member was some ten of them.
	if perBody > members/2 {
		t.Errorf("%.0f allocations for %d empty members: more than one per two members", perBody, members)
	}
}

// TestGzipSecondMemberReservedFlag: a further member with a reserved flag
// bit is refused as the first is (compress/gzip, which reads further
// members, would take it).
func TestGzipSecondMemberReservedFlag(t *testing.T) {
	good := gz(rec("ConnectionSuccess", `,"RemoteUrl":"a.example"`))
	bad := append([]byte{0x1f, 0x8b, 8, 32, 0, 0, 0, 0, 0, 255}, good[10:]...)
	g, err := newGunzip(bytes.NewReader(append(append([]byte{}, good...), bad...)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(g); !errors.Is(err, kgzip.ErrHeader) {
		t.Errorf("second member with flag 32: %v, want %v", err, kgzip.ErrHeader)
	}
}
