package ui

// Interim: the fleet-wide discovery data of the Dashboard, Discovered apps
// and machine pages, read from the store (console/store/ui_interim.go)
// while part 2's analytics API (issue 18) is built in parallel. Everything
// the pages need from it goes through the functions of this file, so
// switching to the part-2 endpoints (GET /api/discovery/...) replaces this
// file alone.

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/netward/netward/console/catalog"

	"github.com/netward/netward/console/store"
)

// discovery is what the discovery pages read for one period.
type discovery struct {
	from, to time.Time
	step     time.Duration
}

func (u *UI) appTotals(r *http.Request, device string, d discovery) ([]store.UIAppTotal, error) {
	return u.cfg.Store.UIAppTotals(r.Context(), device, d.from, d.to)
}

func (u *UI) series(r *http.Request, device, app string, d discovery) ([]store.UIPoint, error) {
	return u.cfg.Store.UISeries(r.Context(), device, app, d.from, d.to, d.step)
}

func (u *UI) appBy(r *http.Request, app, by string, d discovery) ([]store.UIAppBreakdown, error) {
	return u.cfg.Store.UIAppBy(r.Context(), app, by, d.from, d.to)
}

func (u *UI) appUsers(r *http.Request, app string, d discovery) ([]store.UIAppUser, error) {
	return u.cfg.Store.UIAppUsers(r.Context(), app, d.from, d.to)
}

func (u *UI) fleetTotals(r *http.Request, d discovery) (users, machines int64, err error) {
	return u.cfg.Store.UIFleetTotals(r.Context(), d.from, d.to)
}

// event is one raw telemetry record of a machine's timeline.
type event struct {
	Timestamp                    time.Time `json:"Timestamp"`
	ActionType                   string    `json:"ActionType"`
	RemoteUrl                    string    `json:"RemoteUrl"`
	RemoteIP                     string    `json:"RemoteIP"`
	RemotePort                   int       `json:"RemotePort"`
	InitiatingProcessAccountName string    `json:"InitiatingProcessAccountName"`
	InitiatingProcessFileName    string    `json:"InitiatingProcessFileName"`
	BytesSent                    int64     `json:"BytesSent"`
	BytesReceived                int64     `json:"BytesReceived"`
}

// maxEventChunks bounds the raw chunks one timeline reads; maxEvents the
// records it keeps.
const (
	maxEventChunks = 200
	maxEvents      = 500
)

// events reads a machine's raw chunks in the period, newest first, and
// keeps the records of action (any when "") whose host is domain or under
// it (any when ""). Truncated says the limits cut the timeline short.
func (u *UI) events(r *http.Request, device, action, domain string, d discovery) (list []event, truncated bool, err error) {
	if u.cfg.ChunkDir == "" {
		return nil, false, nil
	}
	// Chunks are stored when received; a record may be an hour older than
	// its chunk (the agent's flush interval), so read a little past the end.
	chunks, err := u.cfg.Store.UIDeviceChunks(r.Context(), device, d.from, d.to.Add(24*time.Hour), maxEventChunks+1)
	if err != nil {
		return nil, false, err
	}
	if len(chunks) > maxEventChunks {
		chunks, truncated = chunks[:maxEventChunks], true
	}
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	for _, c := range chunks {
		if err := r.Context().Err(); err != nil {
			return nil, false, err
		}
		recs, err := readChunk(filepath.Join(u.cfg.ChunkDir, filepath.Clean("/" + c.Path)[1:]))
		if err != nil {
			u.log.Warn("ui: raw chunk not readable; the timeline skips it", "device", device, "chunk", c.ChunkID, "err", err)
			continue
		}
		for _, e := range recs {
			if e.Timestamp.Before(d.from) || !e.Timestamp.Before(d.to) || action != "" && e.ActionType != action {
				continue
			}
			if domain != "" {
				h := catalog.HostOf(e.RemoteUrl)
				if h != domain && !strings.HasSuffix(h, "."+domain) {
					continue
				}
			}
			list = append(list, e)
		}
	}
	slices.SortStableFunc(list, func(a, b event) int { return b.Timestamp.Compare(a.Timestamp) })
	if len(list) > maxEvents {
		list, truncated = list[:maxEvents], true
	}
	return list, truncated, nil
}

// readChunk parses a stored chunk (gzip NDJSON, or plain NDJSON), skipping
// lines that are not records (the ingest counted and skipped them too).
func readChunk(path string) ([]event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var rd io.Reader = br
	if b, _ := br.Peek(2); len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = io.LimitReader(zr, 64<<20)
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []event
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) == nil && !e.Timestamp.IsZero() && e.ActionType != "DeviceInfo" {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}
