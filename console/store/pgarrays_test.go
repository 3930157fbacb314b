package store

import (
	"bytes"
	"context"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

var (
	arrayStrings = [][]string{nil, {}, {""}, {"a"}, {"www.dropbox.com", "", "CORP\\alice", "ünïcode", strings.Repeat("x", 70000)}}
	arrayInts    = [][]int64{nil, {}, {0}, {-1, 1, 255, 256, math.MaxInt64, math.MinInt64, 1 << 40}}
)

// TestFastArraysLikePgx: the fast plans send the bytes pgx's own array
// codec sends for the same []string and []int64 (nil is NULL), and every
// other value and format is still pgx's.
func TestFastArraysLikePgx(t *testing.T) {
	ref, fast := pgtype.NewMap(), pgtype.NewMap()
	useFastArrays(fast)
	useFastArrays(fast) // once is enough; twice must not stack the wrappers
	for _, oid := range []uint32{pgtype.TextArrayOID, pgtype.Int8ArrayOID} {
		dt, _ := fast.TypeForOID(oid)
		f, ok := dt.Codec.(*fastArrays)
		if !ok {
			t.Fatalf("oid %d: codec %T, want fastArrays", oid, dt.Codec)
		}
		if _, twice := f.Codec.(*fastArrays); twice {
			t.Fatalf("oid %d: fastArrays registered twice", oid)
		}
	}
	check := func(oid uint32, format int16, v any) {
		t.Helper()
		want, errRef := ref.Encode(oid, format, v, []byte("prefix"))
		got, err := fast.Encode(oid, format, v, []byte("prefix"))
		if (err == nil) != (errRef == nil) || !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("oid %d format %d %#v:\n fast %x (%v)\n pgx  %x (%v)", oid, format, v, got, err, want, errRef)
		}
	}
	for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
		for _, v := range arrayStrings {
			check(pgtype.TextArrayOID, format, v)
			check(pgtype.Int8ArrayOID, format, v) // pgx's error (or not) either way
		}
		for _, v := range arrayInts {
			check(pgtype.Int8ArrayOID, format, v)
			check(pgtype.TextArrayOID, format, v)
		}
		a, b := "x", ""
		check(pgtype.TextArrayOID, format, []*string{&a, nil, &b})
		check(pgtype.TextArrayOID, format, []any{"x", nil})
		check(pgtype.Int8ArrayOID, format, []int32{1, -2})
	}
	// The fast plan is the one taken for the batch's slices.
	if _, ok := fast.PlanEncode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, []string{"a"}).(textArrayPlan); !ok {
		t.Error("[]string to text[] does not take textArrayPlan")
	}
	if _, ok := fast.PlanEncode(pgtype.Int8ArrayOID, pgtype.BinaryFormatCode, []int64{1}).(int8ArrayPlan); !ok {
		t.Error("[]int64 to bigint[] does not take int8ArrayPlan")
	}
}

// TestFastArraysRoundTrip: PostgreSQL reads the fast plans' arrays back as
// sent, on a connection of the store's pool.
func TestFastArraysRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		conn, err := s.w.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		err = conn.Raw(func(dc any) error {
			c := dc.(*stdlib.Conn).Conn()
			useFastArrays(c.TypeMap())
			for _, v := range arrayStrings {
				var got []string
				var isNull bool
				if err := c.QueryRow(ctx, "SELECT $1::text[], $1::text[] IS NULL", pgx.QueryExecModeCacheStatement, v).Scan(&got, &isNull); err != nil {
					t.Fatalf("%q: %v", v, err)
				}
				if isNull != (v == nil) || len(got) != len(v) || (len(v) > 0 && !reflect.DeepEqual(got, v)) {
					t.Errorf("text[] %q came back %q (NULL %v)", v, got, isNull)
				}
			}
			for _, v := range arrayInts {
				var got []int64
				var isNull bool
				if err := c.QueryRow(ctx, "SELECT $1::bigint[], $1::bigint[] IS NULL", pgx.QueryExecModeCacheStatement, v).Scan(&got, &isNull); err != nil {
					t.Fatalf("%v: %v", v, err)
				}
				if isNull != (v == nil) || len(got) != len(v) || (len(v) > 0 && !reflect.DeepEqual(got, v)) {
					t.Errorf("bigint[] %v came back %v (NULL %v)", v, got, isNull)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkArrayEncode: a statement of ten unnest columns (five text[] and
// five bigint[] of 4,000 elements) encoded by pgx's codec and by
// fastArrays.
func BenchmarkArrayEncode(b *testing.B) {
	strs := make([]string, 4000)
	ints := make([]int64, 4000)
	for i := range strs {
		strs[i] = "h" + strings.Repeat("x", i%40) + ".example.com"
		ints[i] = int64(i) * 1_000_003
	}
	for _, name := range []string{"pgx", "fast"} {
		b.Run(name, func(b *testing.B) {
			m := pgtype.NewMap()
			if name == "fast" {
				useFastArrays(m)
			}
			b.ReportAllocs()
			for range b.N {
				// One statement's parameters appended to one buffer from
				// pgx's first 128 bytes, as its query builder does.
				buf := make([]byte, 0, 128)
				var err error
				for range 5 {
					if buf, err = m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, strs, buf); err != nil {
						b.Fatal(err)
					}
					if buf, err = m.Encode(pgtype.Int8ArrayOID, pgtype.BinaryFormatCode, ints, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
