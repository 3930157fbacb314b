package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Alert kinds.
const (
	// AlertUnsanctionedAccess: a Block of an Unsanctioned app's domain.
	AlertUnsanctionedAccess = "unsanctionedAccess"
	// AlertUnsanctionedNotBlocked: a successful connection or DNS answer
	// for an Unsanctioned app's domain after the device checked in past
	// the tag's publication.
	AlertUnsanctionedNotBlocked = "unsanctionedNotBlocked"
)

// Alert states.
const (
	AlertNew          = "new"
	AlertAcknowledged = "acknowledged"
)

// Alert is one alert, deduplicated per kind × device × app × hour.
type Alert struct {
	ID             int64     `json:"id"`
	Kind           string    `json:"kind"`
	DeviceID       string    `json:"deviceId"`
	AppID          string    `json:"appId"`
	Hour           time.Time `json:"hour"`
	FirstAt        time.Time `json:"firstAt"`
	LastAt         time.Time `json:"lastAt"`
	Occurrences    int64     `json:"occurrences"`
	Domain         string    `json:"domain"`
	User           string    `json:"user"`
	Process        string    `json:"process"`
	ActionType     string    `json:"actionType"`
	Detail         string    `json:"detail"`
	State          string    `json:"state"`
	AcknowledgedBy string    `json:"acknowledgedBy,omitempty"`
	AcknowledgedAt time.Time `json:"acknowledgedAt,omitzero"`
}

const alertCols = "id, kind, device_id, app_id, hour, first_at, last_at, occurrences, domain, user_name, process, action_type, detail, state, acknowledged_by, acknowledged_at"

func scanAlert(sc scanner) (Alert, error) {
	var a Alert
	var h, f, l, ack int64
	err := sc.Scan(&a.ID, &a.Kind, &a.DeviceID, &a.AppID, &h, &f, &l, &a.Occurrences, &a.Domain, &a.User, &a.Process, &a.ActionType, &a.Detail, &a.State, &a.AcknowledgedBy, &ack)
	a.Hour = time.Unix(h, 0).UTC()
	a.FirstAt, a.LastAt, a.AcknowledgedAt = fromMS(f), fromMS(l), fromMS(ack)
	return a, err
}

// RaiseAlert records a, or counts it on the alert of its kind × device ×
// app × hour. A new alert is queued for every enabled destination in the
// same transaction (the outbox) and returned with created true.
func (s *Store) RaiseAlert(ctx context.Context, a Alert) (Alert, bool, error) {
	hour := hourOf(a.FirstAt)
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.q("INSERT INTO alerts (kind, device_id, app_id, hour, first_at, last_at, occurrences, domain, user_name, process, action_type, detail, state) "+
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, device_id, app_id, hour) DO NOTHING"),
			a.Kind, a.DeviceID, a.AppID, hour, ms(a.FirstAt), ms(a.LastAt), max(a.Occurrences, 1), a.Domain, a.User, a.Process, a.ActionType, a.Detail, AlertNew)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			_, err = tx.ExecContext(ctx, s.q("UPDATE alerts SET occurrences = occurrences + ?, last_at = CASE WHEN ? > last_at THEN ? ELSE last_at END WHERE kind = ? AND device_id = ? AND app_id = ? AND hour = ?"),
				max(a.Occurrences, 1), ms(a.LastAt), ms(a.LastAt), a.Kind, a.DeviceID, a.AppID, hour)
			return err
		}
		created = true
		if err := tx.QueryRowContext(ctx, s.q("SELECT id FROM alerts WHERE kind = ? AND device_id = ? AND app_id = ? AND hour = ?"), a.Kind, a.DeviceID, a.AppID, hour).Scan(&a.ID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q("INSERT INTO alert_deliveries (alert_id, destination_id, state, next_at) SELECT ?, id, 'pending', ? FROM alert_destinations WHERE enabled = 1"), a.ID, ms(s.now()))
		return err
	})
	if err != nil {
		return a, false, fmt.Errorf("store: alert: %w", err)
	}
	a.Hour, a.State = time.Unix(hour, 0).UTC(), AlertNew
	return a, created, nil
}

