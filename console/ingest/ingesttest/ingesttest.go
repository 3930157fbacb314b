// Package ingesttest serves a real ingest handler on a fresh store for
// the tests of the packages that plug into it (raw chunk storage, record
// sinks).
package ingesttest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/consoletest"
	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/store"
)

// Server is an ingest handler behind httptest with one enrolled device.
type Server struct {
	URL, Device, Token string
	Ingest             *ingest.Ingest
	Store              *store.Store
}

// Serve starts ingest with cfg (Store, Auth and Dir are filled in).
func Serve(t testing.TB, cfg ingest.Config) *Server {
	t.Helper()
	st := consoletest.Store(t)
	au := consoletest.Auth(st, auth.Config{})
	cfg.Store, cfg.Auth = st, au
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	in, err := ingest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(ingest.Path, in)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &Server{URL: ts.URL, Device: "dev-1", Token: consoletest.Enroll(t, au, "dev-1"), Ingest: in, Store: st}
}

// Put uploads a chunk and returns the status.
func (s *Server) Put(t testing.TB, chunk string, gz []byte) int {
	t.Helper()
	req, _ := http.NewRequest("PUT", s.URL+"/v1/telemetry/"+s.Device+"/"+chunk, bytes.NewReader(gz))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Chunk is a gzip NDJSON chunk of n ConnectionSuccess records of device,
// dated at.
func Chunk(device string, n int, at time.Time) []byte {
	var raw bytes.Buffer
	for i := range n {
		fmt.Fprintf(&raw, `{"Timestamp":%q,"DeviceId":%q,"ActionType":"ConnectionSuccess","RemoteUrl":"host%d.example","BytesSent":%d}`+"\n",
			at.UTC().Format(time.RFC3339), device, i%7, i)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	return gz.Bytes()
}
