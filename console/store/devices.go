package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EnrollKey is an enrollment key (the secret is stored as its SHA-256).
type EnrollKey struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	Hash       string    `json:"-"`
	CreatedBy  string    `json:"createdBy"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	Uses       int64     `json:"uses"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// Errors of Enroll.
var (
	ErrKeyInvalid    = errors.New("enrollment key unknown, revoked or expired")
	ErrDeviceRevoked = errors.New("device was revoked; an admin must delete its record before it can enroll again")
	// ErrDeviceEnrolled: the id belongs to an active device and the request
	// neither proved its current token nor was allowed by an admin.
	ErrDeviceEnrolled = errors.New("device is already enrolled")
)

// reenrollPrefix marks a token_hash that an admin replaced to let the
// device enroll again (its old token is refused from then on): the value is
// reenroll:<until, Unix ms>:<random>. A real token hash is 64 hex digits,
// so no token ever matches it.
const reenrollPrefix = "reenroll:"

// Enrollment says how Enroll registered a device.
type Enrollment int

// Enrollment kinds.
const (
	EnrolledNew       Enrollment = iota // a new device id
	ReenrolledProof                     // the request proved the current token
	ReenrolledAllowed                   // an admin allowed it (machine reinstalled)
)

// CreateEnrollKey stores a key.
func (s *Store) CreateEnrollKey(ctx context.Context, k EnrollKey) (EnrollKey, error) {
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO enrollment_keys (name, key_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING id"),
		k.Name, k.Hash, k.CreatedBy, ms(k.CreatedAt), ms(k.ExpiresAt)).Scan(&k.ID)
	return k, err
}

// EnrollKeys lists every key, newest first.
func (s *Store) EnrollKeys(ctx context.Context) ([]EnrollKey, error) {
	return queryAll(ctx, s, func(sc scanner) (EnrollKey, error) {
		var k EnrollKey
		var c, e, r, l int64
		err := sc.Scan(&k.ID, &k.Name, &k.Hash, &k.CreatedBy, &c, &e, &r, &k.Uses, &l)
		k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromMS(c), fromMS(e), fromMS(r), fromMS(l)
		return k, err
	}, "SELECT id, name, key_hash, created_by, created_at, expires_at, revoked_at, uses, last_used_at FROM enrollment_keys ORDER BY id DESC")
}

// RevokeEnrollKey stops a key from enrolling more devices (devices already
// enrolled with it keep their tokens).
func (s *Store) RevokeEnrollKey(ctx context.Context, id int64) error {
	return s.execOne(ctx, fmt.Sprintf("enrollment key %d (or already revoked)", id), "UPDATE enrollment_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0", ms(s.now()), id)
}

// Device is an enrolled endpoint.
type Device struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	TokenHash       string    `json:"-"`
	EnrollmentKeyID int64     `json:"enrollmentKeyId"`
	EnrolledAt      time.Time `json:"enrolledAt"`
	RevokedAt       time.Time `json:"revokedAt,omitzero"`
	RevokedBy       string    `json:"revokedBy,omitempty"`
	LastSeenAt      time.Time `json:"lastSeenAt,omitzero"`
	LastAddress     string    `json:"lastAddress,omitempty"`
	// CheckinKnown is false until the agent sent a Netward-Agent header
	// (older agents do not): the four fields below are then unknown.
	CheckinKnown  bool      `json:"checkinKnown"`
	AgentVersion  string    `json:"agentVersion,omitempty"`
	OSPlatform    string    `json:"osPlatform,omitempty"`
	OSVersion     string    `json:"osVersion,omitempty"`
	SequenceHeld  int64     `json:"sequenceHeld"`
	LastChunkAt   time.Time `json:"lastChunkAt,omitzero"`
	InfoAt        time.Time `json:"infoAt,omitzero"`
	LoggedOnUsers []string  `json:"loggedOnUsers,omitempty"`
	// OnlineSince is when the device's current run of check-ins began
	// (SaveCheckins); zero when it began before the console recorded it.
	OnlineSince time.Time `json:"onlineSince,omitzero"`
	// PrevOnlineSince and PrevLastSeen bound the run before it (zero if
	// none was recorded).
	PrevOnlineSince time.Time `json:"prevOnlineSince,omitzero"`
	PrevLastSeen    time.Time `json:"prevLastSeen,omitzero"`
}

