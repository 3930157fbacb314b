package telemetry

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/netward/netward/internal/guard"
)

// CollectorConfig configures the console's telemetry collector.
type CollectorConfig struct {
	// Dir stores <deviceId>/<chunkId>.ndjson.gz and <deviceId>/rollup.json.
	Dir string
	// Authorize reports whether token may upload for deviceID. Required:
	// a collector without authorization must be asked for explicitly with
	// AllowAnyToken.
	Authorize     func(deviceID, token string) bool
	AllowAnyToken bool
	// MaxCompressed bounds the request body (default 8 MiB); MaxDecompressed
	// bounds the NDJSON inside it (default 16 MiB), which rejects gzip bombs
	// after reading at most that much; MaxLine bounds one record (64 KiB).
	MaxCompressed, MaxDecompressed int64
	MaxLine                        int
	// MaxKeys bounds each per-device rollup map (apps, users, IPs); default 10000.
	MaxKeys int
	// Panics records a panic recovered while serving one request (the
	// request gets a 500 and the agent retries the chunk; the collector
	// goes on). Default: its own, logging to Log.
	Panics *guard.Panics
	Log    *slog.Logger
	Now    func() time.Time
}

// TokenAuthorizer accepts one shared bearer token for every device.
func TokenAuthorizer(token string) func(deviceID, got string) bool {
	return func(_, got string) bool {
		return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(got)) == 1
	}
}

// Collector is the http.Handler for PUT /v1/telemetry/{deviceId}/{chunkId}
// (CONTRACT §6) and GET /v1/telemetry/{deviceId} (the device's rollup).
type Collector struct {
	cfg     CollectorConfig
	mux     *http.ServeMux
	handler http.Handler // mux behind the panic guard

	mu      sync.Mutex // serializes stores and rollup updates
	rollups map[string]*DeviceRollup
}

// Seen is a first/last-seen history entry with a count.
type Seen struct {
	FirstSeen    time.Time `json:"firstSeen"`
	LastSeen     time.Time `json:"lastSeen"`
	Transactions int64     `json:"transactions"`
}

// AppRollup is traffic to one discovered name or application.
type AppRollup struct {
	Seen
	Application   string `json:"application,omitempty"`
	BytesSent     int64  `json:"bytesSent"`
	BytesReceived int64  `json:"bytesReceived"`
}

// DeviceRollup is the machine view of one device.
type DeviceRollup struct {
	DeviceId      string    `json:"deviceId"`
	DeviceName    string    `json:"deviceName"`
	Chunks        int64     `json:"chunks"`
	Transactions  int64     `json:"transactions"`
	BytesSent     int64     `json:"uploadBytes"`
	BytesReceived int64     `json:"downloadBytes"`
	TotalBytes    int64     `json:"totalBytes"`
	LostRecords   int64     `json:"lostRecords"`
	FirstSeen     time.Time `json:"firstSeen"`
	LastSeen      time.Time `json:"lastSeen"`
	// Names are discovered remote host names (the host of RemoteUrl);
	// URLs are the full URLs a record carried (a plain-HTTP request with
	// a path), kept apart so they do not crowd the names out of their key
	// cap. Applications group names by the indicator's application.
	Names        map[string]*AppRollup `json:"names"`
	URLs         map[string]*AppRollup `json:"urls"`
	Applications map[string]*AppRollup `json:"applications"`
	Users        map[string]*Seen      `json:"users"`
	LocalIPs     map[string]*Seen      `json:"localIps"`
	// Overflow counts entries not added because a map reached MaxKeys.
	Overflow int64 `json:"overflow"`
	// Info is the latest machine record (DeviceInfo); nil before the first.
	Info *DeviceInfoRollup `json:"info,omitempty"`
	// UnknownActions counts records of ActionTypes this collector does not
	// know (a newer agent's), by ActionType: accepted, stored, not rolled up.
	UnknownActions map[string]int64 `json:"unknownActions,omitempty"`
}

// DeviceInfoRollup is the latest machine record of a device.
type DeviceInfoRollup struct {
	At             time.Time   `json:"at"`
	OSPlatform     string      `json:"osPlatform"`
	OSVersion      string      `json:"osVersion"`
	AgentVersion   string      `json:"agentVersion"`
	PolicySequence uint64      `json:"policySequence"`
	IPAddresses    []IPAddress `json:"ipAddresses"`
	LoggedOnUsers  []string    `json:"loggedOnUsers"`
}

