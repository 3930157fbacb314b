package web

import (
	"html/template"
	"net/url"
	"strconv"
	"time"

	"github.com/netward/netward/console/web/format"
)

// Tag is an app's sanction tag (CONTRACT §1): Unsanctioned apps are
// blocked, Monitored ones warned with a bypass.
type Tag string

// The tags; TagNone is an untagged app.
const (
	TagNone         Tag = ""
	TagSanctioned   Tag = "Sanctioned"
	TagUnsanctioned Tag = "Unsanctioned"
	TagMonitored    Tag = "Monitored"
)

// Label is the text of the tag's badge.
func (t Tag) Label() string {
	if t == TagNone {
		return "Untagged"
	}
	return string(t)
}

// Class is the CSS class of the tag's badge.
func (t Tag) Class() string {
	switch t {
	case TagSanctioned:
		return "badge badge-sanctioned"
	case TagUnsanctioned:
		return "badge badge-unsanctioned"
	case TagMonitored:
		return "badge badge-monitored"
	}
	return "badge badge-none"
}

// Risk is a machine's risk level (high / medium / low / informational).
type Risk string

// The risk levels.
const (
	RiskHigh          Risk = "High"
	RiskMedium        Risk = "Medium"
	RiskLow           Risk = "Low"
	RiskInformational Risk = "Informational"
)

// Class is the CSS class of the risk badge.
func (r Risk) Class() string {
	switch r {
	case RiskHigh:
		return "risk risk-high"
	case RiskMedium:
		return "risk risk-medium"
	case RiskLow:
		return "risk risk-low"
	}
	return "risk risk-info"
}

// Bars is how many of the three bars of the risk meter are filled.
func (r Risk) Bars() []bool {
	n := map[Risk]int{RiskHigh: 3, RiskMedium: 2, RiskLow: 1}[r]
	return []bool{n >= 1, n >= 2, n >= 3}
}

// Table is the data of the "table" partial: a data table with sortable
// headers, a filter box, CSV export, optional row selection and pagination.
type Table struct {
	ID string // unique on the page; used by the filter box and the script
	// Caption names the table for screen readers (shown visually hidden).
	Caption string
	Columns []Column
	Rows    []Row
	// URL is the page's URL; sort links and the filter form keep its query.
	URL *url.URL
	// Sort and Desc are the current server-side order (?sort=key&dir=desc).
	Sort string
	Desc bool
	// ClientSort lets the script sort the rows in the browser, for a table
	// that holds all of its rows (no pagination). Without it, or without
	// JavaScript, the header links ask the server.
	ClientSort bool
	// Filter shows a filter box (?q=), filtering as one types with the script.
	Filter      bool
	FilterLabel string
	Query       string
	// CSV is the URL of the CSV export, if any.
	CSV string
	// Select adds a checkbox per row (name "ids", value Row.Key) that
	// belongs to the form with id Form, for bulk actions.
	Select bool
	Form   string
	Empty  Empty
	Pager  *Pager
}

// Column is a table column. Numeric columns align right and sort as numbers.
type Column struct {
	Key, Label string
	Numeric    bool
	Sortable   bool
	// Narrow hides the column on small screens (secondary details).
	Narrow bool
}

// Row is a table row; Key identifies it for selection, Label names it for
// its checkbox ("Select Dropbox").
type Row struct {
	Key, Label string
	Cells      []Cell
}

// Cell is one table cell. Text is shown; Sort, when set, is the value the
// client-side sort uses (a number for bytes or counts). Href makes the text a
// link, Drawer opens that link in the drawer. Tag or Risk show a badge,
// Spark a sparkline, Sub a second muted line, Flag a small warning label
// after the text ("stale").
type Cell struct {
	Text, Sort, Href, Sub, Flag string
	Drawer                      bool
	Mono                        bool
	Tag                         *Tag
	Risk                        Risk
	Spark                       template.HTML
}

// TextCell is a plain text cell.
func TextCell(s string) Cell { return Cell{Text: s} }

// LinkCell is a link cell.
func LinkCell(text, href string) Cell { return Cell{Text: text, Href: href} }

// BytesCell shows a byte count ("1.2 GB") and sorts by the number.
func BytesCell(n int64) Cell {
	return Cell{Text: format.Bytes(float64(n)), Sort: strconv.FormatInt(n, 10)}
}

// CountCell shows a count ("12,345") and sorts by the number.
func CountCell(n int64) Cell {
	return Cell{Text: format.Count(float64(n)), Sort: strconv.FormatInt(n, 10)}
}

// TimeCell shows how long ago t was, with the date as the sort key.
func TimeCell(t, now time.Time) Cell {
	if t.IsZero() {
		return Cell{Text: "never", Sort: "0"}
	}
	return Cell{Text: format.Ago(t, now), Sort: strconv.FormatInt(t.Unix(), 10)}
}

// TagCell shows a tag badge and sorts by the tag's name.
func TagCell(t Tag) Cell { return Cell{Tag: &t, Sort: t.Label()} }

// RiskCell shows a risk badge and sorts from high to informational.
func RiskCell(r Risk) Cell {
	return Cell{Risk: r, Sort: strconv.Itoa(map[Risk]int{RiskHigh: 3, RiskMedium: 2, RiskLow: 1}[r])}
}

// SortHref is the link of a column header: sort by key, ascending first,
// toggling when it is already the sort.
func (t Table) SortHref(key string) string {
	q := url.Values{}
	if t.URL != nil {
		q = t.URL.Query()
	}
	q.Set("sort", key)
	dir := "asc"
	if t.Sort == key && !t.Desc {
		dir = "desc"
	}
	q.Set("dir", dir)
	q.Del("page")
	return "?" + q.Encode()
}