// CheckedInBetween reports whether the device checked in between from and
// to, as far as its last two runs of check-ins tell: within a run it checks
// in at least every offline threshold, so a run that began by to and lasted
// until from or later holds one. An untracked start (zero OnlineSince)
// counts as online since ever.
func (d Device) CheckedInBetween(from, to time.Time) bool {
	in := func(since, last time.Time) bool { return !since.After(to) && !last.Before(from) && !last.IsZero() }
	return in(d.OnlineSince, d.LastSeenAt) || in(d.PrevOnlineSince, d.PrevLastSeen)
}

// Revoked reports whether an admin revoked the device.
func (d Device) Revoked() bool { return !d.RevokedAt.IsZero() }

const deviceCols = "id, name, token_hash, enrollment_key_id, enrolled_at, revoked_at, revoked_by, last_seen_at, last_address, checkin_known, agent_version, os_platform, os_version, sequence_held, last_chunk_at, info_at, logged_on_users, online_since, prev_online_since, prev_last_seen"

func scanDevice(sc scanner) (Device, error) {
	var d Device
	var en, rv, ls, lc, ia, on, pon, pls int64
	var known int
	var users string
	err := sc.Scan(&d.ID, &d.Name, &d.TokenHash, &d.EnrollmentKeyID, &en, &rv, &d.RevokedBy, &ls, &d.LastAddress, &known,
		&d.AgentVersion, &d.OSPlatform, &d.OSVersion, &d.SequenceHeld, &lc, &ia, &users, &on, &pon, &pls)
	d.EnrolledAt, d.RevokedAt, d.LastSeenAt, d.LastChunkAt, d.InfoAt, d.OnlineSince = fromMS(en), fromMS(rv), fromMS(ls), fromMS(lc), fromMS(ia), fromMS(on)
	d.PrevOnlineSince, d.PrevLastSeen = fromMS(pon), fromMS(pls)
	d.CheckinKnown = known != 0
	if users != "" {
		d.LoggedOnUsers = strings.Split(users, "\n")
	}
	return d, err
}

// Enroll checks an enrollment key and registers the device with a new
// token hash, in one transaction. An id that belongs to an active device is
// taken only when currentHash is the hash of its current token (the agent
// re-enrolls itself) or an admin allowed a re-enrollment (AllowReenroll)
// that has not expired; otherwise ErrDeviceEnrolled — an enrollment key
// alone never takes over a device. A revoked device cannot enroll.
func (s *Store) Enroll(ctx context.Context, keyHash string, d Device, currentHash string) (Device, Enrollment, error) {
	now := s.now()
	kind := EnrolledNew
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var keyID, exp, rev int64
		err := tx.QueryRowContext(ctx, s.q("SELECT id, expires_at, revoked_at FROM enrollment_keys WHERE key_hash = ?"), keyHash).Scan(&keyID, &exp, &rev)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (rev != 0 || (exp != 0 && exp <= ms(now)))) {
			return ErrKeyInvalid
		}
		if err != nil {
			return err
		}
		var revoked int64
		var held string
		err = tx.QueryRowContext(ctx, s.q("SELECT revoked_at, token_hash FROM devices WHERE id = ?"), d.ID).Scan(&revoked, &held)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, s.q("INSERT INTO devices (id, name, token_hash, enrollment_key_id, enrolled_at) VALUES (?, ?, ?, ?, ?)"),
				d.ID, d.Name, d.TokenHash, keyID, ms(now))
		case err != nil:
		case revoked != 0:
			return ErrDeviceRevoked
		default:
			switch {
			case currentHash != "" && subtle.ConstantTimeCompare([]byte(currentHash), []byte(held)) == 1:
				kind = ReenrolledProof
			case reenrollAllowed(held, now):
				kind = ReenrolledAllowed
			default:
				return ErrDeviceEnrolled
			}
			_, err = tx.ExecContext(ctx, s.q("UPDATE devices SET name = ?, token_hash = ?, enrollment_key_id = ?, enrolled_at = ? WHERE id = ?"),
				d.Name, d.TokenHash, keyID, ms(now), d.ID)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q("UPDATE enrollment_keys SET uses = uses + 1, last_used_at = ? WHERE id = ?"), ms(now), keyID)
		return err
	})
	if err != nil {
		return Device{}, kind, err
	}
	dev, err := s.Device(ctx, d.ID)
	return dev, kind, err
}

