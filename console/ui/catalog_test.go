package ui

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"strings"
	"testing"

	"net/url"
)

func TestCatalogTagging(t *testing.T) {
	f := newFixture(t)
	admin := f.signin(t, "root", adminPW)
	viewer := f.signin(t, "val", viewerPW)
	body := admin.page(Base + "/catalog?q=dropbox")
	if !strings.Contains(body, `value="dropbox"`) || !strings.Contains(body, `id="bulk-tag"`) {
		t.Fatalf("catalog search lacks dropbox or the bulk form:\n%s", body)
	}
	// Bulk tagging two apps; the flash names the sequence.
	_, body = admin.post(Base+"/apps/tag", url.Values{"ids": {"dropbox", "slack"}, "tag": {"unsanctioned"}, "back": {Base + "/catalog?q=dropbox"}})
	if !strings.Contains(body, "2 apps: Unsanctioned") {
		t.Errorf("bulk tag flash missing:\n%s", body)
	}
	tags, _ := f.st.Tags(context.Background())
	if tags["dropbox"].Tag != "Unsanctioned" || tags["slack"].Tag != "Unsanctioned" {
		t.Errorf("tags = %+v", tags)
	}
	body = admin.page(Base + "/catalog?tag=Unsanctioned")
	if !strings.Contains(body, ">dropbox</a>") || !strings.Contains(body, "badge-unsanctioned") {
		t.Errorf("tag filter does not list the tagged apps:\n%s", body)
	}
	_, csv := admin.get(Base + "/catalog.csv?tag=Unsanctioned")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "App,Category,Domains,Tag") {
		t.Errorf("catalog CSV of the Unsanctioned apps:\n%s", csv)
	}
	// A viewer has no tag controls and its tag POST is refused.
	if body = viewer.page(Base + "/catalog"); strings.Contains(body, `id="bulk-tag"`) || strings.Contains(body, `name="ids"`) {
		t.Error("viewer sees the tag controls")
	}
	_, body = viewer.post(Base+"/apps/tag", url.Values{"app": {"dropbox"}, "tag": {""}})
	if !strings.Contains(body, "may not do this") {
		t.Error("viewer's tag post not refused")
	}
	if tags, _ := f.st.Tags(context.Background()); tags["dropbox"].Tag != "Unsanctioned" {
		t.Error("viewer cleared the tag")
	}
	// Custom apps.
	_, body = admin.post(Base+"/catalog/custom", url.Values{"name": {"Intranet Wiki"}, "category": {"Collaboration"}, "domains": {"wiki.example.org\ndocs.example.org"}})
	if !strings.Contains(body, "Intranet Wiki") || !strings.Contains(body, "wiki.example.org") {
		t.Errorf("custom app not listed:\n%s", body)
	}
	_, body = admin.post(Base+"/catalog/custom", url.Values{"name": {"Bad"}, "domains": {"not a domain!"}})
	if !strings.Contains(body, "flash-error") {
		t.Error("an invalid domain was not refused")
	}
}

func TestIndicatorsPage(t *testing.T) {
	f := newFixture(t)
	admin := f.signin(t, "root", adminPW)
	_, body := admin.post(Base+"/catalog/indicators", url.Values{"indicatorValue": {"bad.example.com"}, "indicatorType": {"DomainName"}, "action": {"Block"}, "title": {"Phishing"}})
	if !strings.Contains(body, "bad.example.com saved") {
		t.Fatalf("add indicator:\n%s", body)
	}
	list, _ := f.st.Indicators(context.Background())
	if len(list) != 1 || list[0].Action != "Block" {
		t.Fatalf("indicators = %+v", list)
	}
	id := list[0].ID
	// Edit: the form is prefilled; saving changes the action.
	body = admin.page(Base + "/catalog/indicators?edit=" + itoa(id))
	if !strings.Contains(body, `value="bad.example.com" readonly`) || !strings.Contains(body, `value="Phishing"`) {
		t.Error("edit form not prefilled")
	}
	admin.post(Base+"/catalog/indicators", url.Values{"indicatorValue": {"bad.example.com"}, "indicatorType": {"DomainName"}, "action": {"Warn"}, "title": {"Phishing"}, "bypassDurationHours": {"1"}})
	// Expire.
	_, body = admin.post(Base+"/catalog/indicators/expire", url.Values{"ids": {itoa(id)}})
	if !strings.Contains(body, "Expired 1 indicators") || !strings.Contains(body, ">expired<") {
		t.Errorf("expire:\n%s", body)
	}
	list, _ = f.st.Indicators(context.Background())
	if len(list) != 1 || list[0].Action != "Warn" || list[0].ExpirationTime.IsZero() {
		t.Errorf("after edit and expire: %+v", list)
	}
	// Import an MDE CSV: the bad line is reported with its line number.
	csv := "IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert\n" +
		"DomainName,good.example.net,,Block,,Good,,,,,,\n" +
		"DomainName,bad name!,,Block,,,,,,,,\n"
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf_token", admin.csrf)
	fw, _ := mw.CreateFormFile("file", "mde-export.csv")
	io.WriteString(fw, csv)
	mw.Close()
	resp, err := admin.c.Post(f.srv.URL+Base+"/catalog/indicators/import", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body = string(b)
	if !strings.Contains(body, "Import: 1 new, 0 updated, 1 errors") || !strings.Contains(body, "mde-export.csv:3") {
		t.Errorf("import result lacks the counts or the line of the error:\n%s", body)
	}
	if _, csvOut := admin.get(Base + "/catalog/indicators.csv"); !strings.Contains(csvOut, "good.example.net,DomainName,Block") {
		t.Errorf("indicators CSV:\n%s", csvOut)
	}
	_, body = admin.post(Base+"/catalog/indicators/delete", url.Values{"ids": {itoa(id)}})
	if !strings.Contains(body, "Deleted 1 indicators") {
		t.Error("delete")
	}
}
