package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/netward/netward/console/web"
)

// loginCookie holds the sign-in form's token (double submit): there is no
// session yet, so this is what stops another site from signing a browser
// into an account of its choosing (login CSRF).
const loginCookie = "nw_signin"

type signinPage struct {
	Next, Token, Name string
	Error             string
}

func (u *UI) sessionRoutes() {
	u.mux.Handle("GET "+Base+"/signin", u.web.Secure(http.HandlerFunc(u.signinForm)))
	u.mux.Handle("POST "+Base+"/signin", u.web.Secure(http.HandlerFunc(u.signin)))
	u.action(Base+"/signout", u.signout)
	u.page(Base+"/account", func(w http.ResponseWriter, r *http.Request) {
		u.web.Render(w, r, "account", nil)
	})
	u.action(Base+"/account/password", u.changePassword)
}

// safeNext keeps a post-sign-in redirect on the console's own pages.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Base+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Base + "/"
	}
	return next
}

func (u *UI) signinForm(w http.ResponseWriter, r *http.Request) {
	u.renderSignin(w, r, http.StatusOK, signinPage{Next: safeNext(r.URL.Query().Get("next"))})
}

func (u *UI) renderSignin(w http.ResponseWriter, r *http.Request, status int, pg signinPage) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	pg.Token = base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: pg.Token, Path: Base + "/signin", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	u.web.RenderStatus(w, r, status, "signin", pg)
}

func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	pg := signinPage{Next: safeNext(r.PostFormValue("next")), Name: r.PostFormValue("name")}
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf_token"))) != 1 {
		pg.Error = "The sign-in form expired; enter your name and password again."
		u.renderSignin(w, r, http.StatusForbidden, pg)
		return
	}
	h, err := u.call(r, http.MethodPost, "/api/login", map[string]string{"name": pg.Name, "password": r.PostFormValue("password")}, nil)
	if err != nil {
		var e *apiError
		status := http.StatusInternalServerError
		pg.Error = "The console could not sign you in; the error is in its log."
		if errors.As(err, &e) {
			status = e.Status
			switch e.Status {
			case http.StatusUnauthorized:
				pg.Error = "Wrong name or password."
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				pg.Error = "Too many sign-in attempts; wait a minute and try again."
				if ra := h.Get("Retry-After"); ra != "" {
					w.Header().Set("Retry-After", ra)
				}
			}
		}
		u.renderSignin(w, r, status, pg)
		return
	}
	for _, c := range h.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: Base + "/signin", MaxAge: -1, Secure: true, HttpOnly: true})
	http.Redirect(w, r, pg.Next, http.StatusSeeOther)
}

func (u *UI) signout(w http.ResponseWriter, r *http.Request) {
	h, err := u.call(r, http.MethodPost, "/api/logout", nil, nil)
	for _, c := range h.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	if err != nil {
		u.web.Flash(w, r, web.Flash{Kind: web.FlashError, Text: err.Error()})
		http.Redirect(w, r, Base+"/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Base+"/signin", http.StatusSeeOther)
}

func (u *UI) changePassword(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("new") != r.PostFormValue("confirm") {
		u.done(w, r, errors.New("the two new passwords differ; type the same one twice"), "", Base+"/account")
		return
	}
	_, err := u.call(r, http.MethodPost, "/api/account/password", map[string]string{"current": r.PostFormValue("current"), "new": r.PostFormValue("new")}, nil)
	u.done(w, r, err, "Password changed. Your other sessions were signed out.", Base+"/account")
}