// reenrollAllowed reports whether a token_hash is an admin's unexpired
// permission to enroll again.
func reenrollAllowed(held string, now time.Time) bool {
	rest, ok := strings.CutPrefix(held, reenrollPrefix)
	if !ok {
		return false
	}
	until, _, _ := strings.Cut(rest, ":")
	n, err := strconv.ParseInt(until, 10, 64)
	return err == nil && n > ms(now)
}

// AllowReenroll lets an active device enroll again with any valid
// enrollment key until `until` (the machine was reinstalled and lost its
// token); its current token is refused from now on. A revoked device must
// be deleted instead.
func (s *Store) AllowReenroll(ctx context.Context, id string, until time.Time) error {
	d, err := s.Device(ctx, id)
	if err != nil {
		return err
	}
	if d.Revoked() {
		return ErrDeviceRevoked
	}
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	mark := fmt.Sprintf("%s%d:%s", reenrollPrefix, ms(until), hex.EncodeToString(nonce[:]))
	return s.execOne(ctx, fmt.Sprintf("device %q", id), "UPDATE devices SET token_hash = ? WHERE id = ? AND revoked_at = 0", mark, id)
}

// Device finds a device by id.
func (s *Store) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.queryRow(ctx, "SELECT "+deviceCols+" FROM devices WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device %q: %w", id, ErrNotFound)
	}
	return d, err
}

// DeviceByToken finds the device a token hash belongs to.
func (s *Store) DeviceByToken(ctx context.Context, hash string) (Device, error) {
	d, err := scanDevice(s.queryRow(ctx, "SELECT "+deviceCols+" FROM devices WHERE token_hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	return d, err
}

// Devices lists devices by name.
func (s *Store) Devices(ctx context.Context) ([]Device, error) {
	return queryAll(ctx, s, scanDevice, "SELECT "+deviceCols+" FROM devices ORDER BY name, id")
}

// RevokeDevice cuts a device off: its token is refused from now on.
func (s *Store) RevokeDevice(ctx context.Context, id, by string) error {
	r, err := s.exec(ctx, "UPDATE devices SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0", ms(s.now()), by, id)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		if _, err := s.Device(ctx, id); err != nil {
			return err
		}
		return nil // already revoked
	}
	return nil
}

// DeleteDevice removes a device's record (its traffic history stays); the
// machine may enroll again afterwards.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return s.execOne(ctx, fmt.Sprintf("device %q", id), "DELETE FROM devices WHERE id = ?", id)
}

// Checkin is what a feed request tells about a device.
type Checkin struct {
	DeviceID string
	At       time.Time
	Address  string
	// Known is false when the agent sent no (valid) Netward-Agent header.
	Known                           bool
	AgentVersion, OSPlatform, OSVer string
	Sequence                        int64
}

