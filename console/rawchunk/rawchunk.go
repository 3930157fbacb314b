// Package rawchunk reads the raw telemetry chunks the console keeps (gzip
// NDJSON under its chunk directory) for hunting and device timelines.
package rawchunk

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/telemetry"
)

// maxLine matches ingest's record limit: longer lines were skipped there.
const maxLine = 64 << 10

// Store is where the raw chunks are when ingest keeps them in object
// storage (ingest.Config.Raw): Get opens one by its relative key, an error
// wrapping fs.ErrNotExist when it is gone.
type Store interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Scan calls f with each record of the chunk at rel, in file order, until f
// returns false: from raw when it is set (the chunks ingest put there),
// else from the file under dir. pre, when not nil, passes over a line
// before it is decoded (a cheap text test; f still decides). Lines that are not records are passed
// over (ingest counted them as skipped). A chunk removed by retention is
// no error: it has no records left.
func Scan(ctx context.Context, raw Store, dir, rel string, pre func(line []byte) bool, f func(*telemetry.Record) bool) error {
	clean := filepath.Clean("/" + rel)[1:]
	if clean == "" || !filepath.IsLocal(clean) {
		return fmt.Errorf("raw chunk path %q is not under the chunk directory", rel)
	}
	var fh io.ReadCloser
	var err error
	if raw != nil {
		fh, err = raw.Get(ctx, filepath.ToSlash(clean))
	} else {
		fh, err = os.Open(filepath.Join(dir, clean))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		return fmt.Errorf("raw chunk %s: %w", rel, err)
	}
	br := bufio.NewReaderSize(zr, maxLine+1)
	for {
		line, err := br.ReadSlice('\n')
		long := false
		for errors.Is(err, bufio.ErrBufferFull) {
			// A line ingest skipped as too long: read past it.
			long = true
			_, err = br.ReadSlice('\n')
		}
		if !long && len(bytes.TrimSpace(line)) > 0 && (pre == nil || pre(line)) {
			var r telemetry.Record
			if json.Unmarshal(line, &r) == nil && !r.Timestamp.IsZero() && !f(&r) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("raw chunk %s: %w", rel, err)
		}
	}
}

// MatchDomain reports whether the record's host is one of domains or a
// subdomain of one (domains lower case, without a trailing dot).
func MatchDomain(r *telemetry.Record, domains []string) bool {
	host := strings.TrimSuffix(strings.ToLower(catalog.HostOf(r.RemoteUrl)), ".")
	if host == "" {
		return false
	}
	for _, d := range domains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// Contains is a pre-test for Scan: the line holds one of words, ASCII
// case folded (a record of one of these domains or ActionTypes holds its
// name in its text).
func Contains(words []string) func([]byte) bool {
	if len(words) == 0 {
		return nil
	}
	lw := make([][]byte, len(words))
	for i, w := range words {
		lw[i] = bytes.ToLower([]byte(w))
	}
	return func(line []byte) bool {
		l := bytes.ToLower(line)
		for _, w := range lw {
			if bytes.Contains(l, w) {
				return true
			}
		}
		return false
	}
}