// NewCollector returns the handler. It reads rollups lazily from Dir.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	if cfg.Dir == "" {
		return nil, errors.New("collector: Dir is empty")
	}
	if cfg.Authorize == nil && !cfg.AllowAnyToken {
		return nil, errors.New("collector: no Authorize function; give a token file, or allow any token explicitly")
	}
	if cfg.MaxCompressed <= 0 {
		cfg.MaxCompressed = 8 << 20
	}
	if cfg.MaxDecompressed <= 0 {
		cfg.MaxDecompressed = 16 << 20
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 << 10
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 10000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Panics == nil {
		cfg.Panics = guard.New(cfg.Log)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	c := &Collector{cfg: cfg, mux: http.NewServeMux(), rollups: make(map[string]*DeviceRollup)}
	c.mux.HandleFunc("PUT /v1/telemetry/{device}/{chunk}", c.put)
	c.mux.HandleFunc("GET /v1/telemetry/{device}", c.get)
	c.handler = cfg.Panics.HTTP("collector", c.mux)
	return c, nil
}

func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

func (c *Collector) authorized(r *http.Request, device string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if c.cfg.AllowAnyToken && c.cfg.Authorize == nil {
		return true
	}
	return ok && c.cfg.Authorize(device, tok)
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), code)
}

func (c *Collector) put(w http.ResponseWriter, r *http.Request) {
	device, chunk := r.PathValue("device"), r.PathValue("chunk")
	if !validID(device) || !validID(chunk) {
		httpError(w, http.StatusBadRequest, "device and chunk ids may only use letters, digits, '.', '_' and '-' (at most 128)")
		return
	}
	if !c.authorized(r, device) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netward"`)
		httpError(w, http.StatusUnauthorized, "missing or wrong bearer token for device %s", device)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "gzip" {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Encoding must be gzip, not %q", ce)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/x-ndjson, not %q", ct)
		return
	}
	if r.ContentLength > c.cfg.MaxCompressed {
		httpError(w, http.StatusRequestEntityTooLarge, "chunk is %d bytes; the limit is %d", r.ContentLength, c.cfg.MaxCompressed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.cfg.MaxCompressed))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, "chunk is larger than %d bytes", c.cfg.MaxCompressed)
			return
		}
		httpError(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	path := filepath.Join(c.cfg.Dir, device, chunk+chunkSuffix)
	if _, err := os.Stat(path); err == nil {
		w.WriteHeader(http.StatusOK) // idempotent: already stored
		return
	}
	recs, status, err := c.parse(body, device)
	if err != nil {
		httpError(w, status, "%v", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(path); err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := c.store(device, path, body); err != nil {
		c.cfg.Log.Error("collector cannot store chunk", "device", device, "chunk", chunk, "err", err)
		httpError(w, http.StatusInternalServerError, "store chunk: %v", err)
		return
	}
	if err := c.updateRollup(device, recs); err != nil {
		c.cfg.Log.Error("collector cannot update rollup", "device", device, "err", err)
	}
	w.WriteHeader(http.StatusCreated)
}

// parse decompresses body with a hard limit and checks every line.
func (c *Collector) parse(body []byte, device string) ([]Record, int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("body is not gzip: %w", err)
	}
	lr := &io.LimitedReader{R: zr, N: c.cfg.MaxDecompressed + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, min(4096, c.cfg.MaxLine)), c.cfg.MaxLine)
	var recs []Record
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		rec, err := decodeRecord(b)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("line %d: %w", line, err)
		}
		if err := checkRecord(&rec, device); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("line %d: %w", line, err)
		}
		recs = append(recs, rec)
	}
	if lr.N <= 0 {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("chunk decompresses to more than %d bytes", c.cfg.MaxDecompressed)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("line %d is longer than %d bytes", line+1, c.cfg.MaxLine)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("body is not valid gzip: %v", err)
	}
	if len(recs) == 0 {
		return nil, http.StatusBadRequest, errors.New("chunk has no records")
	}
	return recs, 0, nil
}

var knownActions = map[string]bool{
	ConnectionSuccess: true, ConnectionFailed: true, NetworkProtectionBlocked: true,
	NetworkProtectionWarned: true, NetworkProtectionAudited: true,
	NetworkProtectionUserBypassEvent: true, DnsQueryResponse: true, ActionTelemetryGap: true,
	ActionIndicatorSetStale: true, ActionIndicatorSetFresh: true, DeviceInfo: true,
}