// SaveCheckins records a batch of check-ins in one transaction (the feed
// buffers them, so a fleet's long polls cost one write per interval, not
// one per request). A check-in more than offlineAfter after the device's
// previous one starts a new run of check-ins (Device.OnlineSince): the
// device could not reach the console in between.
func (s *Store) SaveCheckins(ctx context.Context, cs []Checkin, offlineAfter time.Duration) error {
	if len(cs) == 0 {
		return nil
	}
	if s.dialect == Postgres {
		return s.saveCheckinsPG(ctx, cs, offlineAfter)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Every SET expression reads the row as it was (SQL's UPDATE), so
		// each CASE compares the previous last_seen_at; a new run keeps the
		// one it ends as the previous run.
		const since = "prev_online_since = CASE WHEN last_seen_at < ? THEN online_since ELSE prev_online_since END, " +
			"prev_last_seen = CASE WHEN last_seen_at < ? THEN last_seen_at ELSE prev_last_seen END, " +
			"online_since = CASE WHEN last_seen_at < ? THEN ? ELSE online_since END, "
		plain, err := tx.PrepareContext(ctx, s.q("UPDATE devices SET "+since+"last_seen_at = ?, last_address = ? WHERE id = ? AND last_seen_at <= ?"))
		if err != nil {
			return err
		}
		defer plain.Close()
		full, err := tx.PrepareContext(ctx, s.q("UPDATE devices SET "+since+"last_seen_at = ?, last_address = ?, checkin_known = 1, agent_version = ?, os_platform = ?, os_version = ?, sequence_held = ? WHERE id = ? AND last_seen_at <= ?"))
		if err != nil {
			return err
		}
		defer full.Close()
		for _, c := range cs {
			at, gapFrom := ms(c.At), ms(c.At.Add(-offlineAfter))
			if c.Known {
				_, err = full.ExecContext(ctx, gapFrom, gapFrom, gapFrom, at, at, c.Address, c.AgentVersion, c.OSPlatform, c.OSVer, c.Sequence, c.DeviceID, at)
			} else {
				_, err = plain.ExecContext(ctx, gapFrom, gapFrom, gapFrom, at, at, c.Address, c.DeviceID, at)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// checkinSince is SaveCheckins' start of a new run: every SET expression
// reads the row as it was (SQL's UPDATE), so each CASE compares the
// previous last_seen_at; a new run keeps the one it ends as the previous
// run. c is the check-in's row, with its gap (at - offlineAfter) and at.
const checkinSince = "prev_online_since = CASE WHEN d.last_seen_at < c.gap THEN d.online_since ELSE d.prev_online_since END, " +
	"prev_last_seen = CASE WHEN d.last_seen_at < c.gap THEN d.last_seen_at ELSE d.prev_last_seen END, " +
	"online_since = CASE WHEN d.last_seen_at < c.gap THEN c.at ELSE d.online_since END, "

// saveCheckinsPG is SaveCheckins on PostgreSQL: the check-ins of an
// interval (up to every held poll's device after a feed change) in one
// round trip — a pgx batch of two statements, one implicit transaction
// (ingestBatch) — instead of one UPDATE round trip per device inside a
// transaction. The old way held each updated device's row lock until the
// last device's round trip, and a chunk's transaction of any of those
// devices (its device UPDATE) waited for all of them: under full ingest
// the sampled backends showed the chunks' device UPDATE waiting on a row
// lock (docs/scale.md "Fifth round", "Sixth round").
//
// The rows are locked first in id order (SELECT … ORDER BY id FOR NO
// KEY UPDATE, the lock an UPDATE of non-key columns takes itself, so it
// would not block a foreign key to devices if one is added): two replicas writing the check-ins of the same devices take the
// locks in one order, so they cannot deadlock (each wrote in its buffer's
// map order before: TestSaveCheckinsReplicasNoDeadlock). A device listed
// twice is written in its order of the list: one statement per repetition.
func (s *Store) saveCheckinsPG(ctx context.Context, cs []Checkin, offlineAfter time.Duration) error {
	var layers [][]Checkin
	seen := make(map[string]int, len(cs))
	for _, c := range cs {
		n := seen[c.DeviceID]
		seen[c.DeviceID] = n + 1
		if n == len(layers) {
			layers = append(layers, nil)
		}
		layers[n] = append(layers[n], c)
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	q := &pgQueue{}
	q.queue("SELECT id FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE", ids)
	for _, l := range layers {
		n := len(l)
		id, addr, av, osp, osv := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		at, gap, known, seq := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		for _, c := range l {
			k := int64(0)
			if c.Known {
				k = 1
			}
			id, addr, av, osp, osv = append(id, c.DeviceID), append(addr, c.Address), append(av, c.AgentVersion), append(osp, c.OSPlatform), append(osv, c.OSVer)
			at, gap, known, seq = append(at, ms(c.At)), append(gap, ms(c.At.Add(-offlineAfter))), append(known, k), append(seq, c.Sequence)
		}
		// An unknown agent (no header) leaves what a known one said.
		known1 := func(col, v string) string {
			return col + " = CASE WHEN c.known = 1 THEN " + v + " ELSE d." + col + " END"
		}
		q.queue("UPDATE devices AS d SET "+checkinSince+"last_seen_at = c.at, last_address = c.addr, "+
			known1("checkin_known", "1")+", "+known1("agent_version", "c.av")+", "+known1("os_platform", "c.osp")+", "+
			known1("os_version", "c.osv")+", "+known1("sequence_held", "c.seq")+
			" FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bigint[])"+
			" AS c(id, at, gap, addr, known, av, osp, osv, seq) WHERE d.id = c.id AND d.last_seen_at <= c.at",
			id, at, gap, addr, known, av, osp, osv, seq)
	}
	if err := s.sendBatch(ctx, &q.batch); err != nil {
		return fmt.Errorf("store: check-ins of %d devices: %w", len(seen), err)
	}
	return nil
}
