package control

import (
	"testing"
	"time"

	"github.com/netward/netward/telemetry"
)

func rec(sec int) telemetry.Record {
	return telemetry.Record{Timestamp: time.Date(2026, 11, 22, 10, 0, sec, 0, time.UTC), RemoteUrl: "n.test"}
}

func TestRingKeepsTheNewest(t *testing.T) {
	r := NewRing(3)
	for i := range 5 {
		r.Add(rec(i))
	}
	got := r.Since(time.Time{})
	if len(got) != 3 || got[0].Timestamp.Second() != 2 || got[2].Timestamp.Second() != 4 {
		t.Fatalf("Since(zero) = %v, want seconds 2,3,4 oldest first", got)
	}
	if got := r.Since(rec(4).Timestamp); len(got) != 1 || got[0].Timestamp.Second() != 4 {
		t.Errorf("Since(4s) = %v, want only second 4", got)
	}
}

// TestRingCutsOffSlowFollowers: Add never blocks; a follower whose buffer is
// full is cut off (Done closed) and told how many it missed.
func TestRingCutsOffSlowFollowers(t *testing.T) {
	r := NewRing(8)
	r.subBuf = 2
	r.Add(rec(0))
	backlog, sub, err := r.Follow(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(backlog) != 1 {
		t.Fatalf("backlog = %v, want the one stored record", backlog)
	}
	for i := 1; i <= 3; i++ {
		r.Add(rec(i)) // the third overflows the buffer of 2
	}
	select {
	case <-sub.Done:
	default:
		t.Fatal("a follower with a full buffer was not cut off")
	}
	if d := sub.Dropped(); d != 1 {
		t.Errorf("Dropped = %d, want 1 (the record that did not fit; the 2 queued are still delivered)", d)
	}
	if n := len(sub.C); n != 2 {
		t.Errorf("queued = %d, want 2 still deliverable", n)
	}
	sub.Close() // closing a cut-off subscription is harmless
	r.Add(rec(9))
}

func TestRingBoundsFollowers(t *testing.T) {
	r := NewRing(4)
	var subs []*Subscription
	for range maxFollowers {
		_, s, err := r.Follow(time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if _, _, err := r.Follow(time.Time{}); err == nil {
		t.Fatalf("follower %d accepted, want a refusal", maxFollowers+1)
	}
	subs[0].Close()
	if _, _, err := r.Follow(time.Time{}); err != nil {
		t.Errorf("after one closed: %v", err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Time
		wantErr  bool
	}{
		{"empty", "", time.Time{}, false},
		{"duration", "10m", now.Add(-10 * time.Minute), false},
		{"rfc3339", "2026-11-22T09:00:00Z", now.Add(-time.Hour), false},
		{"negative", "-5m", time.Time{}, true},
		{"words", "yesterday", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSince(tt.in, now)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("ParseSince(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
