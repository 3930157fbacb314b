package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps a server's Retry-After so a bad header cannot park the
// uploader for days.
const maxRetryAfter = time.Hour

// uploadLoop sends spooled chunks oldest first, one at a time, so the
// collector receives them in order. A chunk leaves the spool only after a
// 2xx; a 4xx other than 408/429 means the server will never take it, so it is
// quarantined instead of blocking every later chunk.
func (p *Pipeline) uploadLoop(ctx context.Context) {
	attempt := 0
	for {
		e, ok := p.spool.lease()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-p.spoolSig:
				continue
			}
		}
		code, retryAfter, err := p.put(ctx, e)
		switch {
		case err == nil && code/100 == 2:
			p.spool.release(e.id)
			if rerr := p.spool.remove(e.id, ""); rerr != nil {
				p.setError(rerr)
			}
			p.uploaded.Add(1)
			p.lastUpload.Store(p.cfg.Now().UnixNano())
			attempt = 0
			continue
		case err == nil && (code == http.StatusUnauthorized || code == http.StatusForbidden):
			// The device's token (or the endpoint) is wrong: a configuration
			// error, the same for every chunk. Keep the chunk and retry
			// with backoff until the token is fixed; quarantining would
			// park every chunk for good.
			err = fmt.Errorf("collector refused the device token (HTTP %d); fix it (netward enroll, or indicators.tokenFile) and restart the agent; the chunks are kept", code)
		case err == nil && code/100 == 4 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
			p.spool.release(e.id)
			qerr := p.spool.remove(e.id, p.qdir)
			p.statusMu.Lock()
			p.quarantined++
			p.noteQuarantine(e.id)
			p.lastError = fmt.Sprintf("chunk %s quarantined: collector answered %d", e.id, code)
			p.statusMu.Unlock()
			p.cfg.Log.Error("telemetry chunk refused by the collector; quarantined", "chunk", e.id, "status", code, "dir", p.qdir, "err", qerr)
			attempt = 0
			continue
		}
		p.spool.release(e.id)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("collector answered %d", code)
		}
		p.setError(fmt.Errorf("upload chunk %s: %w", e.id, err))
		delay := backoff(attempt, p.cfg.RetryBase, p.cfg.RetryMax, p.cfg.Rand)
		if retryAfter > delay {
			delay = retryAfter
		}
		attempt++
		args := []any{"chunk", e.id, "err", err, "retryIn", delay}
		if code != 0 {
			args = append(args, "status", code)
		}
		p.cfg.Log.Warn("telemetry upload failed; will retry", args...)
		if p.cfg.sleep(ctx, delay) != nil {
			return
		}
	}
}

// backoff is exponential with full jitter: a random delay in
// [d/2, d) where d = base·2^attempt, capped at max.
func backoff(attempt int, base, max time.Duration, rnd func(int64) int64) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(rnd(int64(d-half)+1))
}

func (p *Pipeline) put(ctx context.Context, e *chunkEntry) (code int, retryAfter time.Duration, err error) {
	path := filepath.Join(p.spool.dir, e.name())
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("open spooled chunk: %w", err)
	}
	defer f.Close()
	url := strings.TrimRight(p.cfg.Endpoint, "/") + "/v1/telemetry/" + p.cfg.DeviceID + "/" + e.id
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, f)
	if err != nil {
		return 0, 0, err
	}
	req.ContentLength = e.size
	req.GetBody = func() (io.ReadCloser, error) { return os.Open(path) }
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), p.cfg.Now()), nil
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

func randInt63n(n int64) int64 {
	if n <= 0 {
		return 0
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b[:])>>1) % n
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
