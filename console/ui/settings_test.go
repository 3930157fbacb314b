package ui

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/netward/netward/console/feed"
)

func TestSettingsPages(t *testing.T) {
	f := newFixture(t)
	admin := f.signin(t, "root", adminPW)
	viewer := f.signin(t, "val", viewerPW)

	// Policy settings: the admin saves, the feed publishes them.
	_, body := admin.post(Base+"/settings", url.Values{"mode": {"audit"}, "warnRedirectUrl": {"https://intranet.example/aup"}, "bypassDurationHours": {"2"}, "convertWarnToBlock": {"on"}})
	if !strings.Contains(body, "Settings saved") {
		t.Fatalf("save settings:\n%s", body)
	}
	s, _ := feed.Settings(context.Background(), f.st)
	if s.Mode != "audit" || s.BypassDurationHours != 2 || !s.ConvertWarnToBlock || s.WarnRedirectURL != "https://intranet.example/aup" {
		t.Errorf("settings stored = %+v", s)
	}
	_, body = admin.post(Base+"/settings", url.Values{"mode": {"sideways"}, "bypassDurationHours": {"2"}})
	if !strings.Contains(body, "flash-error") {
		t.Error("an invalid mode was not refused on the page")
	}
	// The viewer sees them, without a save button, and cannot post.
	body = viewer.page(Base + "/settings")
	if strings.Contains(body, "Save and publish") || !strings.Contains(body, `value="audit" selected`) {
		t.Error("viewer's settings page has a save button or lacks the mode")
	}
	_, body = viewer.post(Base+"/settings", url.Values{"mode": {"off"}, "bypassDurationHours": {"1"}})
	if !strings.Contains(body, "may not do this") {
		t.Errorf("viewer's settings post was not refused:\n%s", body)
	}
	if s, _ := feed.Settings(context.Background(), f.st); s.Mode != "audit" {
		t.Errorf("viewer changed the mode to %q", s.Mode)
	}

	// Enrollment keys: the new key and the agent command, shown once.
	_, body = admin.post(Base+"/settings/enrollment", url.Values{"name": {"Berlin office"}, "expiresInHours": {"24"}})
	if !strings.Contains(body, "netward enroll --console https://") || !strings.Contains(body, "--fingerprint AA:BB") || !strings.Contains(body, `id="new-key"`) {
		t.Fatalf("new key page lacks the key or the command:\n%s", body)
	}
	if body = admin.page(Base + "/settings/enrollment"); strings.Contains(body, `id="new-key"`) {
		t.Error("the key is shown a second time")
	}
	_, csv := admin.get(Base + "/settings/enrollment.csv")
	if !strings.HasPrefix(csv, "Name,State,Machines enrolled") || !strings.Contains(csv, "Berlin office,active,0") {
		t.Errorf("keys CSV:\n%s", csv)
	}
	if body = viewer.page(Base + "/settings/enrollment"); strings.Contains(body, "Create key") || strings.Contains(body, "keys-revoke") {
		t.Error("the viewer sees key controls")
	}
	_, body = viewer.post(Base+"/settings/enrollment/revoke", url.Values{"ids": {"1"}})
	if !strings.Contains(body, "may not do this") {
		t.Error("viewer revoked a key")
	}
	_, body = admin.post(Base+"/settings/enrollment/revoke", url.Values{"ids": {"1"}})
	if !strings.Contains(body, "Revoked 1 enrollment keys") {
		t.Errorf("revoke key:\n%s", body)
	}

	// Accounts: a generated password is shown once.
	_, body = admin.post(Base+"/settings/accounts", url.Values{"name": {"carol"}, "role": {"viewer"}})
	if !strings.Contains(body, `id="new-password"`) || !strings.Contains(body, "carol") {
		t.Errorf("add account:\n%s", body)
	}
	_, csv = admin.get(Base + "/settings/accounts.csv")
	if !strings.Contains(csv, "carol,viewer") {
		t.Errorf("accounts CSV:\n%s", csv)
	}
	// API tokens: the viewer may make its own (read-only) token.
	_, body = viewer.post(Base+"/settings/tokens", url.Values{"name": {"siem"}, "expiresInDays": {"30"}})
	if !strings.Contains(body, `id="new-token"`) || !strings.Contains(body, "nwt_") && !strings.Contains(body, "siem") {
		t.Errorf("create token:\n%s", body)
	}
	// Devices: an enrolled device is listed and can be revoked.
	tok := consoletestEnroll(t, f, "dev-1")
	_ = tok
	body = admin.page(Base + "/settings/devices")
	if !strings.Contains(body, "dev-1") {
		t.Error("device not listed")
	}
	_, body = admin.post(Base+"/settings/devices/revoke", url.Values{"ids": {"dev-1"}})
	if !strings.Contains(body, "Revoked 1 devices") {
		t.Errorf("revoke device:\n%s", body)
	}
	for _, p := range []string{"/settings/devices", "/settings/accounts", "/settings/tokens"} {
		admin.page(Base + p)
		viewer.page(Base + p)
	}
}
