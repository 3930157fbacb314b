package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/netward/netward/indicators"
)

// apiError is the API's refusal of a call, in words for a flash message.
type apiError struct {
	Status   int
	Message  string
	Problems []indicators.Problem
}

func (e *apiError) Error() string {
	switch e.Status {
	case http.StatusForbidden:
		if strings.Contains(e.Message, "CSRF") {
			return "The form expired (its security token is not this session's); reload the page and try again."
		}
		return "Your account may not do this (viewers can read everything and change nothing): " + e.Message
	case http.StatusUnauthorized:
		return "Your session ended; sign in again."
	}
	msg := e.Message
	for i, p := range e.Problems {
		if i == 5 {
			msg += fmt.Sprintf("; and %d more", len(e.Problems)-5)
			break
		}
		msg += "; " + p.Position.String() + ": " + p.Message
	}
	return msg
}

// recorder is the response of an in-process API call.
type recorder struct {
	code int
	h    http.Header
	body bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// call runs one API request as the browser's session: its cookie, its
// address (for the sign-in limits), and, for a change, the CSRF token the
// form carried. in is sent as JSON (or as is when it is a []byte with
// contentType); out receives the JSON answer. The answer's headers are
// returned for the calls that set cookies.
func (u *UI) call(r *http.Request, method, path string, in any, out any) (http.Header, error) {
	return u.callType(r, method, path, "application/json", in, out)
}

func (u *UI) callType(r *http.Request, method, path, contentType string, in any, out any) (http.Header, error) {
	var body io.Reader = http.NoBody
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr, req.Host, req.TLS = r.RemoteAddr, r.Host, r.TLS
	for _, c := range r.Header.Values("Cookie") {
		req.Header.Add("Cookie", c)
	}
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if method != http.MethodGet {
		req.Header.Set("X-CSRF-Token", r.PostFormValue("csrf_token"))
	}
	rec := &recorder{h: http.Header{}}
	u.cfg.API.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code >= 300 {
		e := &apiError{Status: rec.code}
		var eb struct {
			Error    string               `json:"error"`
			Problems []indicators.Problem `json:"problems"`
		}
		if json.Unmarshal(rec.body.Bytes(), &eb) == nil {
			e.Message, e.Problems = eb.Error, eb.Problems
		} else {
			e.Message = http.StatusText(rec.code)
		}
		return rec.h, e
	}
	if out != nil && rec.code != http.StatusNoContent {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return rec.h, fmt.Errorf("ui: the answer of %s %s: %w", method, path, err)
		}
	}
	return rec.h, nil
}

// get is call for reads on a page: a failure renders the error page and
// returns false.
func (u *UI) get(w http.ResponseWriter, r *http.Request, path string, out any) bool {
	_, err := u.call(r, http.MethodGet, path, nil, out)
	return err == nil || u.readFailed(w, r, path, err)
}

// fetch is one of a page's API reads: the path, and where its answer goes.
type fetch struct {
	path string
	out  any
}

// getAll is get for several reads at once: a page that needs several
// answers waits for the slowest, not for their sum. On a failure it
// renders the error of the first failed read, in the order given.
func (u *UI) getAll(w http.ResponseWriter, r *http.Request, fs ...fetch) bool {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() { _, errs[i] = u.call(r, http.MethodGet, f.path, nil, f.out) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return u.readFailed(w, r, fs[i].path, err)
		}
	}
	return true
}

// readFailed renders a failed read (sign-in again, or the error page)
// and returns false.
func (u *UI) readFailed(w http.ResponseWriter, r *http.Request, path string, err error) bool {
	status := http.StatusInternalServerError
	if e, ok := err.(*apiError); ok {
		status = e.Status
		if status == http.StatusUnauthorized {
			http.Redirect(w, r, Base+"/signin", http.StatusSeeOther)
			return false
		}
	}
	u.log.Error("ui: API read failed", "path", path, "err", err)
	u.web.Error(w, r, status, err.Error())
	return false
}
