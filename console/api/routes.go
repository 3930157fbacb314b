package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/indicators"
)

// body size limits.
const (
	smallBody  = 64 << 10
	importBody = 32 << 20
)

func (a *API) routes() {
	// Sessions and accounts.
	a.handle("POST /api/login", public, a.login)
	a.handle("POST /api/logout", reader, a.logout)
	a.handle("GET /api/session", reader, a.session)
	a.handle("POST /api/account/password", reader, a.changePassword)
	a.handle("GET /api/accounts", reader, a.accounts)
	a.handle("POST /api/accounts", admin, a.addAccount)
	a.handle("DELETE /api/accounts/{name}", admin, a.deleteAccount)
	a.handle("GET /api/tokens", reader, a.tokens)
	a.handle("POST /api/tokens", reader, a.createToken)
	a.handle("DELETE /api/tokens/{id}", reader, a.deleteToken)
	a.handle("GET /api/audit", reader, a.auditLog)
	// Devices.
	a.handle("GET /api/enrollment-keys", reader, a.enrollKeys)
	a.handle("POST /api/enrollment-keys", admin, a.createEnrollKey)
	a.handle("DELETE /api/enrollment-keys/{id}", admin, a.revokeEnrollKey)
	a.handle("GET /api/devices", reader, a.devices)
	a.handle("GET /api/devices/{id}", reader, a.device)
	a.handle("GET /api/devices/{id}/traffic", reader, a.deviceTraffic)
	a.handle("POST /api/devices/{id}/revoke", admin, a.revokeDevice)
	a.handle("DELETE /api/devices/{id}", admin, a.deleteDevice)
	a.handle("POST /api/devices/{id}/allow-reenroll", admin, a.allowReenroll)
	a.handle("POST /v1/enroll", public, a.enroll)
	// Catalog, tags, indicators, settings, feed.
	a.handle("GET /api/apps", reader, a.apps)
	a.handle("GET /api/apps/{id}", reader, a.app)
	a.handle("POST /api/apps", admin, a.createApp)
	a.handle("DELETE /api/apps/{id}", admin, a.deleteApp)
	a.handle("PUT /api/apps/{id}/tag", admin, a.tagApp)
	a.handle("POST /api/apps/tags", admin, a.tagApps)
	a.handle("GET /api/categories", reader, a.categories)
	a.handle("GET /api/indicators", reader, a.listIndicators)
	a.handle("GET /api/indicators/{id}", reader, a.getIndicator)
	a.handle("POST /api/indicators", admin, a.submitIndicator)
	a.handle("POST /api/indicators/import", admin, a.importIndicators)
	a.handle("DELETE /api/indicators/{id}", admin, a.deleteIndicator)
	a.handle("GET /api/settings", reader, a.getSettings)
	a.handle("PUT /api/settings", admin, a.putSettings)
	a.handle("GET /api/feed", reader, a.feedStatus)
	a.handle("POST /api/feed/rotate-key", admin, a.rotateKey)
	a.handle("GET /api/ingest", reader, a.ingestStatus)
	a.handle("GET /api/licenses", public, a.licenses)
	a.analyticsRoutes()
	a.handle("/api/", reader, func(http.ResponseWriter, *http.Request, auth.Principal) (any, error) {
		return nil, &withStatus{http.StatusNotFound, errors.New("no such API endpoint; docs/console.md lists them")}
	})
}

// --- sessions and accounts ---

