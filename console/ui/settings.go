package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/indicators"
)

func (u *UI) settingsRoutes() {
	u.page(Base+"/settings", u.settingsGeneral)
	u.action(Base+"/settings", u.saveSettings)
	u.page(Base+"/settings/enrollment", u.enrollment)
	u.page(Base+"/settings/enrollment.csv", u.enrollment)
	u.action(Base+"/settings/enrollment", u.createKey)
	u.action(Base+"/settings/enrollment/revoke", u.revokeKey)
	u.page(Base+"/settings/devices", u.devicesPage)
	u.page(Base+"/settings/devices.csv", u.devicesPage)
	u.action(Base+"/settings/devices/revoke", u.revokeDevice)
	u.page(Base+"/settings/accounts", u.accountsPage)
	u.page(Base+"/settings/accounts.csv", u.accountsPage)
	u.action(Base+"/settings/accounts", u.addAccount)
	u.action(Base+"/settings/accounts/delete", u.deleteAccount)
	u.page(Base+"/settings/tokens", u.tokensPage)
	u.page(Base+"/settings/tokens.csv", u.tokensPage)
	u.action(Base+"/settings/tokens", u.createToken)
	u.action(Base+"/settings/tokens/delete", u.deleteToken)
}

// settingsTabs are the sub-pages of Settings.
func settingsTabs(current string) web.Tabs {
	t := web.Tabs{Label: "Settings"}
	for _, it := range []struct{ key, label string }{
		{"", "Policy"}, {"enrollment", "Enrollment keys"}, {"devices", "Devices"}, {"accounts", "Accounts"}, {"tokens", "API tokens"}, {"alerts", "Alert destinations"},
	} {
		href := Base + "/settings"
		if it.key != "" {
			href += "/" + it.key
		}
		t.Items = append(t.Items, web.Tab{Label: it.label, Href: href, Current: it.key == current})
	}
	return t
}

// csvWanted reports whether the request asks for the CSV export of the
// page's list (the same path with .csv).
func csvWanted(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".csv") }

// listOut sends the table as CSV or renders the page with it.
func (u *UI) listOut(w http.ResponseWriter, r *http.Request, name string, t web.Table, page string, data any) {
	if csvWanted(r) {
		u.web.WriteCSV(w, r, name, t)
		return
	}
	u.web.Render(w, r, page, data)
}

type settingsPage struct {
	Tabs     web.Tabs
	Settings indicators.Settings
	Modes    []string
}

func (u *UI) settingsGeneral(w http.ResponseWriter, r *http.Request) {
	var s indicators.Settings
	if !u.get(w, r, "/api/settings", &s) {
		return
	}
	if s.Mode == "" {
		s.Mode = "block"
	}
	u.web.Render(w, r, "settings/general", settingsPage{Tabs: settingsTabs(""), Settings: s, Modes: []string{"block", "audit", "off"}})
}

func (u *UI) saveSettings(w http.ResponseWriter, r *http.Request) {
	hours, err := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("bypassDurationHours")), 64)
	if err != nil {
		u.done(w, r, errors.New("bypass duration: give a number of hours"), "", Base+"/settings")
		return
	}
	in := map[string]any{
		"mode": r.PostFormValue("mode"), "warnRedirectUrl": strings.TrimSpace(r.PostFormValue("warnRedirectUrl")),
		"blockRedirectUrl": strings.TrimSpace(r.PostFormValue("blockRedirectUrl")), "bypassDurationHours": hours,
		"convertWarnToBlock": r.PostFormValue("convertWarnToBlock") == "on",
	}
	var out struct {
		Feed struct {
			Sequence int64 `json:"sequence"`
		} `json:"feed"`
	}
	_, err = u.call(r, http.MethodPut, "/api/settings", in, &out)
	u.done(w, r, err, fmt.Sprintf("Settings saved and published as policy sequence %d; agents take them within seconds.", out.Feed.Sequence), Base+"/settings")
}

// --- enrollment keys ---

type enrollPage struct {
	Tabs    web.Tabs
	Keys    web.Table
	Command web.Command
	NewKey  *web.Command
}

// newKeyCookie carries a just-created secret (key or token) to the page
// after the redirect, once: it is shown there and never again.
const newSecretCookie = "nw_secret"

