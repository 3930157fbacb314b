package ui

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
)

func TestDiscoveryPages(t *testing.T) {
	f := newFixture(t)
	f.fleet(t, time.Now().Add(-2*time.Hour))
	admin := f.signin(t, "root", adminPW)
	viewer := f.signin(t, "val", viewerPW)

	body := admin.page(Base + "/?period=24h")
	for _, want := range []string{"Discovered apps", "<svg", "Top apps by traffic", "dropbox"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	for _, p := range []string{"24h", "7d", "30d", "90d"} {
		admin.page(Base + "/?period=" + p)
		admin.page(Base + "/apps?period=" + p)
	}
	body = admin.page(Base + "/apps?period=7d")
	if !strings.Contains(body, `value="dropbox"`) || !strings.Contains(body, `value="slack"`) || !strings.Contains(admin.page(Base+"/apps/domains?period=7d"), "intranet.example.org") {
		t.Errorf("apps page lacks dropbox, slack or the unknown domains:\n%s", body)
	}
	// Filters: minimum users 2 leaves Dropbox alone.
	body = admin.page(Base + "/apps?period=7d&minUsers=2")
	if !strings.Contains(body, `value="dropbox"`) || strings.Contains(body, `value="slack"`) {
		t.Error("min users filter")
	}
	// CSV export: one row per app with raw numbers.
	_, csv := admin.get(Base + "/apps.csv?period=7d&sort=app&dir=asc")
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "App,Category,Traffic,Transactions,Users,Machines,Blocks,Bypasses,Last seen,Tag") ||
		!strings.HasPrefix(lines[1], "dropbox,Cloud storage,143000,5,2,2,1,1,") {
		t.Errorf("apps CSV:\n%s", csv)
	}
	// The drawer: domains, machines, users, block/warn/bypass counts and
	// the distinct users who bypassed.
	body = admin.page(Base + "/apps?period=7d&app=dropbox")
	for _, want := range []string{`id="drawer"`, "www.dropbox.com", "/ui/machines/dev-a", "alice", "1 distinct users bypassed", "tag-form"} {
		if !strings.Contains(body, want) {
			t.Errorf("drawer lacks %q", want)
		}
	}
	// Tag from the drawer: back to the same page.
	_, body = admin.post(Base+"/apps/tag", url.Values{"app": {"dropbox"}, "tag": {"unsanctioned"}, "back": {Base + "/apps?period=7d&app=dropbox"}})
	if !strings.Contains(body, "dropbox: Unsanctioned") || !strings.Contains(body, `id="drawer"`) {
		t.Errorf("tag from the drawer:\n%s", body)
	}
	// The viewer sees the drawer without the buttons.
	body = viewer.page(Base + "/apps?period=7d&app=dropbox")
	if strings.Contains(body, "tag-form") || strings.Contains(body, `id="bulk-tag"`) || !strings.Contains(body, "badge-unsanctioned") {
		t.Error("viewer's drawer has tag buttons or lacks the tag")
	}
}

func TestHuntPage(t *testing.T) {
	f := newFixture(t)
	f.fleet(t, time.Now().Add(-time.Hour))
	admin := f.signin(t, "root", adminPW)
	body := admin.page(Base + "/apps?period=24h&app=dropbox")
	if !strings.Contains(body, "/ui/hunt?domains=www.dropbox.com&amp;period=24h") {
		t.Errorf("drawer lacks the link to the app's events:\n%s", body)
	}
	admin.page(Base + "/hunt")
	body = admin.page(Base + "/hunt?domains=dropbox.com&period=24h")
	if !strings.Contains(body, "/ui/machines/dev-a/events") || !strings.Contains(body, "/ui/machines/dev-b/events") || strings.Count(body, "NetworkProtection") != 3 {
		t.Errorf("hunt page lacks both machines or the warn, bypass and block events:\n%s", body)
	}
	_, csv := admin.get(Base + "/hunt.csv?domains=dropbox.com&period=24h")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 6 || !strings.HasPrefix(lines[0], "Time (UTC),Machine,Action") {
		t.Errorf("hunt CSV (want 5 dropbox events):\n%s", csv)
	}
}

