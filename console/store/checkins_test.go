package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// enrollN enrolls devices d000… on s.
func enrollN(t testing.TB, s *Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "k", Hash: "kh", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%03d", i)
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: ids[i], Name: ids[i], TokenHash: "t" + ids[i]}, ""); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// A batch that names a device more than once is applied in its order, as
// one statement per device was (PostgreSQL writes a batch as one statement
// per repetition): both stores end with the same rows.
func TestSaveCheckinsRepeatedDevice(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		enrollN(t, s, 3)
		now := time.UnixMilli(time.Now().UnixMilli())
		cs := []Checkin{
			{DeviceID: "d000", At: now, Address: "192.0.2.1", Known: true, AgentVersion: "1.0", OSPlatform: "linux", OSVer: "12", Sequence: 4},
			{DeviceID: "d001", At: now, Address: "192.0.2.2"},
			{DeviceID: "d000", At: now.Add(2 * time.Hour), Address: "192.0.2.3"},                                      // a new run; no header: keeps 1.0
			{DeviceID: "d000", At: now.Add(time.Hour), Address: "192.0.2.9", Known: true, Sequence: 99},               // older: ignored
			{DeviceID: "d000", At: now.Add(2*time.Hour + time.Minute), Known: true, AgentVersion: "1.1", Sequence: 5}, // same run
			{DeviceID: "gone", At: now},
		}
		if err := s.SaveCheckins(ctx, cs, time.Hour); err != nil {
			t.Fatal(err)
		}
		d, err := s.Device(ctx, "d000")
		if err != nil {
			t.Fatal(err)
		}
		if !d.LastSeenAt.Equal(now.Add(2*time.Hour+time.Minute)) || d.LastAddress != "" || !d.CheckinKnown || d.AgentVersion != "1.1" ||
			d.OSPlatform != "" || d.SequenceHeld != 5 || !d.OnlineSince.Equal(now.Add(2*time.Hour)) || !d.PrevOnlineSince.Equal(now) || !d.PrevLastSeen.Equal(now) {
			t.Errorf("d000 after its check-ins in order: %+v", d)
		}
		d, _ = s.Device(ctx, "d001")
		if !d.LastSeenAt.Equal(now) || d.LastAddress != "192.0.2.2" || d.CheckinKnown || !d.OnlineSince.Equal(now) {
			t.Errorf("d001: %+v", d)
		}
	})
}

// Two replicas writing the check-ins of the same devices at once, in
// opposite orders (each writes its own buffer), never deadlock: PostgreSQL
// aborts one of two transactions that wait for each other's row locks,
// and those check-ins were lost. Written one device at a time in the order
// given, the first round deadlocked.
func TestSaveCheckinsReplicasNoDeadlock(t *testing.T) {
	eachStore(t, func(t *testing.T, a *Store) {
		if a.dialect != Postgres {
			t.Skip("SQLite has one writer at a time")
		}
		b := a.twin(t)
		ids := enrollN(t, a, 300)
		ctx := context.Background()
		now := time.Now()
		for round := range 5 {
			at := now.Add(time.Duration(round) * time.Second)
			fwd, rev := make([]Checkin, len(ids)), make([]Checkin, len(ids))
			for i, id := range ids {
				fwd[i] = Checkin{DeviceID: id, At: at, Known: true, Sequence: int64(round)}
				rev[len(ids)-1-i] = Checkin{DeviceID: id, At: at, Known: true, Sequence: int64(round)}
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			start := make(chan struct{})
			for i, w := range []struct {
				s  *Store
				cs []Checkin
			}{{a, fwd}, {b, rev}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = w.s.SaveCheckins(ctx, w.cs, time.Hour)
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d, replica %d: %v", round, i, err)
				}
			}
		}
		d, err := a.Device(ctx, ids[150])
		if err != nil || d.SequenceHeld != 4 {
			t.Errorf("after the rounds: %+v, %v", d, err)
		}
	})
}

// BenchmarkSaveCheckins writes the check-ins of 2,000 devices (a feed
// change's re-polls), what one flush writes after a change
// (docs/scale.md "Sixth round").
func BenchmarkSaveCheckins(b *testing.B) {
	if pg == nil {
		b.Skip(pgErr)
	}
	dsn, err := pg.NewDatabase("store")
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := enrollN(b, s, 2000)
	ctx := context.Background()
	now := time.Now()
	cs := make([]Checkin, len(ids))
	b.ResetTimer()
	for i := range b.N {
		for j, id := range ids {
			cs[j] = Checkin{DeviceID: id, At: now.Add(time.Duration(i) * time.Second), Address: "192.0.2.1", Known: true, AgentVersion: "1.0", Sequence: int64(i)}
		}
		if err := s.SaveCheckins(ctx, cs, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
