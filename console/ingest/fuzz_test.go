package ingest

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzIngestPUT sends hostile bodies through the real handler (mux and
// all): whatever arrives, the answer is a 2xx or a 4xx that says why, never
// a 500 or a panic.
func FuzzIngestPUT(f *testing.F) {
	fx := newFixture(f, Config{MaxDecompressed: 256 << 10, MaxCompressed: 64 << 10, MaxLine: 4 << 10, MaxRecords: 500})
	mux := http.NewServeMux()
	mux.Handle(Path, fx.in)
	f.Add([]byte(rec("ConnectionSuccess", `,"RemoteUrl":"www.dropbox.com","BytesSent":1`)), true, "c1")
	f.Add([]byte(rec("DeviceInfo", `,"IPAddresses":[{"Address":"192.0.2.1"}],"LoggedOnUsers":[{"UserName":"a"}]`)), true, "c2")
	f.Add([]byte(rec("Unknown", `,"RepeatCount":-1`)), true, "c3")
	f.Add([]byte(`{"Timestamp":"0001-01-01T00:00:00Z"}`), true, "c4")
	f.Add([]byte("\x1f\x8b\x08\x00garbage"), false, "c5")
	f.Add([]byte(`{"Timestamp":"2026-12-01T10:00:00Z","DeviceId":"dev1","ActionType":"DeviceInfo","LoggedOnUsers":"x"}`), true, "c6")
	f.Fuzz(func(t *testing.T, body []byte, compress bool, chunk string) {
		if compress {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(body)
			zw.Close()
			body = b.Bytes()
		}
		req := httptest.NewRequest(http.MethodPut, "/v1/telemetry/dev1/x", bytes.NewReader(body))
		req.SetPathValue("device", "dev1")
		req.Header.Set("Authorization", "Bearer "+fx.token)
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Content-Type", "application/x-ndjson")
		if chunk != "" && len(chunk) < 200 {
			req.URL.Path = "/v1/telemetry/dev1/" + chunk
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("PUT = %d: %s", w.Code, w.Body)
		}
	})
}
