package ui

// Interim: the dashboard's fleet-wide traffic series and distinct-user
// and machine counts, which part 2's API (issue 18) does not answer yet, read from the
// store (console/store/ui_interim.go). Everything else the pages show
// comes from the JSON API. When the API gains a fleet summary, this file
// is replaced by one call.

import (
	"net/http"

	"github.com/netward/netward/console/store"
)

func (u *UI) fleetSeries(r *http.Request, p store.Period) ([]store.Bucket, error) {
	return u.cfg.Store.UIFleetSeries(r.Context(), p)
}

func (u *UI) fleetCounts(r *http.Request, p store.Period) (users, machines int64, err error) {
	return u.cfg.Store.UIFleetCounts(r.Context(), p)
}
