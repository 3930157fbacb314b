package ui

import (
	"strings"
	"testing"
	"time"
)

func TestMachinePages(t *testing.T) {
	f := newFixture(t)
	f.fleet(t, time.Now().Add(-2*time.Hour))
	admin := f.signin(t, "root", adminPW)
	body := admin.page(Base + "/machines")
	if !strings.Contains(body, "/ui/machines/dev-a") || !strings.Contains(body, "/ui/machines/dev-b") {
		t.Fatalf("machines list:\n%s", body)
	}
	_, csv := admin.get(Base + "/machines.csv")
	if !strings.HasPrefix(csv, "Machine,Risk,OS,Agent,Last check-in,Policy sequence,Traffic,State") || strings.Count(csv, "\n") != 3 {
		t.Errorf("machines CSV:\n%s", csv)
	}
	base := Base + "/machines/dev-a"
	body = admin.page(base + "?period=24h")
	for _, want := range []string{"Transactions", "Uploads", "Downloads", "<svg", "1.28 KB"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	body = admin.page(base + "/apps?period=24h")
	if !strings.Contains(body, ">dropbox</a>") || !strings.Contains(body, ">slack</a>") || !strings.Contains(body, "intranet.example.org") {
		t.Errorf("machine apps tab:\n%s", body)
	}
	if body = admin.page(base + "/users?period=24h"); !strings.Contains(body, "alice") {
		t.Error("user history lacks alice")
	}
	if body = admin.page(base + "/ips?period=24h"); !strings.Contains(body, "192.0.2.10") {
		t.Error("IP history lacks 192.0.2.10")
	}
	body = admin.page(base + "/events?period=24h")
	if strings.Count(body, "<tr>") != 7 || !strings.Contains(body, "NetworkProtectionUserBypassEvent") {
		t.Errorf("events (want 6 rows with DeviceInfo, and a header):\n%s", body)
	}
	body = admin.page(base + "/events?period=24h&action=NetworkProtectionWarned&domain=dropbox.com")
	if strings.Count(body, "<tr>") != 2 || !strings.Contains(body, "www.dropbox.com") {
		t.Errorf("filtered events:\n%s", body)
	}
	_, csv = admin.get(base + "/events.csv?period=24h&domain=slack.com")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "app.slack.com") {
		t.Errorf("events CSV:\n%s", csv)
	}
	for _, tab := range []string{"overview", "apps", "users", "ips"} {
		if code, _ := admin.get(base + "/" + tab + ".csv?period=24h"); code != 200 {
			t.Errorf("%s CSV = %d", tab, code)
		}
	}
	if code, _ := admin.get(Base + "/machines/nope"); code != 404 {
		t.Errorf("unknown machine = %d", code)
	}
}
