package ui

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAlertsPages(t *testing.T) {
	f := newFixture(t)
	admin := f.signin(t, "root", adminPW)
	viewer := f.signin(t, "val", viewerPW)
	admin.post(Base+"/apps/tag", url.Values{"app": {"dropbox"}, "tag": {"unsanctioned"}})
	f.fleet(t, time.Now().Add(-time.Minute)) // dev-b's block of Dropbox raises an alert
	body := admin.page(Base + "/alerts?period=24h")
	if !strings.Contains(body, "Unsanctioned app accessed") || !strings.Contains(body, "/ui/machines/dev-b/events") || !strings.Contains(body, "app=dropbox") {
		t.Fatalf("alerts page lacks the access alert with its machine and app links:\n%s", body)
	}
	_, csv := admin.get(Base + "/alerts.csv?period=24h&state=new")
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) < 2 || !strings.Contains(csv, "dev-b,dropbox,www.dropbox.com,bob") {
		t.Fatalf("alerts CSV:\n%s", csv)
	}
	list, err := f.st.Alerts(context.Background(), alertFilterAll())
	if err != nil || len(list) == 0 {
		t.Fatalf("alerts in store: %v %v", list, err)
	}
	id := itoa(list[0].ID)
	if body = viewer.page(Base + "/alerts?period=24h"); strings.Contains(body, "alerts-bulk") {
		t.Error("viewer sees the acknowledge form")
	}
	if _, body = viewer.post(Base+"/alerts/acknowledge", url.Values{"ids": {id}}); !strings.Contains(body, "may not do this") {
		t.Error("viewer acknowledged an alert")
	}
	if _, body = admin.post(Base+"/alerts/acknowledge", url.Values{"ids": {id}, "back": {Base + "/alerts?period=24h&state=acknowledged"}}); !strings.Contains(body, "Acknowledged 1 alerts") || !strings.Contains(body, "by root") {
		t.Errorf("acknowledge:\n%s", body)
	}
	// The dashboard counts new alerts.
	admin.page(Base + "/?period=24h")

	// Alert destinations: a real webhook receiver gets the test alert.
	var got atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Netward-Signature") != "" && len(b) > 0 {
			got.Add(1)
		}
	}))
	defer hook.Close()
	_, body = admin.post(Base+"/settings/alerts", url.Values{"kind": {"webhook"}, "name": {"siem"}, "url": {hook.URL}, "secret": {"0123456789abcdef"}})
	if !strings.Contains(body, "siem") || !strings.Contains(body, hook.URL) {
		t.Fatalf("destination not listed:\n%s", body)
	}
	dests, _ := f.st.Destinations(context.Background())
	_, body = admin.post(Base+"/settings/alerts/test", url.Values{"ids": {itoa(dests[0].ID)}})
	if !strings.Contains(body, "Test alert delivered to 1") || got.Load() != 1 {
		t.Errorf("send test: receiver got %d\n%s", got.Load(), body)
	}
	_, body = admin.post(Base+"/settings/alerts", url.Values{"kind": {"syslog"}, "name": {"syslog"}, "network": {"udp"}, "address": {"nonsense"}})
	if !strings.Contains(body, "flash-error") {
		t.Error("bad syslog address accepted")
	}
	if body = viewer.page(Base + "/settings/alerts"); strings.Contains(body, "Send test") {
		t.Error("viewer sees Send test")
	}

	// Discovery policies: add, run, revert.
	_, body = admin.post(Base+"/catalog/policies", url.Values{"name": {"chat"}, "category": {"Communication"}, "minUsers": {"1"}, "periodDays": {"30"}, "tag": {"monitored"}})
	if !strings.Contains(body, "Policy chat added") {
		t.Fatalf("add policy:\n%s", body)
	}
	_, body = admin.post(Base+"/catalog/policies/run", nil)
	if !strings.Contains(body, "apps tagged") || !strings.Contains(body, "slack") {
		t.Errorf("run policies:\n%s", body)
	}
	ats, _ := f.st.AutoTags(context.Background())
	if len(ats) == 0 {
		t.Fatal("no automatic tag")
	}
	_, body = admin.post(Base+"/catalog/policies/revert", url.Values{"ids": {itoa(ats[0].ID)}})
	if !strings.Contains(body, "Reverted 1 automatic tags") {
		t.Errorf("revert:\n%s", body)
	}
	viewer.page(Base + "/catalog/policies")
}