// AlertFilter selects alerts.
type AlertFilter struct {
	From, To      time.Time
	Kind, State   string
	DeviceID      string
	Limit, Offset int
}

// Alerts lists alerts first seen in [From, To), newest first.
func (s *Store) Alerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	where := []string{"first_at >= ?", "first_at < ?"}
	args := []any{ms(f.From), ms(f.To)}
	for _, c := range []struct{ col, v string }{{"kind", f.Kind}, {"state", f.State}, {"device_id", f.DeviceID}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	args = append(args, f.Limit, f.Offset)
	return queryAll(ctx, s, scanAlert, "SELECT "+alertCols+" FROM alerts WHERE "+strings.Join(where, " AND ")+" ORDER BY first_at DESC, id DESC LIMIT ? OFFSET ?", args...)
}

// Alert returns one alert.
func (s *Store) Alert(ctx context.Context, id int64) (Alert, error) {
	a, err := scanAlert(s.queryRow(ctx, "SELECT "+alertCols+" FROM alerts WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	return a, err
}

// SetAlertState acknowledges an alert (or makes it new again).
func (s *Store) SetAlertState(ctx context.Context, id int64, state, by string) error {
	at := ms(s.now())
	if state == AlertNew {
		by, at = "", 0
	}
	return s.execOne(ctx, fmt.Sprintf("alert %d", id), "UPDATE alerts SET state = ?, acknowledged_by = ?, acknowledged_at = ? WHERE id = ?", state, by, at, id)
}

// DeviceAlertCounts counts each device's alerts of each kind first seen in
// [from, to): device → kind → count.
func (s *Store) DeviceAlertCounts(ctx context.Context, from, to time.Time) (map[string]map[string]int64, error) {
	type row struct {
		dev, kind string
		n         int64
	}
	list, err := queryAll(ctx, s, func(sc scanner) (row, error) {
		var r row
		return r, sc.Scan(&r.dev, &r.kind, &r.n)
	}, "SELECT device_id, kind, COUNT(*) FROM alerts WHERE first_at >= ? AND first_at < ? GROUP BY device_id, kind", ms(from), ms(to))
	out := map[string]map[string]int64{}
	for _, r := range list {
		if out[r.dev] == nil {
			out[r.dev] = map[string]int64{}
		}
		out[r.dev][r.kind] = r.n
	}
	return out, err
}

// Destination kinds.
const (
	DestWebhook = "webhook"
	DestSyslog  = "syslog"
)

// Destination is where alerts are delivered: a webhook (URL, HMAC secret)
// or a syslog receiver (network "tcp" or "udp", address).
type Destination struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	URL       string    `json:"url,omitempty"`
	Secret    string    `json:"-"`
	Network   string    `json:"network,omitempty"`
	Address   string    `json:"address,omitempty"`
	Enabled   bool      `json:"enabled"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
}

const destCols = "id, name, kind, url, secret, network, address, enabled, created_by, created_at"

func scanDest(sc scanner) (Destination, error) {
	var d Destination
	var en int
	var at int64
	err := sc.Scan(&d.ID, &d.Name, &d.Kind, &d.URL, &d.Secret, &d.Network, &d.Address, &en, &d.CreatedBy, &at)
	d.Enabled, d.CreatedAt = en != 0, fromMS(at)
	return d, err
}

// CreateDestination adds a destination (ErrExists for a taken name).
func (s *Store) CreateDestination(ctx context.Context, d Destination) (Destination, error) {
	d.CreatedAt = s.now().UTC()
	en := 0
	if d.Enabled {
		en = 1
	}
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO alert_destinations (name, kind, url, secret, network, address, enabled, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
		d.Name, d.Kind, d.URL, d.Secret, d.Network, d.Address, en, d.CreatedBy, ms(d.CreatedAt)).Scan(&d.ID)
	if isUnique(err) {
		return d, fmt.Errorf("destination %q: %w", d.Name, ErrExists)
	}
	return d, err
}

// Destinations lists the destinations.
func (s *Store) Destinations(ctx context.Context) ([]Destination, error) {
	return queryAll(ctx, s, scanDest, "SELECT "+destCols+" FROM alert_destinations ORDER BY id")
}

// Destination returns one destination.
func (s *Store) Destination(ctx context.Context, id int64) (Destination, error) {
	d, err := scanDest(s.queryRow(ctx, "SELECT "+destCols+" FROM alert_destinations WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("destination %d: %w", id, ErrNotFound)
	}
	return d, err
}

// DeleteDestination removes a destination and its pending deliveries.
func (s *Store) DeleteDestination(ctx context.Context, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.q("DELETE FROM alert_destinations WHERE id = ?"), id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("destination %d: %w", id, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, s.q("DELETE FROM alert_deliveries WHERE destination_id = ?"), id)
		return err
	})
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one alert due at one destination.
type Delivery struct {
	Alert       Alert
	Destination Destination
	Attempts    int64
}

// DueDeliveries lists up to limit pending deliveries due at now.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	type key struct{ alert, dest, attempts int64 }
	keys, err := queryAll(ctx, s, func(sc scanner) (key, error) {
		var k key
		return k, sc.Scan(&k.alert, &k.dest, &k.attempts)
	}, "SELECT alert_id, destination_id, attempts FROM alert_deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?", ms(now), limit)
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, len(keys))
	for _, k := range keys {
		a, err := s.Alert(ctx, k.alert)
		if err != nil {
			return nil, err
		}
		d, err := s.Destination(ctx, k.dest)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Delivery{Alert: a, Destination: d, Attempts: k.attempts})
	}
	return out, nil
}

// DeliveryResult records an attempt: delivered, retried at next, or given
// up (state failed) with its error.
func (s *Store) DeliveryResult(ctx context.Context, alertID, destID int64, state string, next time.Time, lastErr string) error {
	var at int64
	if state == DeliveryDelivered {
		at = ms(s.now())
	}
	_, err := s.exec(ctx, "UPDATE alert_deliveries SET state = ?, attempts = attempts + 1, next_at = ?, last_error = ?, delivered_at = ? WHERE alert_id = ? AND destination_id = ?",
		state, ms(next), lastErr, at, alertID, destID)
	return err
}

// DeliveryCounts counts deliveries by destination and state.
func (s *Store) DeliveryCounts(ctx context.Context) (map[int64]map[string]int64, error) {
	type row struct {
		dest  int64
		state string
		n     int64
	}
	list, err := queryAll(ctx, s, func(sc scanner) (row, error) {
		var r row
		return r, sc.Scan(&r.dest, &r.state, &r.n)
	}, "SELECT destination_id, state, COUNT(*) FROM alert_deliveries GROUP BY destination_id, state")
	out := map[int64]map[string]int64{}
	for _, r := range list {
		if out[r.dest] == nil {
			out[r.dest] = map[string]int64{}
		}
		out[r.dest][r.state] = r.n
	}
	return out, err
}

// FeedCarrying returns the first feed document generated at or after t
// (to the second: documents are dated to the second) whose body contains
// needle — the sequence that first carried a change made at t. A
// document of the same second made just before the change does not carry
// it and is passed over. ErrNotFound when none does (yet).
func (s *Store) FeedCarrying(ctx context.Context, t time.Time, carries func(body []byte) bool) (sequence int64, at time.Time, err error) {
	rows, err := s.query(ctx, "SELECT sequence, generated_at, body FROM feed_documents WHERE generated_at >= ? ORDER BY sequence LIMIT 50", ms(t.Truncate(time.Second)))
	if err != nil {
		return 0, time.Time{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var g int64
		var body []byte
		if err := rows.Scan(&sequence, &g, &body); err != nil {
			return 0, time.Time{}, err
		}
		if carries(body) {
			return sequence, fromMS(g), nil
		}
	}
	if err := rows.Err(); err != nil {
		return 0, time.Time{}, err
	}
	return 0, time.Time{}, ErrNotFound
}