type sessionInfo struct {
	Account   string `json:"account"`
	Role      string `json:"role"`
	CSRFToken string `json:"csrfToken,omitempty"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	secret, p, err := a.cfg.Auth.Login(r.Context(), in.Name, in.Password, clientAddr(r))
	if err != nil {
		return nil, err
	}
	a.cfg.Auth.SetCookie(w, secret)
	return sessionInfo{p.Account.Name, p.Account.Role, p.CSRF}, nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	auth.ClearCookie(w)
	return nil, a.cfg.Auth.Logout(r.Context(), p)
}

func (a *API) session(_ http.ResponseWriter, _ *http.Request, p auth.Principal) (any, error) {
	return sessionInfo{p.Account.Name, p.Account.Role, p.CSRF}, nil
}

func (a *API) changePassword(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	if err := auth.CheckPassword(in.New); err != nil {
		return nil, invalid("%v", err)
	}
	if err := a.cfg.Auth.ChangePassword(r.Context(), p, in.Current, in.New); err != nil {
		if errors.Is(err, auth.ErrWrongCurrentPassword) {
			return nil, &withStatus{http.StatusForbidden, err}
		}
		return nil, err
	}
	a.audit(r, p, "password.change", p.Account.Name, "")
	return map[string]string{"result": "password changed; other sessions of this account were signed out"}, nil
}

func (a *API) accounts(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	list, err := a.cfg.Store.Accounts(r.Context())
	return map[string]any{"accounts": nonNil(list)}, err
}

func (a *API) addAccount(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	if in.Role == "" {
		in.Role = store.RoleViewer
	}
	generated := ""
	if in.Password == "" {
		in.Password = auth.RandomPassword()
		generated = in.Password
	}
	acc, err := a.cfg.Auth.AddAccount(r.Context(), in.Name, in.Role, in.Password)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, err
		}
		return nil, invalid("%v", err)
	}
	a.audit(r, p, "account.add", in.Name, in.Role)
	return map[string]any{"account": acc, "password": generated}, nil
}

func (a *API) deleteAccount(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	name := r.PathValue("name")
	if err := a.cfg.Store.DeleteAccount(r.Context(), name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, &withStatus{http.StatusConflict, err}
	}
	a.audit(r, p, "account.delete", name, "")
	return nil, nil
}

func (a *API) tokens(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id := p.Account.ID
	if p.Admin() {
		id = 0
	}
	list, err := a.cfg.Store.APITokens(r.Context(), id)
	return map[string]any{"tokens": nonNil(list)}, err
}

func (a *API) createToken(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Name          string `json:"name"`
		ExpiresInDays int    `json:"expiresInDays"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	if in.ExpiresInDays < 0 || in.ExpiresInDays > 3650 {
		return nil, invalid("expiresInDays: 0 (never) to 3650")
	}
	var exp time.Time
	if in.ExpiresInDays > 0 {
		exp = a.now().Add(time.Duration(in.ExpiresInDays) * 24 * time.Hour)
	}
	secret, t, err := a.cfg.Auth.CreateAPIToken(r.Context(), p, in.Name, exp)
	if err != nil {
		return nil, invalid("%v", err)
	}
	a.audit(r, p, "token.create", in.Name, "")
	return map[string]any{"token": secret, "info": t, "note": "the token is shown once; send it as Authorization: Bearer <token>"}, nil
}

func (a *API) deleteToken(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	owner := p.Account.ID
	if p.Admin() {
		owner = 0
	}
	if err := a.cfg.Store.DeleteAPIToken(r.Context(), id, owner); err != nil {
		return nil, err
	}
	a.audit(r, p, "token.delete", fmt.Sprint(id), "")
	return nil, nil
}

func (a *API) auditLog(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	limit, err := intParam(r, "limit", 100, 1, 10000)
	if err != nil {
		return nil, err
	}
	list, err := a.cfg.Store.AuditLog(r.Context(), limit)
	return map[string]any{"entries": nonNil(list)}, err
}

// --- devices ---

func (a *API) enrollKeys(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	list, err := a.cfg.Store.EnrollKeys(r.Context())
	return map[string]any{"keys": nonNil(list)}, err
}