func (u *UI) showOnce(w http.ResponseWriter, r *http.Request, path, secret, extra string) {
	http.SetCookie(w, &http.Cookie{Name: newSecretCookie, Value: url.QueryEscape(secret + "\n" + extra), Path: path,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: 120})
}

func takeOnce(w http.ResponseWriter, r *http.Request, path string) (secret, extra string) {
	c, err := r.Cookie(newSecretCookie)
	if err != nil {
		return "", ""
	}
	http.SetCookie(w, &http.Cookie{Name: newSecretCookie, Path: path, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	v, _ := url.QueryUnescape(c.Value)
	secret, extra, _ = strings.Cut(v, "\n")
	return secret, extra
}

func (u *UI) enrollment(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Keys []store.EnrollKey `json:"keys"`
	}
	if !u.get(w, r, "/api/enrollment-keys", &out) {
		return
	}
	now := u.now()
	view := viewOf(r)
	t := web.Table{ID: "keys", Caption: "Enrollment keys", URL: r.URL, CSV: Base + "/settings/enrollment.csv", ClientSort: true,
		Columns: []web.Column{{Key: "name", Label: "Name", Sortable: true}, {Key: "state", Label: "State", Sortable: true},
			{Key: "uses", Label: "Machines enrolled", Numeric: true, Sortable: true}, {Key: "created", Label: "Created", Sortable: true, Narrow: true},
			{Key: "expires", Label: "Expires", Narrow: true}, {Key: "last", Label: "Last used", Sortable: true}},
		Empty:  web.Empty{Title: "No enrollment keys", Text: "Create one below to enroll machines."},
		Select: view.admin, Form: "keys-revoke"}
	for _, k := range out.Keys {
		state := "active"
		switch {
		case !k.RevokedAt.IsZero():
			state = "revoked"
		case !k.ExpiresAt.IsZero() && k.ExpiresAt.Before(now):
			state = "expired"
		}
		exp := "never"
		if !k.ExpiresAt.IsZero() {
			exp = k.ExpiresAt.UTC().Format("2006-01-02 15:04")
		}
		row := web.Row{Key: strconv.FormatInt(k.ID, 10), Label: k.Name, Cells: []web.Cell{web.TextCell(k.Name), web.TextCell(state), web.CountCell(k.Uses),
			{Text: k.CreatedAt.UTC().Format("2006-01-02 15:04"), Sub: "by " + k.CreatedBy}, web.TextCell(exp), web.TimeCell(k.LastUsedAt, now)}}
		t.Rows = append(t.Rows, row)
	}
	pg := enrollPage{Tabs: settingsTabs("enrollment"), Keys: t}
	if secret, cmd := takeOnce(w, r, Base+"/settings/enrollment"); secret != "" {
		pg.NewKey = &web.Command{ID: "new-key", Label: "the enrollment key", Text: secret}
		pg.Command = web.Command{ID: "enroll-cmd", Label: "the enroll command", Text: cmd}
	}
	u.listOut(w, r, "enrollment-keys", t, "settings/enrollment", pg)
}

func (u *UI) createKey(w http.ResponseWriter, r *http.Request) {
	in := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name"))}
	if h := strings.TrimSpace(r.PostFormValue("expiresInHours")); h != "" {
		n, err := strconv.ParseFloat(h, 64)
		if err != nil || n < 0 {
			u.done(w, r, errors.New("expiry: give a number of hours, or leave it empty for a key that never expires"), "", Base+"/settings/enrollment")
			return
		}
		in["expiresInHours"] = n
	}
	var out struct {
		Key           string `json:"key"`
		EnrollCommand string `json:"enrollCommand"`
	}
	_, err := u.call(r, http.MethodPost, "/api/enrollment-keys", in, &out)
	if err == nil {
		u.showOnce(w, r, Base+"/settings/enrollment", out.Key, out.EnrollCommand)
	}
	u.done(w, r, err, "Enrollment key created. Copy it now: it is shown once.", Base+"/settings/enrollment")
}

func (u *UI) revokeKey(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/settings/enrollment", "Revoked %d enrollment keys: machines can no longer enroll with them (enrolled ones keep working).",
		http.MethodDelete, func(id string) string { return "/api/enrollment-keys/" + url.PathEscape(id) })
}