// AriaSort is the aria-sort value of a column header.
func (t Table) AriaSort(key string) string {
	switch {
	case t.Sort != key:
		return ""
	case t.Desc:
		return "descending"
	}
	return "ascending"
}

// Keep lists the query parameters the filter form must carry along.
func (t Table) Keep() []KV {
	if t.URL == nil {
		return nil
	}
	var out []KV
	for k, vs := range t.URL.Query() {
		if k == "q" || k == "page" {
			continue
		}
		for _, v := range vs {
			out = append(out, KV{k, v})
		}
	}
	sortKV(out)
	return out
}

// KV is a query parameter.
type KV struct{ Key, Value string }

func sortKV(kv []KV) {
	for i := 1; i < len(kv); i++ {
		for j := i; j > 0 && (kv[j].Key < kv[j-1].Key || kv[j].Key == kv[j-1].Key && kv[j].Value < kv[j-1].Value); j-- {
			kv[j], kv[j-1] = kv[j-1], kv[j]
		}
	}
}

// Stat is a stat card: a headline number with a label, an optional second
// line, a link and a sparkline.
type Stat struct {
	Label, Value, Sub, Href string
	Spark                   template.HTML
}

// Empty is an empty state: what is missing and what to do about it.
type Empty struct {
	Title, Text  string
	Action, Href string
}

// Tabs is the data of the "tabs" partial: links to the sub-pages of one
// object (a machine's Overview, Discovered apps, Users...). Each tab is a
// URL of its own, so tabs work without JavaScript and can be bookmarked.
type Tabs struct {
	Label string
	Items []Tab
}

// Tab is one tab; Count is an optional number shown beside the label.
type Tab struct {
	Label, Href, Count string
	Current            bool
}

// Drawer is a side panel over the page (an app's details). It is a real
// URL: the page renders with the drawer open when its link is followed, and
// the script loads it in place when JavaScript runs. Page data that returns
// a Drawer from PageDrawer() opens it; the page template defines
// "drawer-body", executed with Body.
type Drawer struct {
	Title, Subtitle string
	// Close is the URL of the page without the drawer.
	Close string
	Body  any
}

// Pager is the data of the "pager" partial.
type Pager struct {
	Page, Pages, Total int
	From, To           int // 1-based rows shown
	Prev, Next         string
	Links              []PageLink
}

// PageLink is one page number; Gap marks an ellipsis.
type PageLink struct {
	N       int
	Href    string
	Current bool
	Gap     bool
}

// NewPager makes the pagination of total rows, perPage at a time, on page
// (1-based, clamped) of the URL u, keeping u's other query parameters.
func NewPager(u *url.URL, page, perPage, total int) *Pager {
	if perPage <= 0 {
		perPage = 50
	}
	if total < 0 {
		total = 0
	}
	pages := (total + perPage - 1) / perPage
	if pages < 1 {
		pages = 1
	}
	page = max(1, min(page, pages))
	p := &Pager{Page: page, Pages: pages, Total: total, From: (page-1)*perPage + 1, To: min(page*perPage, total)}
	if total == 0 {
		p.From = 0
	}
	href := func(n int) string {
		q := url.Values{}
		if u != nil {
			q = u.Query()
		}
		q.Set("page", strconv.Itoa(n))
		return "?" + q.Encode()
	}
	if page > 1 {
		p.Prev = href(page - 1)
	}
	if page < pages {
		p.Next = href(page + 1)
	}
	last := 0
	for _, n := range []int{1, page - 2, page - 1, page, page + 1, page + 2, pages} {
		if n < 1 || n > pages || n <= last {
			continue
		}
		if last != 0 && n > last+1 {
			p.Links = append(p.Links, PageLink{Gap: true})
		}
		p.Links = append(p.Links, PageLink{N: n, Href: href(n), Current: n == page})
		last = n
	}
	return p
}

// ColumnClass is the class of a column's header and cells.
func (t Table) ColumnClass(c Column) string {
	switch {
	case c.Numeric && c.Narrow:
		return "num narrow-hide"
	case c.Numeric:
		return "num"
	case c.Narrow:
		return "narrow-hide"
	}
	return ""
}

// CellClass is the class of the cells of column i.
func (t Table) CellClass(i int) string {
	if i < 0 || i >= len(t.Columns) {
		return ""
	}
	return t.ColumnClass(t.Columns[i])
}

// Command is a shell command shown with a copy button (the agent's
// enrollment command). ID must be unique on the page; Label says what is
// copied, for screen readers.
type Command struct {
	ID, Label, Text string
}

// TagForm is the data of the "tag-form" partial: the Sanctioned /
// Unsanctioned / Monitored / Clear buttons of one app. Make it with
// View.TagForm so it carries the CSRF token.
type TagForm struct {
	View      *View
	Action    string
	App, Name string
	Choices   []TagChoice
}

// TagChoice is one button of a TagForm.
type TagChoice struct {
	Label, Value, Class, Confirm string
	Current                      bool
}

// TagForm makes the tag buttons of the app (id app, display name name)
// whose tag is current, posting to action. Unsanctioned asks for
// confirmation, since it blocks the app on every machine.
func (v *View) TagForm(action, app, name string, current Tag) TagForm {
	return TagForm{View: v, Action: action, App: app, Name: name, Choices: []TagChoice{
		{Label: "Sanctioned", Value: "sanctioned", Class: "sanctioned", Current: current == TagSanctioned},
		{Label: "Unsanctioned", Value: "unsanctioned", Class: "unsanctioned", Current: current == TagUnsanctioned,
			Confirm: "Block " + name + " on every machine? Users will see the block page."},
		{Label: "Monitored", Value: "monitored", Class: "monitored", Current: current == TagMonitored},
		{Label: "Clear", Value: "", Class: "clear", Current: current == TagNone},
	}}
}