// maxActionType bounds an unknown ActionType's length (it becomes a rollup key).
const maxActionType = 64

// decodeRecord reads one line: exactly one JSON object. A record of a known
// ActionType must use only known fields; a record of an ActionType this
// collector does not know (a newer agent's) may carry fields it does not
// know either (CONTRACT §6: receivers accept and count unknown ActionTypes).
func decodeRecord(b []byte) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(&rec)
	if err != nil {
		var loose Record
		ld := json.NewDecoder(bytes.NewReader(b))
		if ld.Decode(&loose) != nil || knownActions[loose.ActionType] || loose.ActionType == "" {
			return Record{}, fmt.Errorf("not a telemetry record: %v", err)
		}
		rec, dec = loose, ld
	}
	if dec.More() {
		return Record{}, errors.New("more than one JSON value")
	}
	return rec, nil
}

func checkRecord(r *Record, device string) error {
	switch {
	case r.Timestamp.IsZero():
		return errors.New("Timestamp is missing")
	case r.DeviceId != device:
		return fmt.Errorf("DeviceId %q does not match the upload URL's device %q", r.DeviceId, device)
	case r.ActionType == "" || len(r.ActionType) > maxActionType:
		return fmt.Errorf("ActionType %q is empty or longer than %d characters", r.ActionType, maxActionType)
	case r.RepeatCount < 0:
		return errors.New("negative RepeatCount")
	case r.RemotePort < 0 || r.RemotePort > 65535 || r.LocalPort < 0 || r.LocalPort > 65535:
		return errors.New("port outside 0..65535")
	case r.BytesSent < 0 || r.BytesReceived < 0 || r.LostRecords < 0:
		return errors.New("negative byte or record count")
	}
	return nil
}

func (c *Collector) store(device, path string, body []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileSync(path, body)
}