// eachAPI is each with one API call (method, path of the id) per row.
func (u *UI) eachAPI(w http.ResponseWriter, r *http.Request, back, ok, method string, path func(id string) string) {
	u.each(w, r, back, ok, func(id string) error {
		_, err := u.call(r, method, path(id), nil, nil)
		return err
	})
}

// each runs one API call per selected row (form field "ids") and reports
// how many succeeded, or the first refusal.
func (u *UI) each(w http.ResponseWriter, r *http.Request, back, ok string, f func(id string) error) {
	_ = r.ParseForm()
	ids := r.PostForm["ids"]
	if len(ids) == 0 {
		u.done(w, r, errors.New("select at least one row first"), "", back)
		return
	}
	n := 0
	for _, id := range ids {
		if err := f(id); err != nil {
			if n > 0 {
				err = fmt.Errorf("%d done, then %s: %w", n, id, err)
			}
			u.done(w, r, err, "", back)
			return
		}
		n++
	}
	u.done(w, r, nil, fmt.Sprintf(ok, n), back)
}

// --- devices ---

type devicesPage struct {
	Tabs    web.Tabs
	Devices web.Table
}

func (u *UI) devicesPage(w http.ResponseWriter, r *http.Request) {
	list, ok := u.deviceList(w, r)
	if !ok {
		return
	}
	now := u.now()
	view := viewOf(r)
	t := web.Table{ID: "devices", Caption: "Enrolled devices", URL: r.URL, CSV: Base + "/settings/devices.csv", ClientSort: true, Filter: true, FilterLabel: "Filter devices",
		Columns: []web.Column{{Key: "name", Label: "Machine", Sortable: true}, {Key: "id", Label: "Device id", Narrow: true},
			{Key: "state", Label: "State", Sortable: true}, {Key: "enrolled", Label: "Enrolled", Sortable: true, Narrow: true}, {Key: "seen", Label: "Last check-in", Sortable: true}},
		Empty:  web.Empty{Title: "No devices enrolled", Text: "Create an enrollment key and run the enroll command on a machine.", Action: "Enrollment keys", Href: Base + "/settings/enrollment"},
		Select: view.admin, Form: "devices-revoke"}
	for _, d := range list {
		row := web.Row{Key: d.ID, Label: d.Name, Cells: []web.Cell{web.LinkCell(d.Name, Base+"/machines/"+url.PathEscape(d.ID)), {Text: d.ID, Mono: true},
			web.TextCell(d.State), web.TextCell(d.EnrolledAt.UTC().Format("2006-01-02")), web.TimeCell(d.LastSeenAt, now)}}
		t.Rows = append(t.Rows, row)
	}
	pageTable(r, &t)
	u.listOut(w, r, "devices", t, "settings/devices", devicesPage{Tabs: settingsTabs("devices"), Devices: t})
}

func (u *UI) revokeDevice(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/settings/devices", "Revoked %d devices: their feed requests and uploads are refused from now on.", http.MethodPost, func(id string) string { return "/api/devices/" + url.PathEscape(id) + "/revoke" })
}

// --- accounts ---

type accountsPage struct {
	Tabs     web.Tabs
	Accounts web.Table
	Password *web.Command // generated for a new account, shown once
}

func (u *UI) accountsPage(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Accounts []store.Account `json:"accounts"`
	}
	if !u.get(w, r, "/api/accounts", &out) {
		return
	}
	view := viewOf(r)
	t := web.Table{ID: "accounts", Caption: "Console accounts", URL: r.URL, CSV: Base + "/settings/accounts.csv", ClientSort: true,
		Columns: []web.Column{{Key: "name", Label: "Account", Sortable: true}, {Key: "role", Label: "Role", Sortable: true},
			{Key: "created", Label: "Created", Sortable: true}, {Key: "pw", Label: "Password changed", Narrow: true}},
		Select: view.admin, Form: "accounts-delete"}
	for _, a := range out.Accounts {
		row := web.Row{Key: a.Name, Label: a.Name, Cells: []web.Cell{web.TextCell(a.Name), web.TextCell(a.Role),
			web.TextCell(a.CreatedAt.UTC().Format("2006-01-02")), web.TextCell(a.PasswordChangedAt.UTC().Format("2006-01-02"))}}
		t.Rows = append(t.Rows, row)
	}
	pg := accountsPage{Tabs: settingsTabs("accounts"), Accounts: t}
	if pw, _ := takeOnce(w, r, Base+"/settings/accounts"); pw != "" {
		pg.Password = &web.Command{ID: "new-password", Label: "the password", Text: pw}
	}
	u.listOut(w, r, "accounts", t, "settings/accounts", pg)
}