func (a *API) createEnrollKey(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Name           string    `json:"name"`
		ExpiresAt      time.Time `json:"expiresAt"`
		ExpiresInHours float64   `json:"expiresInHours"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	exp := in.ExpiresAt
	if in.ExpiresInHours > 0 {
		exp = a.now().Add(time.Duration(in.ExpiresInHours * float64(time.Hour)))
	}
	secret, k, err := a.cfg.Auth.CreateEnrollKey(r.Context(), in.Name, p.Actor(), exp)
	if err != nil {
		return nil, invalid("%v", err)
	}
	a.audit(r, p, "enrollmentKey.create", in.Name, "")
	cmd := "netward enroll --console https://" + r.Host + " --key KEYFILE"
	if a.cfg.Fingerprint != "" {
		cmd += " --fingerprint " + a.cfg.Fingerprint
	}
	return map[string]any{"key": secret, "info": k, "enrollCommand": cmd,
		"note": "the key is shown once: save it to KEYFILE on the machines to enroll (0600)"}, nil
}

func (a *API) revokeEnrollKey(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.RevokeEnrollKey(r.Context(), id); err != nil {
		return nil, err
	}
	a.audit(r, p, "enrollmentKey.revoke", fmt.Sprint(id), "")
	return nil, nil
}

// deviceView is a device with what the console derives from it.
type deviceView struct {
	store.Device
	// Stale: the device does not hold the published sequence (State says
	// how); false for current, revoked or never-checked-in devices.
	Stale bool `json:"stale"`
	// State: current, behind (will take the new sequence on its next
	// poll), refusing (polled since the sequence was published and still
	// holds an older one: it refuses the feed — wrong public key, or a
	// rollback), ahead (holds more than the console published: a console
	// restored from a backup; the console publishes above it on the
	// device's next check-in), unknown (no Netward-Agent header yet),
	// revoked.
	State       string `json:"state"`
	StateDetail string `json:"stateDetail,omitempty"`
}

// refuseGrace is how long after a publish a device still on an older
// sequence counts as behind, not refusing (a poll round trip, a restart).
const refuseGrace = 2 * time.Minute

func (a *API) view(d store.Device, st feed.Status) deviceView {
	v := deviceView{Device: d}
	seq := st.Sequence
	switch {
	case d.Revoked():
		v.State = "revoked"
	case !d.CheckinKnown:
		v.State = "unknown"
	case d.SequenceHeld == seq:
		v.State = "current"
	case d.SequenceHeld > seq:
		v.State = "ahead"
		v.StateDetail = fmt.Sprintf("holds sequence %d, above the %d published: was the console restored from a backup? It publishes above %d on the device's next check-in", d.SequenceHeld, seq, d.SequenceHeld)
	case d.LastSeenAt.After(st.GeneratedAt.Add(refuseGrace)):
		v.State = "refusing"
		v.StateDetail = fmt.Sprintf("polled at %s, after sequence %d was published, and still holds %d: the agent refuses the feed (signing key rotated? check its netward status)",
			d.LastSeenAt.UTC().Format(time.RFC3339), seq, d.SequenceHeld)
	default:
		v.State = "behind"
	}
	v.Stale = v.State == "behind" || v.State == "refusing" || v.State == "ahead"
	return v
}

func (a *API) devices(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	a.cfg.Feed.FlushCheckins(r.Context())
	list, err := a.cfg.Store.Devices(r.Context())
	if err != nil {
		return nil, err
	}
	st := a.cfg.Feed.Status()
	out := make([]deviceView, 0, len(list))
	for _, d := range list {
		out = append(out, a.view(d, st))
	}
	return map[string]any{"devices": out, "sequence": st.Sequence}, nil
}

func (a *API) device(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	ctx := r.Context()
	a.cfg.Feed.FlushCheckins(ctx)
	d, err := a.cfg.Store.Device(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	chunks, records, err := a.cfg.Store.ChunkStats(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	users, err := a.cfg.Store.DeviceSeen(ctx, d.ID, "users")
	if err != nil {
		return nil, err
	}
	addrs, err := a.cfg.Store.DeviceSeen(ctx, d.ID, "addresses")
	if err != nil {
		return nil, err
	}
	return map[string]any{"device": a.view(d, a.cfg.Feed.Status()), "chunks": chunks, "records": records,
		"users": nonNil(users), "addresses": nonNil(addrs)}, nil
}

func (a *API) deviceTraffic(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	id := r.PathValue("id")
	now := a.now()
	from, err := timeParam(r, "from", now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	to, err := timeParam(r, "to", now.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	tr, err := a.cfg.Store.DeviceTraffic(r.Context(), id, from, to)
	if err != nil {
		return nil, err
	}
	acts, err := a.cfg.Store.DeviceActions(r.Context(), id, from, to)
	if err != nil {
		return nil, err
	}
	var total store.Counters
	for _, t := range tr {
		total.Add(t.Counters)
	}
	return map[string]any{"deviceId": id, "from": from, "to": to, "total": total, "byAppAndDomain": nonNil(tr), "actions": acts}, nil
}

func (a *API) revokeDevice(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id := r.PathValue("id")
	if err := a.cfg.Store.RevokeDevice(r.Context(), id, p.Actor()); err != nil {
		return nil, err
	}
	a.cfg.Auth.ForgetDevice(id)
	a.cfg.Feed.Kick(id)
	a.audit(r, p, "device.revoke", id, "")
	return map[string]string{"result": "device " + id + " revoked: its feed requests and uploads are refused from now on"}, nil
}

func (a *API) deleteDevice(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id := r.PathValue("id")
	if err := a.cfg.Store.DeleteDevice(r.Context(), id); err != nil {
		return nil, err
	}
	a.cfg.Auth.ForgetDevice(id)
	a.cfg.Feed.Kick(id)
	a.audit(r, p, "device.delete", id, "")
	return nil, nil
}

// allowReenroll lets a reinstalled machine enroll again under its id with
// any valid enrollment key, within `hours` (default 24); the device's
// current token is refused at once and its held polls end.
func (a *API) allowReenroll(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Hours float64 `json:"hours"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, smallBody, &in); err != nil {
			return nil, err
		}
	}
	if in.Hours == 0 {
		in.Hours = 24
	}
	if in.Hours < 0 || in.Hours > 24*30 {
		return nil, invalid("hours: 0 (24) to 720")
	}
	id := r.PathValue("id")
	until := a.now().Add(time.Duration(in.Hours * float64(time.Hour)))
	if err := a.cfg.Store.AllowReenroll(r.Context(), id, until); err != nil {
		if errors.Is(err, store.ErrDeviceRevoked) {
			return nil, &withStatus{http.StatusConflict, fmt.Errorf("device %s is revoked: delete it (DELETE /api/devices/%s) to let the machine enroll again", id, id)}
		}
		return nil, err
	}
	a.cfg.Auth.ForgetDevice(id)
	a.cfg.Feed.Kick(id)
	a.audit(r, p, "device.allowReenroll", id, "until "+until.UTC().Format(time.RFC3339))
	return map[string]any{"result": "device " + id + " may enroll again (netward enroll on the machine) until the time below; its old token is refused from now on",
		"until": until.UTC()}, nil
}

