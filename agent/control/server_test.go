package control

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/netward/netward/internal/guard"
)

// crashBackend panics in Check, as a bug in a decision would; Status works.
type crashBackend struct{}

func (crashBackend) Status() Status                              { return Status{Version: "test"} }
func (crashBackend) Check(q, user string) (CheckResult, error)   { panic("check bug") }
func (crashBackend) CreateBypass(name, u string) (Bypass, error) { return Bypass{}, nil }
func (crashBackend) ListBypasses() []BypassInfo                  { return nil }
func (crashBackend) RevokeBypass(name string) (int, error)       { return 0, nil }
func (crashBackend) SetMode(mode string) error                   { return nil }
func (crashBackend) Reload(ctx context.Context) error            { return nil }

// TestHandlerPanicRecovered: a panic while serving one API request answers
// it 500, is counted, and the API goes on.
func TestHandlerPanicRecovered(t *testing.T) {
	panics := guard.New(nil)
	s, err := New(Config{Backend: crashBackend{}, Panics: panics})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	do := func(path string) int {
		r := httptest.NewRequest(http.MethodGet, "http://"+Host+path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := do("/v1/check?q=example.com"); code != http.StatusInternalServerError {
		t.Errorf("check: %d, want 500", code)
	}
	if code := do("/v1/status"); code != http.StatusOK {
		t.Errorf("status after the panic: %d, want 200", code)
	}
	if n := panics.Count("control"); n != 1 {
		t.Errorf("counted %d panics, want 1", n)
	}
}
