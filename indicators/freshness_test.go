package indicators

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

var freshStart = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// seqDoc is a feed document with a sequence made at 'at'.
func seqDoc(seq uint64, at time.Time, values ...string) Document {
	d := doc("", values...)
	d.Sequence, d.GeneratedAt = seq, at
	return d
}

// answer is one HTTP response as a client saw it.
type answer struct {
	code int
	hdr  http.Header
	body []byte
}

// pathProxy stands between agent and console, as an attacker in the path
// would: it forwards to the real feed and remembers every answer, or
// replays a remembered one for ever, or strips a header.
type pathProxy struct {
	target string
	srv    *httptest.Server
	replay atomic.Pointer[answer]
	strip  atomic.Value // header name to drop ("" none)
	mu     sync.Mutex
	last   map[int]*answer // by status code
	agents []string        // Netward-Agent of each request
}

func newPathProxy(t *testing.T, target string) *pathProxy {
	p := &pathProxy{target: target, last: map[int]*answer{}}
	p.strip.Store("")
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pathProxy) url() string { return p.srv.URL + "/v1/indicators" }

func (p *pathProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.agents = append(p.agents, r.Header.Get(AgentHeader))
	p.mu.Unlock()
	a := p.replay.Load()
	if a == nil {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a = &answer{resp.StatusCode, resp.Header.Clone(), body}
		p.mu.Lock()
		p.last[a.code] = a
		p.mu.Unlock()
	}
	for k, v := range a.hdr {
		w.Header()[k] = v
	}
	if h, _ := p.strip.Load().(string); h != "" {
		w.Header().Del(h)
	}
	w.WriteHeader(a.code)
	_, _ = w.Write(a.body)
}

func (p *pathProxy) lastAnswer(code int) *answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[code]
}

// feedRig is a signed feed (the package's Handler on a settable clock)
// behind a pathProxy, and a Sync following it through the proxy.
type feedRig struct {
	clk   *e2e.Clock
	h     *Handler
	proxy *pathProxy
	store *Store
	ups   updates
	s     *Sync
}

func newFeedRig(t *testing.T, storePath string, pub ed25519.PublicKey, priv ed25519.PrivateKey) *feedRig {
	t.Helper()
	r := &feedRig{clk: e2e.NewClock(freshStart), ups: make(updates, 8)}
	r.h = NewHandler(HandlerConfig{Key: priv, Now: r.clk.Now})
	real := httptest.NewServer(r.h)
	t.Cleanup(real.Close)
	r.proxy = newPathProxy(t, real.URL)
	r.store = openTestStore(t, storePath)
	r.s = r.sync(t, pub)
	return r
}

