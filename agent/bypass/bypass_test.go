package bypass

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netward/netward/filter"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, path string, now time.Time) *Store {
	t.Helper()
	s, err := Open(Config{Path: path}, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	dropbox  = &filter.Rule{Value: "dropbox.com", Type: filter.TypeDomain, Action: filter.Warn, ID: "7", Meta: &filter.RuleMeta{Application: "Dropbox"}}
	dropbox2 = &filter.Rule{Value: "dropboxusercontent.com", Type: filter.TypeDomain, Action: filter.Warn, ID: "8", Meta: &filter.RuleMeta{Application: "Dropbox"}}
	plain    = &filter.Rule{Value: "warned.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "9"}
	plainURL = &filter.Rule{Value: "warned.test", Type: filter.TypeURL, Action: filter.Warn, ID: "10"}
)

func warn(r *filter.Rule) filter.Match { return filter.Match{Action: filter.Warn, Rule: r} }

func put(t *testing.T, s *Store, r *filter.Rule, user string, d time.Duration) Entry {
	t.Helper()
	e, err := NewEntry(warn(r), r.Value, user, HowCLI, t0, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestKeySemantics(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "b.db"), t0)
	put(t, s, dropbox, "alice", time.Hour)
	put(t, s, plain, "", time.Hour)
	now := t0.Add(time.Minute)
	tests := []struct {
		name string
		m    filter.Match
		user string
		want bool
	}{
		{"same indicator, same user", warn(dropbox), "alice", true},
		{"other indicator of the same application", warn(dropbox2), "alice", true},
		{"application bypass counts for any user on the DNS path", warn(dropbox2), "", true},
		{"application bypass is per user where the user is known", warn(dropbox), "bob", false},
		{"device-wide bypass covers every user", warn(plain), "bob", true},
		{"device-wide bypass, any user", warn(plain), "", true},
		{"same value but another indicator type", warn(plainURL), "", false},
		{"block never bypassed", filter.Match{Action: filter.Block, Rule: &filter.Rule{Value: "dropbox.com", Action: filter.Block, Meta: &filter.RuleMeta{Application: "Dropbox"}}}, "alice", false},
		{"indicator became Block", filter.Match{Action: filter.Block, Rule: &filter.Rule{Value: "warned.test", Action: filter.Block}}, "", false},
		{"indicator disappeared", filter.Match{}, "", false},
		{"audit never bypassed", filter.Match{Action: filter.Audit, Rule: plain}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := s.Active(tc.m, tc.user, now)
			if got != tc.want {
				t.Errorf("Active(%v, %q) = %v, want %v", tc.m.Rule, tc.user, got, tc.want)
			}
		})
	}
}

func TestNewEntryRefusesBlock(t *testing.T) {
	blk := filter.Match{Action: filter.Block, Rule: &filter.Rule{Value: "blocked.test", Action: filter.Block}}
	if _, err := NewEntry(blk, "blocked.test", "", HowPage, t0, time.Hour); !errors.Is(err, ErrBlock) {
		t.Errorf("NewEntry(Block) err = %v, want ErrBlock", err)
	}
	if _, err := NewEntry(filter.Match{}, "x.test", "", HowPage, t0, time.Hour); !errors.Is(err, ErrNotWarned) {
		t.Errorf("NewEntry(no match) err = %v, want ErrNotWarned", err)
	}
}

// Expiry is exact to the second: active one nanosecond before, gone at it.
func TestExpiryExactSecond(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "b.db"), t0)
	created := t0.Add(300 * time.Millisecond) // truncated to t0
	e, err := NewEntry(warn(plain), "warned.test", "", HowPage, created, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	want := t0.Add(90 * time.Second)
	if !e.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want %v", e.Expires, want)
	}
	if exp, ok := s.Active(warn(plain), "", want.Add(-time.Nanosecond)); !ok || !exp.Equal(want) {
		t.Errorf("1ns before expiry: Active = %v %v, want %v true", exp, ok, want)
	}
	if _, ok := s.Active(warn(plain), "", want); ok {
		t.Errorf("at expiry: still active")
	}
	if n, err := s.Purge(want.Add(-time.Second)); err != nil || n != 0 {
		t.Errorf("Purge before expiry = %d %v, want 0", n, err)
	}
	if n, err := s.Purge(want); err != nil || n != 1 {
		t.Errorf("Purge at expiry = %d %v, want 1", n, err)
	}
	if l := s.List(t0); len(l) != 0 {
		t.Errorf("List after purge = %v", l)
	}
}

func TestSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "b.db")
	s := open(t, path, t0)
	put(t, s, dropbox, "alice", time.Hour)
	put(t, s, plain, "", 2*time.Minute)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen after the short one expired: it is purged from disk, the long one stays.
	s2 := open(t, path, t0.Add(3*time.Minute))
	if _, ok := s2.Active(warn(dropbox2), "alice", t0.Add(3*time.Minute)); !ok {
		t.Error("application bypass lost across restart")
	}
	l := s2.List(t0)
	if len(l) != 1 || l[0].Application != "Dropbox" || l[0].Who != "alice" || l[0].How != HowCLI {
		t.Errorf("List after restart = %+v, want the Dropbox entry only", l)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestReplaceRemoveStatsBound(t *testing.T) {
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "b.db"), MaxEntries: 2}, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, dropbox, "alice", time.Hour)
	put(t, s, dropbox, "alice", 2*time.Hour) // replaces
	put(t, s, plain, "", time.Hour)
	if got := len(s.List(t0)); got != 2 {
		t.Fatalf("len(List) = %d, want 2", got)
	}
	if exp, _ := s.Active(warn(dropbox), "alice", t0); !exp.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("replaced entry expires %v, want %v", exp, t0.Add(2*time.Hour))
	}
	e, _ := NewEntry(warn(dropbox), "dropbox.com", "bob", HowPage, t0, time.Hour)
	if err := s.Put(e); !errors.Is(err, ErrFull) {
		t.Errorf("Put past MaxEntries err = %v, want ErrFull", err)
	}
	st := s.Stats(t0)
	if st["Dropbox"] != 1 || st["warned.test"] != 1 {
		t.Errorf("Stats = %v", st)
	}
	n, err := s.Remove(func(e Entry) bool { return e.Matches("dropbox") })
	if err != nil || n != 1 {
		t.Errorf("Remove(dropbox) = %d %v, want 1", n, err)
	}
	if _, ok := s.Active(warn(dropbox), "alice", t0); ok {
		t.Error("revoked bypass still active")
	}
	if got := s.NextExpiry(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("NextExpiry = %v", got)
	}
}

func TestActiveAllocs(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "b.db"), t0)
	put(t, s, dropbox, "alice", time.Hour)
	put(t, s, plain, "", time.Hour)
	m1, m2 := warn(dropbox2), warn(plain)
	if n := testing.AllocsPerRun(100, func() {
		s.Active(m1, "", t0)
		s.Active(m2, "bob", t0)
	}); n != 0 {
		t.Errorf("Active allocates %v times per call, want 0", n)
	}
}

func BenchmarkActive(b *testing.B) {
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "b.db")}, t0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e, _ := NewEntry(warn(plain), "warned.test", "", HowCLI, t0, time.Hour)
	if err := s.Put(e); err != nil {
		b.Fatal(err)
	}
	m := warn(plain)
	b.ReportAllocs()
	for b.Loop() {
		s.Active(m, "", t0)
	}
}

// BenchmarkActiveBaseline is the naive design this store replaces: a mutex
// around a map keyed by a concatenated string. README quotes the ratio.
func BenchmarkActiveBaseline(b *testing.B) {
	var mu sync.Mutex
	m := map[string]time.Time{"\x00" + "DomainName:" + plain.Value: t0.Add(time.Hour)}
	match := warn(plain)
	b.ReportAllocs()
	for b.Loop() {
		mu.Lock()
		exp := m["\x00"+match.Rule.Type.String()+":"+match.Rule.Value]
		mu.Unlock()
		_ = t0.Before(exp)
	}
}