// EnrollRequest is the body of POST /v1/enroll (CONTRACT §3).
type EnrollRequest struct {
	Key        string `json:"key"`
	DeviceID   string `json:"deviceId"`
	DeviceName string `json:"deviceName"`
	// CurrentToken is the device token the machine holds (re-enrolling an
	// enrolled device needs it, or an admin's allow-reenroll).
	CurrentToken string `json:"currentToken,omitempty"`
}

// EnrollResponse tells the agent its token and where to find the console.
type EnrollResponse struct {
	DeviceID          string `json:"deviceId"`
	Token             string `json:"token"`
	FeedURL           string `json:"feedUrl"`
	TelemetryEndpoint string `json:"telemetryEndpoint"`
	PublicKey         string `json:"publicKey"`
}

func (a *API) enroll(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	var in EnrollRequest
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	tok, d, err := a.cfg.Auth.EnrollFrom(r.Context(), auth.EnrollRequest{Key: in.Key, DeviceID: in.DeviceID, Name: in.DeviceName, CurrentToken: in.CurrentToken}, clientAddr(r))
	switch {
	case errors.Is(err, auth.ErrDeviceExists):
		return nil, &withStatus{http.StatusConflict, err}
	case errors.Is(err, store.ErrKeyInvalid):
		return nil, &withStatus{http.StatusForbidden, err}
	case errors.Is(err, store.ErrDeviceRevoked):
		return nil, &withStatus{http.StatusForbidden, err}
	case errors.Is(err, auth.ErrBadDeviceID):
		return nil, invalid("%v", err)
	case err != nil:
		return nil, err
	}
	a.cfg.Feed.Kick(d.ID) // polls held with a replaced token end (401)
	a.log.Info("device enrolled", "device", d.ID, "name", d.Name, "client", clientAddr(r))
	_ = a.cfg.Store.Audit(r.Context(), store.AuditEntry{Actor: "device " + d.ID, Action: "device.enroll", Target: d.ID, Detail: clientAddr(r)})
	base := "https://" + r.Host
	if r.TLS == nil {
		base = "http://" + r.Host
	}
	return EnrollResponse{DeviceID: d.ID, Token: tok, FeedURL: base + feed.Path, TelemetryEndpoint: base,
		PublicKey: base64.StdEncoding.EncodeToString(a.cfg.Feed.PublicKey())}, nil
}

