package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netward/netward/telemetry"
)

// Client is the typed client of the control API; the CLI uses it.
type Client struct {
	// Socket is the unix socket path or pipe name (control.socket).
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	c := &Client{Socket: socket}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, socket)
		},
		MaxIdleConns:          1,
		ResponseHeaderTimeout: 30 * time.Second,
	}}
	return c
}

// NotRunningError says the agent could not be reached at all; the CLI exits 3.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	switch {
	case errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM):
		return fmt.Sprintf("cannot reach the netward agent at %s: %v (permission denied: check the socket's directory permissions)", e.Socket, e.Err)
	}
	return fmt.Sprintf("the netward agent is not running (nothing answers at %s: %v).\n"+
		"Start it with 'sudo systemctl start netward', or run it in the foreground with 'netward run'", e.Socket, e.Err)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// APIError is an error answer of the agent.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Forbidden reports whether the call needed more privileges, or is refused
// by policy (a Block cannot be bypassed).
func (e *APIError) Forbidden() bool { return e.Status == http.StatusForbidden }

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("read the agent's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	u := "http://" + Host + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &NotRunningError{Socket: c.Socket, Err: op.Err}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &NotRunningError{Socket: c.Socket, Err: err}
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var ae apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			ae.Error = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, &APIError{Status: resp.StatusCode, Message: ae.Error}
	}
	return resp, nil
}

// WhoAmI returns the identity the agent sees for this connection.
func (c *Client) WhoAmI(ctx context.Context) (Peer, error) {
	var p Peer
	return p, c.do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &p)
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
}

// Check explains the decision for a name, URL or IP.
func (c *Client) Check(ctx context.Context, query string) (CheckResult, error) {
	var r CheckResult
	return r, c.do(ctx, http.MethodGet, "/v1/check", url.Values{"q": {query}}, nil, &r)
}

// Bypass continues past the Warn for name, for the calling user.
func (c *Client) Bypass(ctx context.Context, name string) (Bypass, error) {
	var e Bypass
	return e, c.do(ctx, http.MethodPost, "/v1/bypasses", nil, BypassRequest{Name: name}, &e)
}

// ListBypasses returns the active bypasses.
func (c *Client) ListBypasses(ctx context.Context) ([]BypassInfo, error) {
	var l []BypassInfo
	return l, c.do(ctx, http.MethodGet, "/v1/bypasses", nil, nil, &l)
}

// RevokeBypass removes the bypasses for name (admin).
func (c *Client) RevokeBypass(ctx context.Context, name string) (RevokeResult, error) {
	var r RevokeResult
	return r, c.do(ctx, http.MethodDelete, "/v1/bypasses", url.Values{"name": {name}}, nil, &r)
}

// SetMode sets the local mode override (admin).
func (c *Client) SetMode(ctx context.Context, mode string) error {
	_, err := c.SetModeState(ctx, mode)
	return err
}

// SetModeState sets the local mode override (admin) and returns the modes
// then in force.
func (c *Client) SetModeState(ctx context.Context, mode string) (ModeState, error) {
	var st ModeState
	return st, c.do(ctx, http.MethodPut, "/v1/mode", nil, ModeRequest{Mode: mode}, &st)
}

// ClearMode clears the local mode override (admin): the source's mode
// applies again.
func (c *Client) ClearMode(ctx context.Context) (ModeState, error) {
	var st ModeState
	return st, c.do(ctx, http.MethodDelete, "/v1/mode", nil, nil, &st)
}

// Reload asks the agent to re-read its indicator source (admin).
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", nil, nil, nil)
}

// RequeueTelemetry queues the quarantined telemetry chunks for upload again
// (admin).
func (c *Client) RequeueTelemetry(ctx context.Context) (RequeueResult, error) {
	var r RequeueResult
	return r, c.do(ctx, http.MethodPost, "/v1/telemetry/requeue", nil, nil, &r)
}

// Events calls fn with each stored event since (a duration back or RFC 3339
// time, "" for all), then, with follow, each new one until ctx ends. A
// stream the agent had to cut off returns an error saying how many events
// were missed.
func (c *Client) Events(ctx context.Context, since string, follow bool, fn func(telemetry.Record) error) error {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/events", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"error"`)) {
			var ee EventError
			if json.Unmarshal(line, &ee) == nil {
				return fmt.Errorf("%s (%s events missed)", ee.Error, strconv.Itoa(ee.Dropped))
			}
		}
		var rec telemetry.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("read event: %w", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read events: %w", err)
	}
	return nil
}