// sync is a new Sync (a restarted agent) on the rig's store.
func (r *feedRig) sync(t *testing.T, pub ed25519.PublicKey) *Sync {
	t.Helper()
	s, err := NewSync(SyncConfig{Source: r.proxy.url(), PublicKey: pub, Store: r.store, Apply: r.ups.apply, Now: r.clk.Now,
		Agent: AgentInfo{Version: "9.9", Platform: "linux", OSVersion: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *feedRig) publish(t *testing.T, d Document) {
	t.Helper()
	if err := r.h.SetDocument(d); err != nil {
		t.Fatal(err)
	}
}

// TestSyncRollbackRefused is issue 14 §2: an attacker in the path replays an
// older, validly signed body. It is refused (lower sequence), as is a body
// with the held sequence but another version; the floor survives a restart;
// a new signing key resets it.
func TestSyncRollbackRefused(t *testing.T) {
	pub, priv := testKey(t)
	storePath := filepath.Join(t.TempDir(), "indicators.db")
	r := newFeedRig(t, storePath, pub, priv)
	ctx := context.Background()

	r.publish(t, seqDoc(1, freshStart, "warned-before.test"))
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	r.ups.next(t)
	old := r.proxy.lastAnswer(http.StatusOK) // a valid, signed, older body
	r.publish(t, seqDoc(2, freshStart.Add(time.Hour), "blocked-now.test"))
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if up := r.ups.next(t); action(up.Policy, "blocked-now.test") != "Block" || up.Set.Sequence != 2 {
		t.Fatalf("seq 2 not applied: %d", up.Set.Sequence)
	}

	refused := func(s *Sync, a *answer, want string) {
		t.Helper()
		r.proxy.replay.Store(a)
		defer r.proxy.replay.Store(nil)
		err := s.Reload(ctx)
		if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), want) {
			t.Fatalf("replay: Reload = %v, want a rollback error with %q", err, want)
		}
		r.ups.none(t)
		if st := s.Status(); st.Sequence != 2 || !strings.Contains(st.LastError, "rollback") {
			t.Errorf("status after the replay: %+v", st)
		}
		if rec, _, _ := r.store.Load(); !bytes.Contains(rec.Body, []byte("blocked-now.test")) || rec.State.Seq != 2 {
			t.Errorf("store after the replay holds seq %d", rec.State.Seq)
		}
	}
	refused(r.s, old, "sequence 1 is lower than the 2 held")

	// Same sequence, another version: a console never does that, a forger
	// holding an old key might.
	other, _ := seqDoc(2, freshStart, "other.test").Marshal()
	refused(r.s, &answer{200, http.Header{SignatureHeader: {"ed25519=" + b64(ed25519.Sign(priv, other))}}, other},
		"sequence 2 is the one held but its version")

	// A restarted agent keeps the floor.
	s2 := r.sync(t, pub)
	if ok, err := s2.Restore(); !ok || err != nil {
		t.Fatalf("Restore: %v %v", ok, err)
	}
	r.ups.next(t)
	refused(s2, old, "sequence 1 is lower than the 2 held")

	// A new signing key resets the floor (a console restored without its
	// sequence signs with a new key): the first set it sends is taken.
	pub2, priv2, _ := ed25519.GenerateKey(nil)
	r2 := newFeedRig(t, filepath.Join(t.TempDir(), "unused.db"), pub2, priv2)
	r2.publish(t, seqDoc(1, freshStart, "after-restore.test"))
	r.proxy.target = r2.proxy.target
	s3 := r.sync(t, pub2)
	if ok, _ := s3.Restore(); ok {
		t.Fatal("the set signed with the old key was restored under the new one")
	}
	if err := s3.Reload(ctx); err != nil {
		t.Fatalf("first set under a new key: %v", err)
	}
	if up := r.ups.next(t); action(up.Policy, "after-restore.test") != "Block" {
		t.Fatal("new key's set not applied")
	}
	if st := s3.Status(); st.Sequence != 1 {
		t.Errorf("floor after the new key: %d, want 1", st.Sequence)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestSyncFreshness: every 200 and 304 carries a proof; an agent reports its
// set stale when the last proof is older than MaxAge — a path answering 304
// for ever, a replayed body, a stripped header — keeps the set in force,
// and is fresh again when a current proof arrives. It also checks the
// check-in header.
func TestSyncFreshness(t *testing.T) {
	pub, priv := testKey(t)
	r := newFeedRig(t, filepath.Join(t.TempDir(), "indicators.db"), pub, priv)
	ctx := context.Background()
	r.publish(t, seqDoc(7, freshStart, "a.test"))
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	r.ups.next(t)
	st := r.s.Status()
	if st.Stale || !st.FreshAt.Equal(freshStart) || st.Sequence != 7 || st.FreshnessError != "" {
		t.Fatalf("after the first set: %+v", st)
	}

	// Two days on, a 304 brings a new proof (signed at that time).
	r.clk.Add(48 * time.Hour)
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); !st.FreshAt.Equal(freshStart.Add(48*time.Hour)) || st.Stale {
		t.Fatalf("after a 304 two days on: %+v", st)
	}
	frozen := r.proxy.lastAnswer(http.StatusNotModified)
	if frozen == nil || frozen.hdr.Get(FreshnessHeader) == "" {
		t.Fatal("the 304 carried no Netward-Freshness")
	}

	// The path freezes: it answers that 304 for ever. 73 hours later the
	// set is stale, and still in force.
	r.proxy.replay.Store(frozen)
	r.clk.Add(73 * time.Hour)
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	st = r.s.Status()
	if !st.Stale || st.Version == "" || !st.FreshAt.Equal(freshStart.Add(48*time.Hour)) {
		t.Fatalf("frozen path after 73 h: %+v, want stale with the old proof", st)
	}
	r.ups.none(t)

	// The path comes back: a current proof makes it fresh.
	r.proxy.replay.Store(nil)
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); st.Stale {
		t.Fatalf("after a current 304: %+v", st)
	}

	// A replayed body (the same set, with its old proof) does not refresh.
	old := r.proxy.lastAnswer(http.StatusOK)
	r.proxy.replay.Store(old)
	r.clk.Add(80 * time.Hour)
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// Its old proof verifies, but never moves the freshness back.
	if st := r.s.Status(); !st.Stale || !st.FreshAt.Equal(freshStart.Add(121*time.Hour)) {
		t.Fatalf("replayed body: %+v, want stale with the newest proof's time kept", st)
	}
	r.proxy.replay.Store(nil)

	// A path that strips the header proves nothing, and says why.
	r.proxy.strip.Store(FreshnessHeader)
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); !st.Stale || !strings.Contains(st.FreshnessError, "no Netward-Freshness header") {
		t.Fatalf("stripped header: %+v", st)
	}
	// A proof for another version (a 304 answered with some other set's
	// proof) does not verify.
	other := SignFreshness(priv, 9, "sha256-other", r.clk.Now())
	r.proxy.strip.Store("")
	r.proxy.replay.Store(&answer{http.StatusNotModified, http.Header{FreshnessHeader: {other.String()}}, nil})
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); !st.Stale || !strings.Contains(st.FreshnessError, "signature does not match") || st.Sequence != 7 {
		t.Fatalf("proof for another version: %+v", st)
	}
	r.proxy.replay.Store(nil)

	// Every request carried the check-in with the sequence held.
	r.proxy.mu.Lock()
	defer r.proxy.mu.Unlock()
	a, err := ParseAgentInfo(r.proxy.agents[len(r.proxy.agents)-1])
	if err != nil || a.Version != "9.9" || a.Platform != "linux" || a.OSVersion != "test" || a.Seq != 7 {
		t.Errorf("check-in %q: %+v %v", r.proxy.agents[len(r.proxy.agents)-1], a, err)
	}
	if first, _ := ParseAgentInfo(r.proxy.agents[0]); first.Seq != 0 {
		t.Errorf("first check-in seq %d, want 0 (nothing held)", first.Seq)
	}
}