// --- catalog and tags ---

type appView struct {
	catalog.App
	Tag string `json:"tag,omitempty"`
}

func (a *API) catalogNow(ctx context.Context) (*catalog.Catalog, error) {
	return feed.Catalog(ctx, a.cfg.Store, a.cfg.Catalog)
}

func (a *API) apps(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	ctx := r.Context()
	cat, err := a.catalogNow(ctx)
	if err != nil {
		return nil, err
	}
	tags, err := a.cfg.Store.Tags(ctx)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	search, category, tag := lower(q.Get("q")), lower(q.Get("category")), lower(q.Get("tag"))
	limit, err := intParam(r, "limit", 100, 1, 5000)
	if err != nil {
		return nil, err
	}
	offset, err := intParam(r, "offset", 0, 0, 1<<30)
	if err != nil {
		return nil, err
	}
	var match []appView
	for _, app := range cat.Apps() {
		t := tags[app.ID].Tag
		switch {
		case search != "" && !strings.Contains(strings.ToLower(app.Name), search) && !slices.ContainsFunc(app.Domains, func(d string) bool { return strings.Contains(d, search) }):
			continue
		case category != "" && !slices.ContainsFunc(app.Categories, func(c string) bool { return strings.ToLower(c) == category }):
			continue
		case tag == "untagged" && t != "", tag != "" && tag != "untagged" && strings.ToLower(t) != tag:
			continue
		}
		match = append(match, appView{app, t})
	}
	total := len(match)
	match = match[min(offset, total):min(offset+limit, total)]
	return map[string]any{"total": total, "offset": offset, "apps": nonNil(match)}, nil
}

