package ingest

import (
	"testing"
	"time"
)

func TestFoldWait(t *testing.T) {
	for _, c := range []struct {
		name string
		took time.Duration
		want time.Duration
	}{
		{"quick fold: every second", 10 * time.Millisecond, time.Second},
		{"a quarter second: still every second", 250 * time.Millisecond, time.Second},
		{"slower: four times its length", 600 * time.Millisecond, 2400 * time.Millisecond},
		{"very slow: at most five seconds", 3 * time.Second, 5 * time.Second},
		{"failed at once", 0, time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := foldWait(c.took); got != c.want {
				t.Errorf("foldWait(%v) = %v, want %v", c.took, got, c.want)
			}
		})
	}
}