// TestAppDrawerCapsLongLists: an app on more machines (users) than the
// drawer lists shows the busiest, says how many there are, and links
// the CSV export of every one.
func TestAppDrawerCapsLongLists(t *testing.T) {
	f := newFixture(t)
	now := time.Now().UTC()
	h := store.HourOf(now)
	for i := range drawerRows + 5 {
		dev, user := fmt.Sprintf("pc-%03d", i), fmt.Sprintf("user%03d", i)
		k := store.TrafficKey{Hour: h, AppID: "dropbox", Domain: "www.dropbox.com"}
		if err := f.st.IngestChunk(context.Background(), &store.ChunkBatch{Meta: store.ChunkMeta{DeviceID: dev, ChunkID: "c", SHA256: "c", ReceivedAt: now, Path: dev + "/c"},
			Traffic: map[store.TrafficKey]*store.Counters{k: {Transactions: 1, BytesReceived: int64(1000 + i)}}, Users: map[store.UserKey]struct{}{{TrafficKey: k, User: user}: {}}}); err != nil {
			t.Fatal(err)
		}
	}
	admin := f.signin(t, "root", adminPW)
	body := admin.page(Base + "/apps?period=24h&app=dropbox")
	for _, want := range []string{"The 100 busiest of 105 machines", "The first 100 of 105 users", "/ui/machines/pc-104", "format=csv&amp;period=24h&amp;list=machines", "format=csv&amp;period=24h&amp;list=users"} {
		if !strings.Contains(body, want) {
			t.Errorf("drawer lacks %q", want)
		}
	}
	if strings.Contains(body, "/ui/machines/pc-000?") {
		t.Error("the drawer lists the least busy machine past its cap")
	}
}

// TestAppDrawerAlone: the script's request for a drawer (web.DrawerHeader)
// gets the drawer alone, without the list behind it, for admins and
// viewers alike; a flash queued for the next page survives it; the address
// says it varies with the header; a navigation to the same address gets the
// whole page. The CSV of the list stays the CSV.
func TestAppDrawerAlone(t *testing.T) {
	f := newFixture(t)
	f.fleet(t, time.Now().Add(-time.Hour))
	admin := f.signin(t, "root", adminPW)
	viewer := f.signin(t, "val", viewerPW)
	drawerOnly := func(c *client, path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(web.DrawerHeader, "1")
		resp, err := c.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	path := Base + "/apps?period=24h&app=dropbox"
	// Tagging queues a flash for the page it goes back to; read the
	// drawer alone first, as the script would, and the flash must wait.
	noFollow := *admin.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tagged, err := noFollow.PostForm(f.srv.URL+Base+"/apps/tag", url.Values{"app": {"slack"}, "tag": {"monitored"}, "back": {path}, "csrf_token": {admin.csrf}})
	if err != nil {
		t.Fatal(err)
	}
	tagged.Body.Close()
	if tagged.StatusCode != http.StatusSeeOther {
		t.Fatalf("tag slack = %d, want a redirect to the page", tagged.StatusCode)
	}
	// An app the console does not know: an error the script throws
	// away (it loads the whole page instead); the flash waits too.
	if resp, body := drawerOnly(admin, Base+"/apps?period=24h&app=nope-unknown"); resp.StatusCode == 200 || strings.Contains(body, `id="drawer"`) ||
		!strings.Contains(resp.Header.Get("Vary"), web.DrawerHeader) {
		t.Errorf("drawer alone of an unknown app: %d, headers %v\n%s", resp.StatusCode, resp.Header, body)
	}
	resp, body := drawerOnly(admin, path)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Vary"), web.DrawerHeader) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("drawer alone: %d, headers %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{`id="drawer"`, `class="drawer-scrim"`, "www.dropbox.com", "/ui/machines/dev-a", "alice", "1 distinct users bypassed", "tag-form", `name="csrf_token"`} {
		if !strings.Contains(body, want) {
			t.Errorf("drawer alone lacks %q:\n%s", want, body)
		}
	}
	for _, absent := range []string{`id="apps-table"`, "slack", `class="topbar"`} {
		if strings.Contains(body, absent) {
			t.Errorf("drawer alone carries the page behind it (%q):\n%s", absent, body)
		}
	}
	full := admin.page(path)
	if !strings.Contains(full, `id="apps-table"`) || !strings.Contains(full, `id="drawer"`) || !strings.Contains(full, "slack: Monitored") {
		t.Errorf("the whole page after the drawer alone lacks the list, the drawer or the queued flash:\n%s", full)
	}
	if resp, body := drawerOnly(admin, Base+"/apps.csv?period=24h&app=dropbox"); !strings.HasPrefix(body, "App,Category") {
		t.Errorf("the apps CSV asked with the drawer header: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// A viewer's drawer alone has no tag buttons.
	if _, body := drawerOnly(viewer, path); !strings.Contains(body, `id="drawer"`) || strings.Contains(body, "tag-form") {
		t.Errorf("viewer's drawer alone:\n%s", body)
	}
	// Signed out, the drawer is not shown.
	if resp, body := drawerOnly(f.client(t), path); strings.Contains(body, `id="drawer"`) || resp.StatusCode == 200 && !strings.Contains(body, "signin") {
		t.Errorf("signed-out drawer alone = %d:\n%s", resp.StatusCode, body)
	}
}
