package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/netward/netward/agent/control"
)

// setInfo describes the indicator set in force, for `netward status` and
// the metrics.
type setInfo struct {
	Version     string
	GeneratedAt time.Time
	LoadedAt    time.Time
}

// policyInfo describes the indicator set in force for `netward status` and
// the metrics (netward_indicator_set_info, netward_indicator_set_age_seconds):
// the indicator sync's set, zero before the first.
func (a *Agent) policyInfo() setInfo {
	a.ind.mu.Lock()
	u := a.ind.cur
	a.ind.mu.Unlock()
	if u == nil {
		return setInfo{}
	}
	info := setInfo{Version: u.Version, LoadedAt: u.FetchedAt}
	if u.Set != nil {
		info.GeneratedAt = u.Set.GeneratedAt
	}
	return info
}

// maxNotedErrors bounds the recent-errors list of `netward status`.
const maxNotedErrors = 10

// noteError records a component error for `netward status` (the last few,
// newest first). Components call it for errors the user should see without
// reading the log.
func (a *Agent) noteError(component string, err error) {
	if err == nil {
		return
	}
	e := control.ErrorEntry{Time: a.now().UTC(), Component: component, Message: err.Error()}
	a.ctl.errMu.Lock()
	defer a.ctl.errMu.Unlock()
	a.ctl.errs = append([]control.ErrorEntry{e}, a.ctl.errs...)
	if len(a.ctl.errs) > maxNotedErrors {
		a.ctl.errs = a.ctl.errs[:maxNotedErrors]
	}
}

func (a *Agent) notedErrors() []control.ErrorEntry {
	a.ctl.errMu.Lock()
	defer a.ctl.errMu.Unlock()
	return append([]control.ErrorEntry{}, a.ctl.errs...)
}

// reload re-reads the indicator source now. It needs the indicator sync to
// register its reload function (SetReload); until then it reports
// control.ErrNotSupported.
func (a *Agent) reload(ctx context.Context) error {
	if f := a.ctl.reload; f != nil {
		return f(ctx)
	}
	return fmt.Errorf("the indicator sync does not support reload: %w", control.ErrNotSupported)
}

// setReload registers the indicator sync's reload function for `/v1/reload`.
// Call it before Run (or from a component that starts before control).
func (a *Agent) setReload(f func(context.Context) error) { a.ctl.reload = f }