func (u *UI) addAccount(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Password string `json:"password"`
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	_, err := u.call(r, http.MethodPost, "/api/accounts", map[string]string{"name": name, "role": r.PostFormValue("role"), "password": r.PostFormValue("password")}, &out)
	if err == nil && out.Password != "" {
		u.showOnce(w, r, Base+"/settings/accounts", out.Password, "")
	}
	u.done(w, r, err, "Account "+name+" added.", Base+"/settings/accounts")
}

func (u *UI) deleteAccount(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/settings/accounts", "Deleted %d accounts.", http.MethodDelete, func(name string) string { return "/api/accounts/" + url.PathEscape(name) })
}

// --- API tokens ---

type tokensPage struct {
	Tabs   web.Tabs
	Tokens web.Table
	Token  *web.Command
}

func (u *UI) tokensPage(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Tokens []store.APIToken `json:"tokens"`
	}
	if !u.get(w, r, "/api/tokens", &out) {
		return
	}
	now := u.now()
	t := web.Table{ID: "tokens", Caption: "API tokens", URL: r.URL, CSV: Base + "/settings/tokens.csv", ClientSort: true,
		Columns: []web.Column{{Key: "name", Label: "Name", Sortable: true}, {Key: "account", Label: "Account", Sortable: true},
			{Key: "created", Label: "Created", Narrow: true}, {Key: "expires", Label: "Expires"}, {Key: "used", Label: "Last used", Sortable: true}},
		Empty:  web.Empty{Title: "No API tokens", Text: "Automation signs in with a token: Authorization: Bearer <token>."},
		Select: true, Form: "tokens-delete"}
	for _, k := range out.Tokens {
		exp := "never"
		if !k.ExpiresAt.IsZero() {
			exp = k.ExpiresAt.UTC().Format("2006-01-02")
		}
		row := web.Row{Key: strconv.FormatInt(k.ID, 10), Label: k.Name, Cells: []web.Cell{web.TextCell(k.Name), web.TextCell(k.Account),
			web.TextCell(k.CreatedAt.UTC().Format("2006-01-02")), web.TextCell(exp), web.TimeCell(k.LastUsedAt, now)}}
		t.Rows = append(t.Rows, row)
	}
	pg := tokensPage{Tabs: settingsTabs("tokens"), Tokens: t}
	if tok, _ := takeOnce(w, r, Base+"/settings/tokens"); tok != "" {
		pg.Token = &web.Command{ID: "new-token", Label: "the token", Text: tok}
	}
	u.listOut(w, r, "api-tokens", t, "settings/tokens", pg)
}

func (u *UI) createToken(w http.ResponseWriter, r *http.Request) {
	days, _ := strconv.Atoi(strings.TrimSpace(r.PostFormValue("expiresInDays")))
	var out struct {
		Token string `json:"token"`
	}
	_, err := u.call(r, http.MethodPost, "/api/tokens", map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "expiresInDays": days}, &out)
	if err == nil {
		u.showOnce(w, r, Base+"/settings/tokens", out.Token, "")
	}
	u.done(w, r, err, "API token created. Copy it now: it is shown once.", Base+"/settings/tokens")
}

func (u *UI) deleteToken(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/settings/tokens", "Deleted %d API tokens.", http.MethodDelete, func(id string) string { return "/api/tokens/" + url.PathEscape(id) })
}

// viewer is what handlers need to know of the signed-in account.
type viewer struct {
	name  string
	admin bool
}

func viewOf(r *http.Request) viewer {
	p, _ := principal(r)
	return viewer{name: p.Account.Name, admin: p.Admin()}
}

// device is a device as GET /api/devices answers it.
type device struct {
	store.Device
	Stale       bool   `json:"stale"`
	State       string `json:"state"`
	StateDetail string `json:"stateDetail"`
}

func (u *UI) deviceList(w http.ResponseWriter, r *http.Request) ([]device, bool) {
	var out struct {
		Devices  []device `json:"devices"`
		Sequence int64    `json:"sequence"`
	}
	ok := u.get(w, r, "/api/devices", &out)
	return out.Devices, ok
}
