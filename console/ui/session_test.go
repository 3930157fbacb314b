package ui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestSignInOutAndPassword(t *testing.T) {
	f := newFixture(t)
	anon := f.client(t)
	// Pages send anonymous visitors to the sign-in page, and back after.
	anon.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := anon.c.Get(f.srv.URL + Base + "/machines?period=7d")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != Base+"/signin?next="+url.QueryEscape(Base+"/machines?period=7d") {
		t.Errorf("anonymous page = %d → %q", resp.StatusCode, loc)
	}
	anon.c.CheckRedirect = nil

	// A sign-in without the form's token is refused (login CSRF).
	if code, _ := anon.post(Base+"/signin", url.Values{"name": {"root"}, "password": {adminPW}}); code != 403 {
		t.Errorf("sign-in without the form token = %d, want 403", code)
	}
	// A wrong password says so.
	c := f.client(t)
	_, body := c.get(Base + "/signin")
	c.csrf = csrfRE.FindStringSubmatch(body)[1]
	if code, body := c.post(Base+"/signin", url.Values{"name": {"root"}, "password": {"wrong"}}); code != 401 || !strings.Contains(body, "Wrong name or password") {
		t.Errorf("wrong password = %d", code)
	}
	// An open redirect is not followed.
	if safeNext("//evil.example/") != Base+"/" || safeNext("https://evil.example/") != Base+"/" || safeNext(Base+"/apps?x=1") != Base+"/apps?x=1" {
		t.Error("safeNext lets a foreign URL through")
	}

	admin := f.signin(t, "root", adminPW)
	admin.page(Base + "/account")
	if code, body := admin.post(Base+"/account/password", url.Values{"current": {adminPW}, "new": {"a new password 456"}, "confirm": {"a new password 456"}}); code != 200 || !strings.Contains(body, "Password changed") {
		t.Errorf("change password = %d\n%s", code, body)
	}
	if code, body := admin.post(Base+"/account/password", url.Values{"current": {"nope"}, "new": {"another password 789"}, "confirm": {"another password 789"}}); code != 200 || !strings.Contains(body, "flash-error") {
		t.Errorf("change password with a wrong current one = %d, want an error flash", code)
	}
	// A post without the CSRF token changes nothing.
	if code, body := admin.post(Base+"/account/password", url.Values{"csrf_token": {"forged"}, "current": {"a new password 456"}, "new": {"x password 12345"}, "confirm": {"x password 12345"}}); !strings.Contains(body, "security token") {
		t.Errorf("forged CSRF = %d, want the expired-form error\n%s", code, body)
	}
	if code, body := admin.post(Base+"/signout", nil); code != 200 || !strings.Contains(body, "<h1>Sign in</h1>") {
		t.Errorf("sign out = %d", code)
	}
	if code, body := admin.get(Base + "/settings"); code != 200 || !strings.Contains(body, "<h1>Sign in</h1>") {
		t.Errorf("after sign-out, settings = %d", code)
	}
	f.signin(t, "root", "a new password 456")
}
