package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"
)

// fastArrays stands in front of pgx's codec for text[] and bigint[] and
// encodes a []string or []int64 parameter straight into PostgreSQL's binary
// array format. pgx's generic array plan boxes every element into an
// interface (an allocation each, for strings and for integers past 255)
// and looks its plan up by reflection; a chunk's batch sends tens of
// thousands of elements in its unnest and pending arrays, and that plan was
// 7 % of the console's CPU at fleet rate (issue 22, docs/scale.md
// "Thirteenth round (c)"). The bytes are pgx's own (TestFastArraysLikePgx);
// every other value, format and the decoding go to pgx's codec.
type fastArrays struct {
	pgtype.Codec
	elemOID uint32
}

// useFastArrays registers fastArrays on a connection's type map, once.
func useFastArrays(m *pgtype.Map) {
	for _, t := range []struct {
		oid, elemOID uint32
	}{{pgtype.TextArrayOID, pgtype.TextOID}, {pgtype.Int8ArrayOID, pgtype.Int8OID}} {
		dt, ok := m.TypeForOID(t.oid)
		if !ok {
			continue
		}
		if _, done := dt.Codec.(*fastArrays); done {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: dt.Name, OID: dt.OID, Codec: &fastArrays{Codec: dt.Codec, elemOID: t.elemOID}})
	}
}

func (c *fastArrays) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch value.(type) {
		case []string:
			if c.elemOID == pgtype.TextOID {
				return textArrayPlan{}
			}
		case []int64:
			if c.elemOID == pgtype.Int8OID {
				return int8ArrayPlan{}
			}
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// appendArrayHeader is a one-dimensional array's header of n elements, no
// NULL among them, lower bound 1 (pgx's arrayHeader.EncodeBinary).
func appendArrayHeader(buf []byte, n int, elemOID uint32) ([]byte, error) {
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("store: array of %d elements", n)
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, 0) // contains no NULL
	buf = binary.BigEndian.AppendUint32(buf, elemOID)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1), nil // lower bound
}

type textArrayPlan struct{}

func (textArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	v := value.([]string)
	if v == nil {
		return nil, nil // NULL, as pgx sends a nil slice
	}
	size := 20
	for _, s := range v {
		size += 4 + len(s)
	}
	buf = growBytes(buf, size)
	buf, err := appendArrayHeader(buf, len(v), pgtype.TextOID)
	if err != nil {
		return nil, err
	}
	for _, s := range v {
		if len(s) > math.MaxInt32 {
			return nil, fmt.Errorf("store: array element of %d bytes", len(s))
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	return buf, nil
}

type int8ArrayPlan struct{}

func (int8ArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	v := value.([]int64)
	if v == nil {
		return nil, nil
	}
	buf = growBytes(buf, 20+12*len(v))
	buf, err := appendArrayHeader(buf, len(v), pgtype.Int8OID)
	if err != nil {
		return nil, err
	}
	for _, n := range v {
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	return buf, nil
}

// growBytes makes room for n more bytes at once. slices.Grow keeps
// append's amortized growth: pgx appends every parameter of a statement to
// one buffer, and growing it to the exact size (the first build) copied
// the statement's earlier parameters again for each array (2.3 % of the
// console's CPU in the loadtest's profile).
func growBytes(buf []byte, n int) []byte { return slices.Grow(buf, n) }