// TestSyncFreshnessSurvivesRestart: the proof time is kept in the store, so
// a restarted agent with the feed down reports the set's real age.
func TestSyncFreshnessSurvivesRestart(t *testing.T) {
	pub, priv := testKey(t)
	r := newFeedRig(t, filepath.Join(t.TempDir(), "indicators.db"), pub, priv)
	r.publish(t, seqDoc(3, freshStart, "a.test"))
	if err := r.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.ups.next(t)
	r.clk.Add(24 * time.Hour)
	if err := r.s.Reload(context.Background()); err != nil { // 304 with a proof a day later
		t.Fatal(err)
	}
	s2 := r.sync(t, pub)
	if ok, err := s2.Restore(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	r.ups.next(t)
	if st := s2.Status(); st.Sequence != 3 || !st.FreshAt.Equal(freshStart.Add(24*time.Hour)) {
		t.Errorf("restored state: %+v", st)
	}
}

// TestSyncUnsignedFeedRollback: without a public key the transport is
// trusted for freshness (an answer is fresh when it arrives), and the
// rollback floor still refuses a lower sequence from the same source.
func TestSyncUnsignedFeedRollback(t *testing.T) {
	r := newFeedRig(t, filepath.Join(t.TempDir(), "indicators.db"), nil, nil)
	ctx := context.Background()
	r.publish(t, seqDoc(5, freshStart.Add(-100*time.Hour), "a.test"))
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	r.ups.next(t)
	if st := r.s.Status(); st.Stale || !st.FreshAt.Equal(freshStart) {
		t.Errorf("unsigned: %+v, want fresh as of the answer", st)
	}
	old := r.proxy.lastAnswer(http.StatusOK)
	r.publish(t, seqDoc(6, freshStart, "b.test"))
	if err := r.s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	r.ups.next(t)
	r.proxy.replay.Store(old)
	if err := r.s.Reload(ctx); !errors.Is(err, ErrRollback) {
		t.Errorf("unsigned replay: %v, want ErrRollback", err)
	}
}

// TestSyncFileSourceExempt: file:// sources carry no sequence rules and no
// freshness — an admin may put back an older file.
func TestSyncFileSourceExempt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feed.json")
	body := func(seq uint64, v string) string {
		b, _ := seqDoc(seq, freshStart.Add(-1000*time.Hour), v).Marshal()
		return string(b)
	}
	writeFile(t, path, body(5, "five.test"))
	ups := make(updates, 8)
	s, err := NewSync(SyncConfig{Source: "file://" + filepath.ToSlash(path), Apply: ups.apply})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	ups.next(t)
	writeFile(t, path, body(3, "three.test"))
	if err := s.Reload(context.Background()); err != nil {
		t.Fatalf("a lower sequence in a file: %v", err)
	}
	if up := ups.next(t); action(up.Policy, "three.test") != "Block" {
		t.Fatal("not applied")
	}
	if st := s.Status(); st.Stale || st.Sequence != 0 || !st.FreshAt.IsZero() {
		t.Errorf("file status %+v: no freshness or floor for files", st)
	}
}

// TestSyncRestoreWithoutState: a store written before the feed state
// existed (an upgraded agent) restores the floor and the freshness from the
// stored set's own sequence and generatedAt.
func TestSyncRestoreWithoutState(t *testing.T) {
	pub, priv := testKey(t)
	st := openTestStore(t, filepath.Join(t.TempDir(), "indicators.db"))
	body, _ := seqDoc(9, freshStart, "old.test").Marshal()
	src := "https://console.example/v1/indicators"
	if err := st.Save(Record{Body: body, Version: "v", Signature: "ed25519=" + b64(ed25519.Sign(priv, body)), Source: src, FetchedAt: freshStart}); err != nil {
		t.Fatal(err)
	}
	ups := make(updates, 1)
	s, err := NewSync(SyncConfig{Source: src, PublicKey: pub, Store: st, Apply: ups.apply, Now: func() time.Time { return freshStart.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Restore(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got := s.Status(); got.Sequence != 9 || !got.FreshAt.Equal(freshStart) || got.Stale {
		t.Errorf("restored without state: %+v", got)
	}
}
