package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/netward/netward/console/auth"
)

// fuzzEndpoints decode a JSON (or CSV) body.
var fuzzEndpoints = []struct{ method, path string }{
	{"POST", "/api/login"},
	{"POST", "/v1/enroll"},
	{"POST", "/api/indicators"},
	{"POST", "/api/indicators/import"},
	{"PUT", "/api/settings"},
	{"POST", "/api/apps"},
	{"PUT", "/api/apps/dropbox/tag"},
	{"POST", "/api/apps/tags"},
	{"POST", "/api/enrollment-keys"},
	{"POST", "/api/tokens"},
	{"POST", "/api/accounts"},
	{"POST", "/api/account/password"},
}

// FuzzAPIJSON posts hostile bodies to every endpoint that decodes one, as
// an admin, through the mux without the panic guard: the answer is a 2xx or
// a 4xx that says why, never a 5xx, and a panic fails the test.
func FuzzAPIJSON(f *testing.F) {
	fx := newFixture(f)
	seeds := []string{
		`{"name":"x","password":"y"}`,
		`{"key":"nwe_x","deviceId":"a","deviceName":"b"}`,
		`{"indicatorValue":"a.example","indicatorType":"DomainName","action":"Block","expirationTime":"2099-01-01T00:00:00Z","bypassDurationHours":1e308}`,
		`{"Indicators":[{"indicatorValue":"x","indicatorType":"IpAddress","action":"Warn"}]}`,
		`[{"id":{"x":1}}]`,
		`{"mode":"block","bypassDurationHours":-1,"warnRedirectUrl":"\u0000"}`,
		`{"name":"app","domains":["a.example/x","","..",".a"]}`,
		`{"tag":null}`,
		`{"apps":[],"tag":"Sanctioned"}`,
		`{"name":"k","expiresAt":"0001-01-01T00:00:00Z","expiresInHours":-5}`,
		`{"name":"t","expiresInDays":99999999999}`,
		"IndicatorType,IndicatorValue,Action\nDomainName,\"unterminated,Block\n",
		`{"a":` + strings.Repeat("[", 10000),
		"\xff\xfe",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s, i%3 == 0)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string, csv bool) {
		e := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		r := httptest.NewRequest(e.method, e.path, strings.NewReader(body))
		r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: fx.admin.cookie})
		r.Header.Set("X-CSRF-Token", fx.admin.csrf)
		if csv {
			r.Header.Set("Content-Type", "text/csv")
		}
		w := httptest.NewRecorder()
		fx.raw.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q = %d: %s", e.method, e.path, body, w.Code, w.Body)
		}
	})
}