func (a *API) app(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	cat, err := a.catalogNow(r.Context())
	if err != nil {
		return nil, err
	}
	app, err := cat.Lookup(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	tags, err := a.cfg.Store.Tags(r.Context())
	return appView{app, tags[app.ID].Tag}, err
}

func (a *API) createApp(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Name     string   `json:"name"`
		Category string   `json:"category"`
		Domains  []string `json:"domains"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 128 || strings.ContainsAny(in.Name, "\t\n") {
		return nil, invalid("name: give 1-128 characters")
	}
	if len(in.Domains) == 0 || len(in.Domains) > 1000 {
		return nil, invalid("domains: give 1-1000 host names")
	}
	var problems []indicators.Problem
	var warnings []string
	for i, d := range in.Domains {
		host, path, hasPath := strings.Cut(strings.TrimSpace(d), "/")
		n, err := filter.CanonicalName(host)
		if err != nil {
			x := i
			problems = append(problems, indicators.Problem{Position: indicators.Position{Index: &x, Field: "domains"}, Severity: indicators.SeverityError, Message: err.Error()})
			continue
		}
		in.Domains[i] = n
		if hasPath {
			in.Domains[i] = n + "/" + path
			warnings = append(warnings, fmt.Sprintf("%q has a path and is not propagated to agents (only the host is visible over TLS and QUIC); list the host instead", d))
		}
	}
	if len(problems) > 0 {
		return nil, &badRequest{msg: "some domains are not valid host names", problems: problems}
	}
	ca, err := a.cfg.Store.CreateCustomApp(r.Context(), store.CustomApp{Name: in.Name, Category: strings.TrimSpace(in.Category), Domains: in.Domains, CreatedBy: p.Actor()})
	if err != nil {
		return nil, err
	}
	a.cfg.CatalogChanged(r.Context())
	a.audit(r, p, "app.create", in.Name, strings.Join(in.Domains, " "))
	return map[string]any{"id": catalog.CustomID(ca.ID), "app": ca, "warnings": nonNil(warnings)}, nil
}

func (a *API) deleteApp(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id := r.PathValue("id")
	n, ok := strings.CutPrefix(id, catalog.CustomPrefix)
	var key int64
	if _, err := fmt.Sscan(n, &key); !ok || err != nil {
		return nil, invalid("%q is a shipped catalog app; only custom apps (%s…) can be deleted", id, catalog.CustomPrefix)
	}
	if err := a.cfg.Store.DeleteCustomApp(r.Context(), key, id); err != nil {
		return nil, err
	}
	a.cfg.CatalogChanged(r.Context())
	a.audit(r, p, "app.delete", id, "")
	st, err := a.publish(r.Context())
	return map[string]any{"feed": st}, err
}

func normTag(t string) (string, error) {
	switch lower(t) {
	case "", "none", "clear":
		return "", nil
	case "unsanctioned":
		return indicators.TagUnsanctioned, nil
	case "monitored":
		return indicators.TagMonitored, nil
	case "sanctioned":
		return indicators.TagSanctioned, nil
	}
	return "", invalid("tag %q: want Sanctioned, Unsanctioned, Monitored, or \"\" to clear", t)
}

func (a *API) tagApp(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Tag string `json:"tag"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	return a.setTags(r, p, []string{r.PathValue("id")}, in.Tag)
}

func (a *API) tagApps(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Apps []string `json:"apps"`
		Tag  string   `json:"tag"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	if len(in.Apps) == 0 || len(in.Apps) > 2000 {
		return nil, invalid("apps: give 1-2000 app ids")
	}
	return a.setTags(r, p, in.Apps, in.Tag)
}

func (a *API) setTags(r *http.Request, p auth.Principal, ids []string, tag string) (any, error) {
	t, err := normTag(tag)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	cat, err := a.catalogNow(ctx)
	if err != nil {
		return nil, err
	}
	var warnings []string
	for _, id := range ids {
		app, err := cat.Lookup(id)
		if err != nil {
			return nil, err
		}
		for _, d := range slices.Concat(app.Domains, app.Full) {
			if strings.Contains(d, "/") && t != "" && t != indicators.TagSanctioned {
				warnings = append(warnings, fmt.Sprintf("app %s: %q has a path and is not propagated (only the host is visible over TLS and QUIC)", app.Name, d))
			}
		}
	}
	for _, id := range ids {
		if err := a.cfg.Store.SetTag(ctx, id, t, p.Actor()); err != nil {
			return nil, err
		}
		a.audit(r, p, "app.tag", id, t)
	}
	st, err := a.publish(ctx)
	if a.cfg.Alerts != nil {
		a.cfg.Alerts.Invalidate()
	}
	return map[string]any{"apps": ids, "tag": t, "feed": st, "warnings": nonNil(warnings)}, err
}

func (a *API) categories(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	cat, err := a.catalogNow(r.Context())
	if err != nil {
		return nil, err
	}
	return map[string]any{"categories": cat.Categories(), "groups": cat.Groups()}, nil
}

// --- indicators (MDE-compatible) ---

func (a *API) listIndicators(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	list, err := a.cfg.Store.Indicators(r.Context())
	return map[string]any{"value": nonNil(list)}, err
}

func (a *API) getIndicator(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	return a.cfg.Store.Indicator(r.Context(), id)
}

func (a *API) deleteIndicator(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.DeleteIndicator(r.Context(), id); err != nil {
		return nil, err
	}
	a.audit(r, p, "indicator.delete", fmt.Sprint(id), "")
	st, err := a.publish(r.Context())
	return map[string]any{"feed": st}, err
}

// toStore converts parsed (validated, canonical) indicators.
func toStore(s *indicators.Set) []store.Indicator {
	out := make([]store.Indicator, 0, len(s.Indicators))
	for _, in := range s.Indicators {
		out = append(out, store.Indicator{
			Type: in.Type.String(), Value: in.Value, Action: in.Action.String(), Title: in.Title,
			Application: in.Application, ApplicationID: in.ApplicationID, ExpirationTime: in.Expires, BypassHours: in.BypassDuration.Hours(),
		})
	}
	return out
}

// submitIndicator is MDE's "Submit or Update Indicator": one indicator in
// MDE field names; an indicator with the same type and value is updated.
func (a *API) submitIndicator(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, smallBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > smallBody {
		return nil, invalid("the request body is longer than %d bytes", smallBody)
	}
	var desc struct {
		Description string `json:"description"`
	}
	_ = json.Unmarshal(body, &desc)
	set, err := indicators.ParseMDEJSON("request", append(append([]byte("["), body...), ']'), indicators.Options{Now: a.now()})
	if err != nil {
		return nil, invalid("%v", err)
	}
	if set.Errors() > 0 || len(set.Indicators) != 1 {
		return nil, &badRequest{msg: "the indicator is not valid", problems: set.Problems}
	}
	list := toStore(set)
	list[0].Description = desc.Description
	saved, _, err := a.cfg.Store.UpsertIndicators(r.Context(), list, p.Actor())
	if err != nil {
		return nil, err
	}
	a.audit(r, p, "indicator.submit", list[0].Type+" "+list[0].Value, list[0].Action)
	st, err := a.publish(r.Context())
	return map[string]any{"indicator": saved[0], "warnings": nonNil(set.Problems), "feed": st}, err
}

// ImportResult is one indicator's outcome, in the MDE import answer shape.
type ImportResult struct {
	ID            int64  `json:"id,omitempty"`
	Indicator     string `json:"indicator"`
	IsFailed      bool   `json:"isFailed"`
	FailureReason string `json:"failureReason,omitempty"`
}

// importIndicators takes the shapes the agent parses: MDE's import body
// {"Indicators": [...]}, an MDE JSON array or OData {"value": [...]}, or
// an MDE CSV file (Content-Type text/csv). Valid indicators are saved
// (?dryRun=true only validates); every problem comes back with its line or
// index, as `netward indicators validate` reports it.
func (a *API) importIndicators(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, importBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > importBody {
		return nil, &withStatus{http.StatusRequestEntityTooLarge, fmt.Errorf("the import is larger than %d bytes; split it", importBody)}
	}
	format := indicators.FormatJSON
	name := "import.json"
	ct := lower(r.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "text/csv") || strings.HasPrefix(ct, "application/csv") {
		format, name = indicators.FormatCSV, "import.csv"
	} else {
		var env struct {
			Indicators json.RawMessage `json:"Indicators"`
		}
		if json.Unmarshal(body, &env) == nil && len(env.Indicators) > 0 {
			body = env.Indicators
		}
	}
	set, err := indicators.Parse(name, body, format, "", nil, indicators.Options{Now: a.now()})
	if err != nil {
		return nil, invalid("%v", err)
	}
	results := make([]ImportResult, 0, len(set.Indicators))
	created, updated := 0, 0
	if r.URL.Query().Get("dryRun") != "true" && len(set.Indicators) > 0 {
		saved, n, err := a.cfg.Store.UpsertIndicators(r.Context(), toStore(set), p.Actor())
		if err != nil {
			return nil, err
		}
		created, updated = n, len(saved)-n
		for _, s := range saved {
			results = append(results, ImportResult{ID: s.ID, Indicator: s.Value})
		}
		a.audit(r, p, "indicator.import", fmt.Sprintf("%d indicators", len(saved)), fmt.Sprintf("%d new, %d updated, %d problems", created, updated, len(set.Problems)))
	}
	for _, pr := range set.Problems {
		if pr.Severity == indicators.SeverityError {
			results = append(results, ImportResult{Indicator: pr.Position.String(), IsFailed: true, FailureReason: pr.Message})
		}
	}
	out := map[string]any{"created": created, "updated": updated, "valid": len(set.Indicators), "errors": set.Errors(),
		"warnings": set.Warnings(), "problems": nonNil(set.Problems), "value": results}
	if created+updated > 0 {
		st, err := a.publish(r.Context())
		out["feed"] = st
		return out, err
	}
	return out, nil
}

// --- settings and status ---

func (a *API) getSettings(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	return feed.Settings(r.Context(), a.cfg.Store)
}

func (a *API) putSettings(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	s, err := feed.Settings(r.Context(), a.cfg.Store)
	if err != nil {
		return nil, err
	}
	// Fields left out keep their value.
	if err := decode(r, smallBody, &s); err != nil {
		return nil, err
	}
	if problems := feed.CheckSettings(s); len(problems) > 0 {
		return nil, &badRequest{msg: "the settings are not valid", problems: problems}
	}
	b, _ := json.Marshal(s)
	if err := a.cfg.Store.SetSetting(r.Context(), feed.SettingsName, string(b), p.Actor()); err != nil {
		return nil, err
	}
	a.audit(r, p, "settings.update", feed.SettingsName, string(b))
	st, err := a.publish(r.Context())
	return map[string]any{"settings": s, "feed": st}, err
}

func (a *API) feedStatus(_ http.ResponseWriter, _ *http.Request, _ auth.Principal) (any, error) {
	return a.cfg.Feed.Status(), nil
}

// rotateKey makes a new feed signing key (docs/console.md "Rotating the
// signing key").
func (a *API) rotateKey(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	pub, err := a.cfg.Feed.RotateKey(r.Context())
	if err != nil {
		return nil, err
	}
	pk := base64.StdEncoding.EncodeToString(pub)
	a.audit(r, p, "feed.rotateKey", pk, "")
	return map[string]any{"publicKey": pk,
		"note": "agents refuse the feed until they have the new public key: on each, run netward enroll again (it proves its device token) and netward restart, or set indicators.publicKey"}, nil
}

func (a *API) ingestStatus(_ http.ResponseWriter, _ *http.Request, _ auth.Principal) (any, error) {
	return a.cfg.Ingest.Stats(), nil
}

func (a *API) licenses(w http.ResponseWriter, _ *http.Request, _ auth.Principal) (any, error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "netward-console ships the app catalog of v2fly/domain-list-community under this licence:\n\n"+catalog.LicenseNotice)
	return nil, errHandled
}

// errHandled says the handler wrote its own answer.
var errHandled = errors.New("handled")

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