func BenchmarkActiveParallel(b *testing.B) {
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "b.db")}, t0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e, _ := NewEntry(warn(plain), "warned.test", "", HowCLI, t0, time.Hour)
	if err := s.Put(e); err != nil {
		b.Fatal(err)
	}
	m := warn(plain)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Active(m, "", t0)
		}
	})
}

func BenchmarkPut(b *testing.B) {
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "b.db")}, t0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e, _ := NewEntry(warn(plain), "warned.test", "", HowCLI, t0, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Put(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkActiveBaselineParallel(b *testing.B) {
	var mu sync.Mutex
	m := map[string]time.Time{"\x00" + "DomainName:" + plain.Value: t0.Add(time.Hour)}
	match := warn(plain)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			exp := m["\x00"+match.Rule.Type.String()+":"+match.Rule.Value]
			mu.Unlock()
			_ = t0.Before(exp)
		}
	})
}

// Prune keeps the bypasses whose indicator is still a Warn (by application
// or by value) and removes the rest for good; every change of the entries
// is announced through OnChange.
func TestPruneAndOnChange(t *testing.T) {
	var changes int
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "b.db"), OnChange: func() { changes++ }}, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opened := changes
	put(t, s, dropbox, "alice", time.Hour)
	put(t, s, plain, "", time.Hour)
	if changes != opened+2 {
		t.Fatalf("OnChange called %d times for two puts", changes-opened)
	}
	if got, want := TargetOf(dropbox2), "app:Dropbox"; got != want {
		t.Errorf("TargetOf(application rule) = %q, want %q", got, want)
	}
	if got, want := TargetOf(plain), "DomainName:warned.test"; got != want {
		t.Errorf("TargetOf(plain rule) = %q, want %q", got, want)
	}
	// Dropbox is still warned through its other domain; warned.test became
	// a Block.
	p, err := filter.Compile([]filter.Rule{*dropbox2, {Value: "warned.test", Type: filter.TypeDomain, Action: filter.Block, ID: "9"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(p); n != 1 || err != nil {
		t.Fatalf("Prune = %d, %v; want warned.test removed", n, err)
	}
	if l := s.List(t0); len(l) != 1 || l[0].Application != "Dropbox" {
		t.Errorf("after Prune: %+v, want the Dropbox bypass", l)
	}
	if changes != opened+3 {
		t.Errorf("OnChange called %d times, want 3 (two puts, one prune)", changes-opened)
	}
	if n, _ := s.Prune(p); n != 0 || changes != opened+3 {
		t.Errorf("a Prune that removes nothing: %d removed, %d changes announced", n, changes-opened-3)
	}
}

// TestNewEntryExpiryToTheSecond: a fractional duration (a feed's
// bypassDurationHours of 0.0001 is 360 ms) still gives an expiry on a whole
// second, as docs/warn.md says, and never one at or before the creation.
func TestNewEntryExpiryToTheSecond(t *testing.T) {
	now := t0.Add(700 * time.Millisecond)
	for _, tc := range []struct {
		d    time.Duration
		want time.Duration // after t0
	}{
		{1500 * time.Millisecond, time.Second},
		{360 * time.Millisecond, time.Second},
		{time.Duration(0.25 * float64(time.Hour)), 15 * time.Minute},
		{2*time.Hour + 999*time.Millisecond, 2 * time.Hour},
	} {
		e, err := NewEntry(warn(plain), "warned.test", "", HowCLI, now, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Created.Equal(t0) || !e.Expires.Equal(t0.Add(tc.want)) || e.Expires.Nanosecond() != 0 {
			t.Errorf("duration %v: created %v expires %v, want %v and %v", tc.d, e.Created, e.Expires, t0, t0.Add(tc.want))
		}
	}
}
