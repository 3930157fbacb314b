package ui

// Interim: the fleet-wide discovery data of the Dashboard, Discovered apps
// and machine pages, read from the store (console/store/ui_interim.go)
// while part 2's analytics API (issue 18) is built in parallel. Everything
// the pages need from it goes through the functions of this file, so
// switching to the part-2 endpoints (GET /api/discovery/...) replaces this
// file alone.

import (
	"net/http"
	"time"

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
