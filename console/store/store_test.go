package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMigrateTwice(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if err := s.migrate(context.Background()); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
	})
}

func TestAccountsSessionsTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, err := s.CreateAccount(ctx, "alice", RoleAdmin, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAccount(ctx, "alice", RoleViewer, "h2"); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate account err = %v, want ErrExists", err)
		}
		now := time.Now()
		for _, id := range []string{"keep", "drop"} {
			if err := s.CreateSession(ctx, Session{IDHash: id, AccountID: a.ID, CSRF: "c-" + id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		se, acc, err := s.SessionAccount(ctx, "keep", now)
		if err != nil || acc.Name != "alice" || se.CSRF != "c-keep" {
			t.Fatalf("SessionAccount = %+v %+v %v", se, acc, err)
		}
		if _, _, err := s.SessionAccount(ctx, "keep", now.Add(2*time.Hour)); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired session err = %v, want ErrNotFound", err)
		}
		if err := s.SetPassword(ctx, a.ID, "h3", "keep"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SessionAccount(ctx, "drop", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("other session after password change err = %v, want ErrNotFound", err)
		}
		if _, acc, _ := s.SessionAccount(ctx, "keep", now); acc.PasswordHash != "h3" {
			t.Errorf("password hash = %q, want h3", acc.PasswordHash)
		}
		tok, err := s.CreateAPIToken(ctx, APIToken{AccountID: a.ID, Name: "ci", Hash: "th", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, acc, err := s.APITokenAccount(ctx, "th", now); err != nil || acc.Name != "alice" {
			t.Errorf("APITokenAccount = %+v, %v", acc, err)
		}
		if _, _, err := s.APITokenAccount(ctx, "th", now.Add(2*time.Hour)); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired token err = %v", err)
		}
		if err := s.DeleteAccount(ctx, "alice"); err == nil {
			t.Error("deleted the last admin")
		}
		if _, err := s.CreateAccount(ctx, "bob", RoleAdmin, "h"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAccount(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.APITokenAccount(ctx, "th", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("token of a deleted account err = %v, want ErrNotFound", err)
		}
		_ = tok
	})
}

func TestEnrollAndRevoke(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now()
		k, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "laptops", Hash: "kh", CreatedBy: "alice", CreatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "old", Hash: "expired", CreatedBy: "alice", CreatedAt: now, ExpiresAt: now.Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, "expired", Device{ID: "d1", Name: "pc", TokenHash: "t0"}, ""); !errors.Is(err, ErrKeyInvalid) {
			t.Errorf("expired key err = %v", err)
		}
		d, kind, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t1"}, "")
		if err != nil || d.ID != "d1" || d.EnrollmentKeyID != k.ID || kind != EnrolledNew {
			t.Fatalf("Enroll = %+v, %v, %v", d, kind, err)
		}
		// A valid key alone never takes over an active device (review #1),
		// nor does a wrong token.
		for _, cur := range []string{"", "t-wrong"} {
			if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "evil", TokenHash: "tx"}, cur); !errors.Is(err, ErrDeviceEnrolled) {
				t.Errorf("re-enroll with current %q: err = %v, want ErrDeviceEnrolled", cur, err)
			}
		}
		if d, err := s.DeviceByToken(ctx, "t1"); err != nil || d.Name != "pc" {
			t.Errorf("the device's token after a refused takeover = %+v, %v", d, err)
		}
		// The device itself re-enrolls by proving its token.
		if _, kind, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc2", TokenHash: "t2"}, "t1"); err != nil || kind != ReenrolledProof {
			t.Fatal(kind, err)
		}
		if _, err := s.DeviceByToken(ctx, "t1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old token still valid: %v", err)
		}
		if d, err := s.DeviceByToken(ctx, "t2"); err != nil || d.Name != "pc2" {
			t.Errorf("DeviceByToken(t2) = %+v, %v", d, err)
		}
		keys, _ := s.EnrollKeys(ctx)
		for _, kk := range keys {
			if kk.ID == k.ID && kk.Uses != 2 { // refused attempts do not count
				t.Errorf("key uses = %d, want 2", kk.Uses)
			}
		}
		if err := s.SaveCheckins(ctx, []Checkin{{DeviceID: "d1", At: now, Address: "192.0.2.1", Known: true, AgentVersion: "1.2", OSPlatform: "linux", OSVer: "Debian 12", Sequence: 7}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		// An older check-in arriving late does not move the device back.
		if err := s.SaveCheckins(ctx, []Checkin{{DeviceID: "d1", At: now.Add(-time.Minute), Known: true, AgentVersion: "0.9", Sequence: 3}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		d, _ = s.Device(ctx, "d1")
		if !d.CheckinKnown || d.AgentVersion != "1.2" || d.SequenceHeld != 7 || d.OSVersion != "Debian 12" || d.LastAddress != "192.0.2.1" {
			t.Errorf("after check-ins: %+v", d)
		}
		// The first check-in starts a run; one within offlineAfter of the
		// previous continues it; one after a longer silence starts another.
		// The run it ends becomes the previous run (never: -1).
		at := func(d time.Duration) time.Time {
			if d < 0 {
				return time.Time{}
			}
			return now.Add(d)
		}
		for _, step := range []struct {
			at, since, prevSince, prevLast time.Duration
		}{
			{50 * time.Minute, 0, -1, -1},
			{170 * time.Minute, 170 * time.Minute, 0, 50 * time.Minute},
			{3 * time.Hour, 170 * time.Minute, 0, 50 * time.Minute},
			{5 * time.Hour, 5 * time.Hour, 170 * time.Minute, 3 * time.Hour},
		} {
			if err := s.SaveCheckins(ctx, []Checkin{{DeviceID: "d1", At: at(step.at)}}, time.Hour); err != nil {
				t.Fatal(err)
			}
			d, _ = s.Device(ctx, "d1")
			same := func(a, b time.Time) bool { return a.IsZero() == b.IsZero() && a.UnixMilli() == b.UnixMilli() }
			if !same(d.OnlineSince, at(step.since)) || !same(d.PrevOnlineSince, at(step.prevSince)) || !same(d.PrevLastSeen, at(step.prevLast)) || d.SequenceHeld != 7 {
				t.Errorf("check-in at +%v: online since +%v, previous run +%v..+%v (sequence %d), want +%v, +%v..+%v", step.at,
					d.OnlineSince.Sub(now), d.PrevOnlineSince.Sub(now), d.PrevLastSeen.Sub(now), d.SequenceHeld, step.since, step.prevSince, step.prevLast)
			}
			if !d.CheckedInBetween(at(step.at-time.Minute), at(step.at)) || d.CheckedInBetween(at(step.at+time.Minute), at(step.at+2*time.Minute)) {
				t.Errorf("check-in at +%v: CheckedInBetween wrong around it (%+v)", step.at, d)
			}
		}
		if !d.CheckedInBetween(at(2*time.Hour+55*time.Minute), at(4*time.Hour)) || d.CheckedInBetween(at(3*time.Hour+time.Minute), at(4*time.Hour)) {
			t.Errorf("CheckedInBetween misreads the previous run and the gap: %+v", d)
		}
		if err := s.RevokeDevice(ctx, "d1", "alice"); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.DeviceByToken(ctx, "t2"); !d.Revoked() {
			t.Error("device not marked revoked")
		}
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t3"}, "t2"); !errors.Is(err, ErrDeviceRevoked) {
			t.Errorf("revoked device re-enrolled: %v", err)
		}
		if err := s.AllowReenroll(ctx, "d1", now.Add(time.Hour)); !errors.Is(err, ErrDeviceRevoked) {
			t.Errorf("AllowReenroll of a revoked device: %v", err)
		}
		if err := s.DeleteDevice(ctx, "d1"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t4"}, ""); err != nil {
			t.Errorf("enroll after delete: %v", err)
		}
		// An admin allows a reinstalled machine to enroll again: the old
		// token stops at once, an expired permission is no permission.
		if err := s.AllowReenroll(ctx, "d1", now.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t5"}, ""); !errors.Is(err, ErrDeviceEnrolled) {
			t.Errorf("expired permission: err = %v", err)
		}
		if err := s.AllowReenroll(ctx, "d1", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeviceByToken(ctx, "t4"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old token after AllowReenroll: %v", err)
		}
		if _, kind, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t6"}, ""); err != nil || kind != ReenrolledAllowed {
			t.Errorf("allowed re-enroll = %v, %v", kind, err)
		}
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t7"}, ""); !errors.Is(err, ErrDeviceEnrolled) {
			t.Errorf("a permission is used once: err = %v", err)
		}
		if err := s.RevokeEnrollKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d2", Name: "x", TokenHash: "t5"}, ""); !errors.Is(err, ErrKeyInvalid) {
			t.Errorf("revoked key err = %v", err)
		}
	})
}