func (c *Collector) rollup(device string) (*DeviceRollup, error) {
	if ru, ok := c.rollups[device]; ok {
		return ru, nil
	}
	ru := &DeviceRollup{DeviceId: device}
	b, err := os.ReadFile(filepath.Join(c.cfg.Dir, device, "rollup.json"))
	if err == nil {
		if err := json.Unmarshal(b, ru); err != nil {
			return nil, fmt.Errorf("rollup of %s is corrupt: %w", device, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if ru.Names == nil {
		ru.Names = map[string]*AppRollup{}
	}
	if ru.URLs == nil {
		ru.URLs = map[string]*AppRollup{}
	}
	if ru.Applications == nil {
		ru.Applications = map[string]*AppRollup{}
	}
	if ru.Users == nil {
		ru.Users = map[string]*Seen{}
	}
	if ru.LocalIPs == nil {
		ru.LocalIPs = map[string]*Seen{}
	}
	c.rollups[device] = ru
	return ru, nil
}

// remoteHost is the host name of a record's RemoteUrl, which is a bare
// name ("www.example.com") or, for a plain-HTTP request with a path, a URL
// ("http://app.test/big.bin"); isURL says which.
func remoteHost(remote string) (host string, isURL bool) {
	if remote == "" {
		return "", false
	}
	rest := remote
	if _, after, ok := strings.Cut(rest, "://"); ok {
		rest, isURL = after, true
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest, isURL = rest[:i], true
	}
	if h, _, err := net.SplitHostPort(rest); err == nil {
		rest = h
	}
	rest = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
	return strings.ToLower(strings.TrimSuffix(rest, ".")), isURL
}

func (c *Collector) updateRollup(device string, recs []Record) error {
	ru, err := c.rollup(device)
	if err != nil {
		return err
	}
	ru.Chunks++
	for i := range recs {
		r := &recs[i]
		ts := r.Timestamp.UTC()
		if ru.FirstSeen.IsZero() || ts.Before(ru.FirstSeen) {
			ru.FirstSeen = ts
		}
		if ts.After(ru.LastSeen) {
			ru.LastSeen = ts
		}
		if r.DeviceName != "" {
			ru.DeviceName = r.DeviceName
		}
		switch {
		case r.ActionType == ActionTelemetryGap:
			ru.LostRecords += r.LostRecords
			continue
		case r.ActionType == DeviceInfo:
			c.rollupInfo(ru, r, ts)
			continue
		case r.ActionType == ActionIndicatorSetStale || r.ActionType == ActionIndicatorSetFresh:
			continue // about the feed, not a transaction
		case !knownActions[r.ActionType]:
			if ru.UnknownActions == nil {
				ru.UnknownActions = map[string]int64{}
			}
			if _, ok := ru.UnknownActions[r.ActionType]; ok || len(ru.UnknownActions) < c.cfg.MaxKeys {
				ru.UnknownActions[r.ActionType]++
			} else {
				ru.Overflow++
			}
			continue
		}
		n := max(r.RepeatCount, 1) // a deduplicated DNS answer stands for n
		ru.Transactions += n
		ru.BytesSent += r.BytesSent
		ru.BytesReceived += r.BytesReceived
		ru.TotalBytes += r.BytesSent + r.BytesReceived
		host, isURL := remoteHost(r.RemoteUrl)
		if host != "" {
			if a := bump(ru, ru.Names, host, c.cfg.MaxKeys); a != nil {
				a.Application = r.Application
				touchN(&a.Seen, ts, n)
				a.BytesSent += r.BytesSent
				a.BytesReceived += r.BytesReceived
			}
		}
		if isURL {
			if a := bump(ru, ru.URLs, r.RemoteUrl, c.cfg.MaxKeys); a != nil {
				a.Application = r.Application
				touchN(&a.Seen, ts, n)
				a.BytesSent += r.BytesSent
				a.BytesReceived += r.BytesReceived
			}
		}
		if r.Application != "" {
			if a := bump(ru, ru.Applications, r.Application, c.cfg.MaxKeys); a != nil {
				a.Application = r.Application
				touchN(&a.Seen, ts, n)
				a.BytesSent += r.BytesSent
				a.BytesReceived += r.BytesReceived
			}
		}
		if r.InitiatingProcessAccountName != "" {
			if s := bump(ru, ru.Users, r.InitiatingProcessAccountName, c.cfg.MaxKeys); s != nil {
				touch(s, ts)
			}
		}
		if r.LocalIP != "" {
			if s := bump(ru, ru.LocalIPs, r.LocalIP, c.cfg.MaxKeys); s != nil {
				touch(s, ts)
			}
		}
	}
	b, err := json.Marshal(ru)
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(c.cfg.Dir, device, "rollup.json"), b)
}

func bump[T any](ru *DeviceRollup, m map[string]*T, key string, max int) *T {
	if v, ok := m[key]; ok {
		return v
	}
	if len(m) >= max {
		ru.Overflow++
		return nil
	}
	v := new(T)
	m[key] = v
	return v
}

func touch(s *Seen, ts time.Time) { touchN(s, ts, 1) }

func touchN(s *Seen, ts time.Time, n int64) {
	if s.FirstSeen.IsZero() || ts.Before(s.FirstSeen) {
		s.FirstSeen = ts
	}
	if ts.After(s.LastSeen) {
		s.LastSeen = ts
	}
	s.Transactions += n
}

// rollupInfo keeps the latest machine record and adds its signed-in users
// and addresses to the device's user and IP address history.
func (c *Collector) rollupInfo(ru *DeviceRollup, r *Record, ts time.Time) {
	if ru.Info == nil || !ts.Before(ru.Info.At) {
		ru.Info = &DeviceInfoRollup{At: ts, OSPlatform: r.OSPlatform, OSVersion: r.OSVersion, AgentVersion: r.AgentVersion,
			PolicySequence: r.PolicySequence, IPAddresses: r.IPAddresses, LoggedOnUsers: r.LoggedOnUsers}
	}
	for _, u := range r.LoggedOnUsers {
		if u == "" {
			continue
		}
		if s := bump(ru, ru.Users, u, c.cfg.MaxKeys); s != nil {
			touch(s, ts)
		}
	}
	for _, a := range r.IPAddresses {
		if a.Address == "" {
			continue
		}
		if s := bump(ru, ru.LocalIPs, a.Address, c.cfg.MaxKeys); s != nil {
			touch(s, ts)
		}
	}
}

// Rollup returns a copy of a device's rollup (JSON round trip), or nil.
func (c *Collector) Rollup(device string) (*DeviceRollup, error) {
	if !validID(device) {
		return nil, fmt.Errorf("invalid device id %q", device)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ru, err := c.rollup(device)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(ru)
	if err != nil {
		return nil, err
	}
	out := new(DeviceRollup)
	return out, json.Unmarshal(b, out)
}

func (c *Collector) get(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("device")
	if !validID(device) {
		httpError(w, http.StatusBadRequest, "invalid device id")
		return
	}
	if !c.authorized(r, device) {
		httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	ru, err := c.Rollup(device)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ru)
}
