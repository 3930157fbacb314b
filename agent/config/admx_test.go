package config

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The ADMX/ADML templates in deploy/windows, decoded just far enough to check
// them against GroupPolicies.
type admx struct {
	XMLName  xml.Name `xml:"policyDefinitions"`
	Policies []struct {
		Name         string `xml:"name,attr"`
		Class        string `xml:"class,attr"`
		Key          string `xml:"key,attr"`
		ValueName    string `xml:"valueName,attr"`
		DisplayName  string `xml:"displayName,attr"`
		ExplainText  string `xml:"explainText,attr"`
		Presentation string `xml:"presentation,attr"`
		Parent       struct {
			Ref string `xml:"ref,attr"`
		} `xml:"parentCategory"`
		Enabled  *admxValue `xml:"enabledValue"`
		Disabled *admxValue `xml:"disabledValue"`
		Elements struct {
			Items []admxElement `xml:",any"`
		} `xml:"elements"`
	} `xml:"policies>policy"`
	Categories []struct {
		Name string `xml:"name,attr"`
	} `xml:"categories>category"`
}

type admxValue struct {
	Decimal struct {
		Value string `xml:"value,attr"`
	} `xml:"decimal"`
}

type admxElement struct {
	XMLName   xml.Name
	ID        string `xml:"id,attr"`
	ValueName string `xml:"valueName,attr"`
	MinValue  string `xml:"minValue,attr"`
	MaxValue  string `xml:"maxValue,attr"`
	Items     []struct {
		DisplayName string `xml:"displayName,attr"`
		String      string `xml:"value>string"`
	} `xml:"item"`
}

type adml struct {
	XMLName xml.Name `xml:"policyDefinitionResources"`
	Strings []struct {
		ID string `xml:"id,attr"`
	} `xml:"resources>stringTable>string"`
	Presentations []struct {
		ID    string `xml:"id,attr"`
		Items []struct {
			RefID string `xml:"refId,attr"`
		} `xml:",any"`
	} `xml:"resources>presentationTable>presentation"`
}

func decodeStrict(t *testing.T, path string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formedness: walk every token, then decode.
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
	}
	if err := xml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func TestADMX(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "windows")
	var x admx
	admxText := decodeStrict(t, filepath.Join(dir, "netward.admx"), &x)
	var l adml
	decodeStrict(t, filepath.Join(dir, "en-US", "netward.adml"), &l)

	strs := map[string]bool{}
	for _, s := range l.Strings {
		strs[s.ID] = true
	}
	for _, m := range regexp.MustCompile(`\$\(string\.([A-Za-z0-9_]+)\)`).FindAllStringSubmatch(string(admxText), -1) {
		if !strs[m[1]] {
			t.Errorf("ADMX references $(string.%s), missing from the ADML", m[1])
		}
	}
	pres := map[string][]string{}
	for _, p := range l.Presentations {
		for _, it := range p.Items {
			pres[p.ID] = append(pres[p.ID], it.RefID)
		}
	}
	cats := map[string]bool{}
	for _, c := range x.Categories {
		cats[c.Name] = true
	}

	byPath := map[string]GroupPolicy{}
	for _, p := range GroupPolicies {
		byPath[strings.ToLower(`HKLM\`+keyPathOf(p)+`\`+p.ValueName())] = p
	}
	covered := map[string]bool{}
	for _, ap := range x.Policies {
		if ap.Class != "Machine" {
			t.Errorf("policy %s: class %q, want Machine (the overlay reads HKLM)", ap.Name, ap.Class)
		}
		if !cats[ap.Parent.Ref] {
			t.Errorf("policy %s: unknown category %q", ap.Name, ap.Parent.Ref)
		}
		// A policy is either a DWORD switch (valueName + enabled/disabled
		// values) or holds its value in one element.
		var valueName string
		var el *admxElement
		switch {
		case ap.ValueName != "":
			valueName = ap.ValueName
			if ap.Enabled == nil || ap.Disabled == nil || ap.Enabled.Decimal.Value != "1" || ap.Disabled.Decimal.Value != "0" {
				t.Errorf("policy %s: a switch must write decimal 1 when enabled and 0 when disabled", ap.Name)
			}
		case len(ap.Elements.Items) == 1:
			el = &ap.Elements.Items[0]
			valueName = el.ValueName
			id := strings.TrimSuffix(strings.TrimPrefix(ap.Presentation, "$(presentation."), ")")
			if refs := pres[id]; len(refs) != 1 || refs[0] != el.ID {
				t.Errorf("policy %s: presentation %q refers to %q, want [%s]", ap.Name, id, refs, el.ID)
			}
		default:
			t.Errorf("policy %s: want one value, has %d elements", ap.Name, len(ap.Elements.Items))
			continue
		}
		path := strings.ToLower(`HKLM\` + ap.Key + `\` + valueName)
		p, ok := byPath[path]
		if !ok {
			t.Errorf("policy %s writes %s, which config.ApplyGroupPolicy does not read", ap.Name, path)
			continue
		}
		if covered[p.Key] {
			t.Errorf("config key %s set by two policies", p.Key)
		}
		covered[p.Key] = true

		// Every value the template can write must be accepted by the overlay.
		var values []RegValue
		switch {
		case el == nil:
			values = []RegValue{dw(0), dw(1)}
		case el.XMLName.Local == "text":
			if p.Kind != RegString {
				t.Errorf("policy %s: text element for %s value %s", ap.Name, p.Kind, p.Key)
			}
		case el.XMLName.Local == "multiText":
			values = []RegValue{msz("192.0.2.53:53", "[2001:db8::53]:53")}
			if p.Key == "sni.proxyPorts" {
				values = []RegValue{msz("3128", "8080")}
			}
		case el.XMLName.Local == "decimal":
			min, err := strconv.ParseUint(el.MinValue, 10, 64)
			if err != nil {
				t.Errorf("policy %s: minValue %q: %v", ap.Name, el.MinValue, err)
			}
			max, err := strconv.ParseUint(el.MaxValue, 10, 64)
			if err != nil {
				t.Errorf("policy %s: maxValue %q: %v", ap.Name, el.MaxValue, err)
			}
			values = []RegValue{dw(min), dw(max)}
		case el.XMLName.Local == "enum":
			for _, it := range el.Items {
				values = append(values, sz(it.String))
			}
			if len(values) == 0 {
				t.Errorf("policy %s: enum without items", ap.Name)
			}
		default:
			t.Errorf("policy %s: unexpected element %s", ap.Name, el.XMLName.Local)
		}
		for _, v := range values {
			reg := fakeRegistry{p.Subkey(): {p.ValueName(): v}}
			if _, err := ApplyGroupPolicy(baseConfig(t), reg); err != nil {
				t.Errorf("policy %s value %+v: the overlay refuses it: %v", ap.Name, v, err)
			}
		}
	}
	for _, p := range GroupPolicies {
		if !covered[p.Key] {
			t.Errorf("config key %s (%s) has no ADMX policy", p.Key, p.Path())
		}
	}
}

// keyPathOf is the registry key (without HKLM\) of p.
func keyPathOf(p GroupPolicy) string {
	k := PolicyKey
	if s := p.Subkey(); s != "" {
		k += `\` + s
	}
	return k
}

// TestDocsMapping keeps the mapping table in docs/service.md complete.
func TestDocsMapping(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "service.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range GroupPolicies {
		row := "| `" + p.Key + "` | `HKLM\\" + keyPathOf(p) + "` | `" + p.ValueName() + "` | " + p.Kind.String()
		if !strings.Contains(string(b), row) {
			t.Errorf("docs/service.md lacks the row %q", row)
		}
	}
}
