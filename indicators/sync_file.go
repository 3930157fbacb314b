package indicators

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// fileStamp is what the watcher compares between polls. Polling size and
// modification time is portable (no inotify / ReadDirectoryChangesW) and
// cheap; the content hash then tells a real change from a touch.
type fileStamp struct {
	size  int64
	mtime time.Time
	err   string
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: err.Error()}
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime()}
}

// runFile watches a file:// source: it is read at start, then checked every
// FileInterval; a change is applied once the file has kept the same size
// and time for one interval, so a file written in several steps is read
// once, complete. A missing or bad file is logged once per distinct
// problem and the last good set stays.
func (s *Sync) runFile(ctx context.Context, path string) error {
	var lastProblem string
	load := func() {
		err := s.loadFile(path)
		if err == nil {
			lastProblem = ""
			return
		}
		s.fail(err)
		if err.Error() != lastProblem {
			lastProblem = err.Error()
			s.log.Warn("indicator file not applied; the last good set stays in force", "source", s.cfg.Source, "err", err)
		}
	}
	seen := stampOf(path)
	load()
	t := time.NewTicker(s.cfg.FileInterval)
	defer t.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st := stampOf(path)
		if st != seen {
			seen, pending = st, true
			continue // debounce: apply when it has been still for an interval
		}
		if pending {
			pending = false
			load()
		}
	}
}

// loadFile reads path and applies it unless it is the set in force.
func (s *Sync) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("indicator file %s does not exist; create it or fix indicators.source", path)
		}
		return fmt.Errorf("open indicator file: %w", err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, s.cfg.MaxBody+1))
	if err != nil {
		return fmt.Errorf("read indicator file: %w", err)
	}
	if int64(len(body)) > s.cfg.MaxBody {
		return fmt.Errorf("%w: %s has more than %d bytes", ErrTooLarge, path, s.cfg.MaxBody)
	}
	if sha256.Sum256(body) == s.currentSum() {
		s.checked()
		return nil
	}
	return s.accept(body, "", "")
}
