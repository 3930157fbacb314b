package feed

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzFeedHandler sends hostile query strings and headers through the
// feed handler: the answer is 200, 304 or a 4xx, never a 5xx or a panic.
func FuzzFeedHandler(f *testing.F) {
	fx := newFixture(f)
	f.Add("", `"x"`, "version=1; os=linux/x; seq=1", "gzip", true)
	f.Add("wait=-1", "*", "version=", "gzip;q=0", true)
	f.Add("wait=99999999999999999999", `W/"a", "b"`, "seq=x", "br", false)
	f.Add("wait=%zz", "", "version=1;version=2", "", true)
	f.Fuzz(func(t *testing.T, query, inm, agent, ae string, withToken bool) {
		req := httptest.NewRequest(http.MethodGet, Path, nil)
		req.URL.RawQuery = query
		req.Header.Set("If-None-Match", inm)
		req.Header.Set("Netward-Agent", agent)
		req.Header.Set("Accept-Encoding", ae)
		if withToken {
			req.Header.Set("Authorization", "Bearer "+fx.token)
		}
		if q := req.URL.Query().Get("wait"); q != "" && q != "0" {
			req.URL.RawQuery = "wait=0" // a held poll would only wait
		}
		w := httptest.NewRecorder()
		fx.pub.ServeHTTP(w, req)
		switch {
		case w.Code >= 500:
			t.Fatalf("GET = %d: %s", w.Code, w.Body)
		case !withToken && w.Code != http.StatusUnauthorized:
			t.Fatalf("without a token = %d, want 401", w.Code)
		}
	})
}