func TestPolicyTables(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.SetTag(ctx, "dropbox", "Unsanctioned", "alice"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTag(ctx, "dropbox", "Monitored", "bob"); err != nil {
			t.Fatal(err)
		}
		tags, _ := s.Tags(ctx)
		if tags["dropbox"].Tag != "Monitored" || tags["dropbox"].UpdatedBy != "bob" {
			t.Errorf("tags = %+v", tags)
		}
		if err := s.SetTag(ctx, "dropbox", "", "bob"); err != nil {
			t.Fatal(err)
		}
		if tags, _ := s.Tags(ctx); len(tags) != 0 {
			t.Errorf("tag not cleared: %+v", tags)
		}
		exp := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
		got, created, err := s.UpsertIndicators(ctx, []Indicator{
			{Type: "DomainName", Value: "a.example", Action: "Block", Title: "A"},
			{Type: "Url", Value: "http://b.example/x", Action: "Warn", ExpirationTime: exp, BypassHours: 2},
		}, "alice")
		if err != nil || created != 2 || len(got) != 2 || !got[1].ExpirationTime.Equal(exp) || got[1].BypassHours != 2 {
			t.Fatalf("UpsertIndicators = %+v, %d, %v", got, created, err)
		}
		got2, created, err := s.UpsertIndicators(ctx, []Indicator{{Type: "DomainName", Value: "a.example", Action: "Allowed"}}, "bob")
		if err != nil || created != 0 || got2[0].ID != got[0].ID || got2[0].Action != "Allowed" {
			t.Errorf("update = %+v, %d, %v", got2, created, err)
		}
		all, _ := s.Indicators(ctx)
		if len(all) != 2 {
			t.Errorf("%d indicators, want 2", len(all))
		}
		if err := s.DeleteIndicator(ctx, got[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteIndicator(ctx, got[0].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete err = %v", err)
		}
		ca, err := s.CreateCustomApp(ctx, CustomApp{Name: "Intranet", Domains: []string{"intra.example"}, CreatedBy: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateCustomApp(ctx, CustomApp{Name: "Intranet", Domains: []string{"x.example"}}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate custom app err = %v", err)
		}
		apps, _ := s.CustomApps(ctx)
		if len(apps) != 1 || apps[0].Domains[0] != "intra.example" {
			t.Errorf("custom apps = %+v", apps)
		}
		if err := s.DeleteCustomApp(ctx, ca.ID, "custom:1"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Setting(ctx, "feed"); ok {
			t.Error("unset setting reads as set")
		}
		if err := s.SetSetting(ctx, "feed", `{"mode":"audit"}`, "alice"); err != nil {
			t.Fatal(err)
		}
		if v, ok, _ := s.Setting(ctx, "feed"); !ok || v != `{"mode":"audit"}` {
			t.Errorf("setting = %q %v", v, ok)
		}
		n := 0
		gen := func() ([]byte, error) { n++; return []byte(fmt.Sprint("secret", n)), nil }
		a, _ := s.Secret(ctx, "k", gen)
		b, _ := s.Secret(ctx, "k", gen)
		if string(a) != "secret1" || string(b) != "secret1" {
			t.Errorf("Secret = %q then %q, want the first value kept", a, b)
		}
	})
}

func build(v string) func(context.Context) (FeedBuild, error) {
	return func(context.Context) (FeedBuild, error) {
		return FeedBuild{Version: v, Indicators: 1, Body: func(seq int64, at time.Time) ([]byte, error) {
			return fmt.Appendf(nil, "%s/%d/%s", v, seq, at.Format(time.RFC3339)), nil
		}}, nil
	}
}

// A console restored from a backup continues above the sequence its
// devices hold (review #2, docs/feed.md), even with unchanged content;
// a wild report from one device is ignored.
func TestPublishFeedAboveDevices(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, _, err := s.PublishFeed(ctx, build("v1")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "k", Hash: "kh", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"d1", "d2", "wild"} {
			if _, _, err := s.Enroll(ctx, "kh", Device{ID: id, Name: id, TokenHash: "t" + id}, ""); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now()
		if err := s.SaveCheckins(ctx, []Checkin{{DeviceID: "d1", At: now, Known: true, Sequence: 5}, {DeviceID: "d2", At: now, Known: true, Sequence: 3},
			{DeviceID: "wild", At: now, Known: true, Sequence: 1 << 62}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		d, made, err := s.PublishFeed(ctx, build("v1"))
		if err != nil || !made || d.Sequence != 6 || d.Version != "v1" {
			t.Fatalf("publish of unchanged content with devices at 5 = seq %d made %v %v, want 6", d.Sequence, made, err)
		}
		d, made, _ = s.PublishFeed(ctx, build("v1"))
		if made || d.Sequence != 6 {
			t.Errorf("second publish = %d %v, want 6 unchanged", d.Sequence, made)
		}
		if err := s.RevokeDevice(ctx, "d1", "admin"); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCheckins(ctx, []Checkin{{DeviceID: "d1", At: now.Add(time.Second), Known: true, Sequence: 50}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if d, made, _ := s.PublishFeed(ctx, build("v1")); made || d.Sequence != 6 {
			t.Errorf("a revoked device moved the sequence: %d %v", d.Sequence, made)
		}
	})
}

// Publishing is one section across replicas (two stores on one database),
// and the content is built inside it: a replica never publishes a build
// made before another replica's change committed (the lost update of
// "Suspected, not reproduced" in the review of issue 17).
func TestPublishFeedReplicasSerialised(t *testing.T) {
	eachStore(t, func(t *testing.T, a *Store) {
		ctx := context.Background()
		b := a.twin(t)
		if _, _, err := a.PublishFeed(ctx, build("v1")); err != nil {
			t.Fatal(err)
		}
		inside, release := make(chan struct{}), make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			_, _, err := b.PublishFeed(ctx, func(ctx context.Context) (FeedBuild, error) {
				close(inside)
				<-release
				return build("vB")(ctx)
			})
			errc <- err
		}()
		<-inside
		var builtA atomic.Bool
		done := make(chan FeedDocument, 1)
		go func() {
			d, _, err := a.PublishFeed(ctx, func(ctx context.Context) (FeedBuild, error) {
				builtA.Store(true)
				return build("vA")(ctx)
			})
			if err != nil {
				t.Error(err)
			}
			done <- d
		}()
		time.Sleep(300 * time.Millisecond)
		if builtA.Load() {
			t.Error("replica A built its content while replica B was publishing")
		}
		close(release)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		d := <-done
		latest, _ := a.LatestFeed(ctx)
		if d.Sequence != 3 || latest.Version != "vA" {
			t.Errorf("A published %d, latest %d %s; want A's build, made after B's commit, as sequence 3", d.Sequence, latest.Sequence, latest.Version)
		}
	})
}

func TestPublishFeed(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.LatestFeed(ctx); !errors.Is(err, ErrNotFound) {
			t.Errorf("empty store LatestFeed err = %v", err)
		}
		d1, made, err := s.PublishFeed(ctx, build("v1"))
		if err != nil || !made || d1.Sequence != 1 {
			t.Fatalf("first publish = %+v %v %v", d1, made, err)
		}
		again, made, _ := s.PublishFeed(ctx, build("v1"))
		if made || again.Sequence != 1 || string(again.Body) != string(d1.Body) {
			t.Errorf("same version made a new sequence: %+v %v", again, made)
		}
		// Concurrent publishers of one new version agree on one sequence
		// and one body.
		var wg sync.WaitGroup
		docs := make([]FeedDocument, 4)
		for i := range docs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, _, err := s.PublishFeed(ctx, build("v2"))
				if err != nil {
					t.Error(err)
				}
				docs[i] = d
			}()
		}
		wg.Wait()
		for _, d := range docs {
			if d.Sequence != 2 || string(d.Body) != string(docs[0].Body) {
				t.Errorf("concurrent publish gave %d %q, want 2 %q", d.Sequence, d.Body, docs[0].Body)
			}
		}
		latest, _ := s.LatestFeed(ctx)
		if latest.Sequence != 2 || latest.Version != "v2" || string(latest.Body) != string(docs[0].Body) {
			t.Errorf("LatestFeed = %+v", latest)
		}
		if n, _ := s.LatestFeedSequence(ctx); n != 2 {
			t.Errorf("LatestFeedSequence = %d", n)
		}
	})
}

func TestIngestChunk(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "k", Hash: "kh", CreatedBy: "a", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t"}, ""); err != nil {
			t.Fatal(err)
		}
		h := HourOf(time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC))
		t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		batch := func(id, sum string) *ChunkBatch {
			return &ChunkBatch{
				Meta:      ChunkMeta{DeviceID: "d1", ChunkID: id, SHA256: sum, CompressedBytes: 100, Records: 3, ReceivedAt: t0, Path: "x/" + id},
				Traffic:   map[TrafficKey]*Counters{{h, "dropbox", "dropbox.com"}: {Transactions: 2, BytesSent: 10, BytesReceived: 20, Blocks: 1}},
				Users:     map[UserKey]struct{}{{TrafficKey{h, "dropbox", "dropbox.com"}, "alice"}: {}, {TrafficKey{h, "dropbox", "dropbox.com"}, "bob"}: {}},
				Actions:   map[ActionKey]int64{{h, "ConnectionSuccess"}: 1, {h, "FutureAction"}: 1},
				People:    map[string]*Seen{"alice": {Value: "alice", FirstSeen: t0, LastSeen: t0.Add(time.Minute)}},
				Addresses: map[string]*Seen{"192.0.2.5": {Value: "192.0.2.5", Interface: "eth0", MAC: "02:00:00:00:00:01", FirstSeen: t0, LastSeen: t0}},
				Info:      &DeviceInfo{At: t0, OSPlatform: "linux", OSVersion: "Debian 12", AgentVersion: "1.0", LoggedOnUsers: []string{"alice", "bob"}},
			}
		}
		if err := s.IngestChunk(ctx, batch("c1", "s1")); err != nil {
			t.Fatal(err)
		}
		if err := s.IngestChunk(ctx, batch("c1", "s1")); !errors.Is(err, ErrDuplicateChunk) {
			t.Errorf("retry err = %v, want ErrDuplicateChunk", err)
		}
		if err := s.IngestChunk(ctx, batch("c1", "other")); !errors.Is(err, ErrChunkConflict) {
			t.Errorf("different content err = %v, want ErrChunkConflict", err)
		}
		b2 := batch("c2", "s2")
		b2.People["alice"].FirstSeen = t0.Add(-time.Hour)
		if err := s.IngestChunk(ctx, b2); err != nil {
			t.Fatal(err)
		}
		tr, err := s.DeviceTraffic(ctx, "d1", t0.Add(-time.Hour), t0.Add(time.Hour))
		if err != nil || len(tr) != 1 {
			t.Fatalf("DeviceTraffic = %+v, %v", tr, err)
		}
		if got := tr[0]; got.Transactions != 4 || got.BytesReceived != 40 || got.Blocks != 2 || got.Users != 2 {
			t.Errorf("two chunks summed = %+v, want 4 transactions, 40 bytes in, 2 blocks, 2 users", got)
		}
		acts, _ := s.DeviceActions(ctx, "d1", t0, t0.Add(time.Hour))
		if acts["FutureAction"] != 2 {
			t.Errorf("unknown action counted %d, want 2", acts["FutureAction"])
		}
		users, _ := s.DeviceSeen(ctx, "d1", "users")
		if len(users) != 1 || !users[0].FirstSeen.Equal(t0.Add(-time.Hour)) || !users[0].LastSeen.Equal(t0.Add(time.Minute)) {
			t.Errorf("users = %+v", users)
		}
		addrs, _ := s.DeviceSeen(ctx, "d1", "addresses")
		if len(addrs) != 1 || addrs[0].MAC != "02:00:00:00:00:01" {
			t.Errorf("addresses = %+v", addrs)
		}
		d, _ := s.Device(ctx, "d1")
		if d.OSVersion != "Debian 12" || len(d.LoggedOnUsers) != 2 || !d.LastChunkAt.Equal(t0) {
			t.Errorf("device after DeviceInfo = %+v", d)
		}
		if n, recs, _ := s.ChunkStats(ctx, "d1"); n != 2 || recs != 6 {
			t.Errorf("ChunkStats = %d, %d", n, recs)
		}
		old, _ := s.ChunksBefore(ctx, t0.Add(time.Second), 10)
		if len(old) != 2 {
			t.Errorf("ChunksBefore = %d, want 2", len(old))
		}
		if err := s.DeleteChunk(ctx, "d1", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Chunk(ctx, "d1", "c1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted chunk err = %v", err)
		}
	})
}

// A database migrated by a newer console is refused, not written to.
func TestRefusesNewerSchema(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", 999, "0999_future.sql", 0); err != nil {
			t.Fatal(err)
		}
		err := s.migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "schema version 999") {
			t.Errorf("migrate with a newer schema = %v, want a refusal naming version 999", err)
		}
	})
}

// Config.MaxConns bounds the PostgreSQL pool (16 by default); SQLite keeps
// its one writer.
func TestMaxConns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect == SQLite {
			if got := s.w.Stats().MaxOpenConnections; got != 1 {
				t.Errorf("SQLite writer connections = %d, want 1", got)
			}
			return
		}
		if got := s.w.Stats().MaxOpenConnections; got != DefaultMaxConns {
			t.Errorf("default connections = %d, want %d", got, DefaultMaxConns)
		}
		dsn, _ := dsns.Load(s)
		s4, err := Open(context.Background(), Config{DSN: dsn.(string), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer s4.Close()
		if got := s4.w.Stats().MaxOpenConnections; got != 4 {
			t.Errorf("MaxConns 4: connections = %d", got)
		}
	})
}
