// Package indicators reads every indicator format an admin brings (the feed
// document of CONTRACT §5, Microsoft Defender for Endpoint CSV and API JSON,
// hosts files and domain lists, an app catalog plus tags), validates them with
// the position of every problem, keeps the last good set on disk, serves and
// follows the signed feed, and compiles sets into filter.Policy values.
package indicators

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/filter"
)

// Indicator is one parsed, validated network indicator. Value is canonical
// (filter.CanonicalName for names, filter.ParsePrefix for IPs, filter.ParseURL
// for Urls), so two spellings of one name are recognised as duplicates.
type Indicator struct {
	ID             string
	Value          string
	Type           filter.Type
	Action         filter.Action
	Title          string
	Application    string
	ApplicationID  string
	Expires        time.Time     // zero: never
	BypassDuration time.Duration // zero: the feed's setting

	// Where it came from, kept compact because sets hold a million of these:
	// line/column for text formats, index+1 for JSON arrays (0 = none).
	line, col, index int32
}

// Settings are the feed's device settings (CONTRACT §5). Mode is "" when the
// feed does not set it (the local config applies).
type Settings struct {
	Mode                string  `json:"mode,omitempty"`
	WarnRedirectURL     string  `json:"warnRedirectUrl,omitempty"`
	BlockRedirectURL    string  `json:"blockRedirectUrl,omitempty"`
	BypassDurationHours float64 `json:"bypassDurationHours,omitempty"`
	ConvertWarnToBlock  bool    `json:"convertWarnToBlock"`
}

// Position says where a problem is: file:line:column for CSV and text
// formats, or the JSON array index and field for JSON formats.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	// Index is the element's index in the JSON indicator array (the
	// "indicators" array of a feed document, the top-level array of an MDE
	// export, the app array of a catalog); nil for text formats.
	Index *int   `json:"index,omitempty"`
	Field string `json:"field,omitempty"`
}

func (p Position) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	if p.Index != nil {
		fmt.Fprintf(&b, " [%d]", *p.Index)
	}
	if p.Field != "" {
		if p.Index != nil {
			b.WriteByte('.')
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(p.Field)
	}
	return b.String()
}

// Severity of a Problem. An error means the indicator (or setting) was not
// loaded; a warning means it was loaded, but probably not as the author meant.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Problem is one finding of validation.
type Problem struct {
	Position
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Position, p.Severity, p.Message) }

// Set is a parsed indicator set: what was loaded, and every problem found.
type Set struct {
	// Name is the file or source the set was read from (used in positions).
	Name    string
	Version string
	// Sequence is a feed document's "sequence" (CONTRACT §5), 0 when it
	// has none (and for other formats).
	Sequence    uint64
	GeneratedAt time.Time
	Settings    Settings
	Indicators  []Indicator
	Problems    []Problem
	// Rejected counts entries left out because they were invalid (each
	// has at least one error problem). Problems with settings, headers or
	// tags are not entries and are not counted here.
	Rejected int
}

// Errors is the number of error problems (rejected indicators or settings).
func (s *Set) Errors() int { return s.count(SeverityError) }

// Warnings is the number of warnings.
func (s *Set) Warnings() int { return s.count(SeverityWarning) }

func (s *Set) count(sev Severity) int {
	n := 0
	for _, p := range s.Problems {
		if p.Severity == sev {
			n++
		}
	}
	return n
}

// Pos returns where indicator i was read.
func (s *Set) Pos(i int) Position {
	in := &s.Indicators[i]
	p := Position{File: s.Name, Line: int(in.line), Column: int(in.col)}
	if in.index > 0 {
		x := int(in.index - 1)
		p.Index = &x
	}
	return p
}

func (s *Set) problem(p Position, sev Severity, format string, args ...any) {
	if p.File == "" {
		p.File = s.Name
	}
	s.Problems = append(s.Problems, Problem{Position: p, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

func (s *Set) errorf(p Position, format string, args ...any) {
	s.problem(p, SeverityError, format, args...)
}

// reject records an error for an entry that is left out, and counts it.
func (s *Set) reject(p Position, format string, args ...any) {
	s.Rejected++
	s.errorf(p, format, args...)
}

func (s *Set) warnf(p Position, format string, args ...any) {
	s.problem(p, SeverityWarning, format, args...)
}

// Rules returns the rules in force at now: expired indicators are left out.
// next is the earliest expiry after now among the rules returned (zero if
// none expires), the instant at which the set must be compiled again.
func (s *Set) Rules(now time.Time) (rules []filter.Rule, next time.Time) {
	rules = make([]filter.Rule, 0, len(s.Indicators))
	// One RuleMeta per distinct title/application/duration/id source: an
	// app's indicators share theirs, and so do a list's entries, whose ids
	// the rules derive from the file's name and their line.
	metas := map[filter.RuleMeta]*filter.RuleMeta{}
	base := baseName(s.Name)
	for i := range s.Indicators {
		in := &s.Indicators[i]
		if !in.Expires.IsZero() {
			if !in.Expires.After(now) {
				continue // CONTRACT §1: expired ⇒ not loaded
			}
			if next.IsZero() || in.Expires.Before(next) {
				next = in.Expires
			}
		}
		m := filter.RuleMeta{Title: in.Title, Application: in.Application, ApplicationID: in.ApplicationID,
			BypassDuration: in.BypassDuration}
		r := filter.Rule{Value: in.Value, Type: in.Type, Action: in.Action, ID: in.ID}
		if lineID(in.ID, base, in.line) {
			// The id the parser made for a line without one: derived
			// again when read (filter.Rule.IndicatorID), the same text.
			m.IDSource, r.ID, r.Line = base, "", uint32(in.line)
		}
		if m != (filter.RuleMeta{}) {
			if r.Meta = metas[m]; r.Meta == nil {
				r.Meta = filter.NewRuleMeta(m)
				metas[m] = r.Meta
			}
		}
		rules = append(rules, r)
	}
	return rules, next
}

// lineID reports whether id is base + ":" + line, the id a hosts file or
// list line (or a CSV row without one) is given.
func lineID(id, base string, line int32) bool {
	if line <= 0 || len(id) <= len(base)+1 || id[:len(base)] != base || id[len(base)] != ':' {
		return false
	}
	var b [12]byte
	return string(strconv.AppendInt(b[:0], int64(line), 10)) == id[len(base)+1:]
}

// Compile builds the policy in force at now and returns the instant at which
// it must be compiled again because an indicator expires (zero: never).
func (s *Set) Compile(now time.Time) (*filter.Policy, time.Time, error) {
	rules, next := s.Rules(now)
	p, err := filter.CompileOwned(rules) // rules was made for this call
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("compile %s: %w", s.Name, err)
	}
	return p, next, nil
}

// Stats counts a set's indicators for logs and `netward status`.
type Stats struct {
	Indicators int            `json:"indicators"`
	Expired    int            `json:"expired"`
	ByAction   map[string]int `json:"byAction"`
	ByType     map[string]int `json:"byType"`
	// HTTPOnly counts Url indicators with a path: enforceable on plain HTTP
	// only, never on TLS or QUIC (CONTRACT §1).
	HTTPOnly int `json:"httpOnly"`
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
}

// Stats counts indicators in force at now by action and type.
func (s *Set) Stats(now time.Time) Stats {
	st := Stats{ByAction: map[string]int{}, ByType: map[string]int{}, Errors: s.Errors(), Warnings: s.Warnings()}
	for i := range s.Indicators {
		in := &s.Indicators[i]
		if !in.Expires.IsZero() && !in.Expires.After(now) {
			st.Expired++
			continue
		}
		st.Indicators++
		st.ByAction[in.Action.String()]++
		st.ByType[in.Type.String()]++
		if in.Type == filter.TypeURL {
			if u, err := filter.ParseURL(in.Value); err == nil && u.HTTPOnly() {
				st.HTTPOnly++
			}
		}
	}
	return st
}

// checkDuplicates warns about indicators listed more than once with
// different actions. Both stay in the set: CONTRACT §1 resolves the tie
// (Allowed > Warn > Block > Audit), and the warning says which one wins.
func (s *Set) checkDuplicates() {
	type key struct {
		t filter.Type
		v string
	}
	first := make(map[key]int, len(s.Indicators))
	var found []Problem
	for i := range s.Indicators {
		in := &s.Indicators[i]
		k := key{in.Type, in.Value}
		j, ok := first[k]
		if !ok {
			first[k] = i
			continue
		}
		prev := &s.Indicators[j]
		if prev.Action == in.Action {
			continue
		}
		win := max(prev.Action, in.Action)
		p := s.Pos(i)
		p.File = s.Name
		found = append(found, Problem{Position: p, Severity: SeverityWarning, Message: fmt.Sprintf(
			"%s %q is also listed at %s with action %s; the tie-break of CONTRACT §1 (Allowed > Warn > Block > Audit) applies %s",
			in.Type, in.Value, s.Pos(j).String(), prev.Action, win)})
	}
	s.Problems = append(s.Problems, found...)
}

// sortProblems orders problems by position so reports read top to bottom.
func (s *Set) sortProblems() {
	idx := func(p Position) int {
		if p.Index == nil {
			return -1
		}
		return *p.Index
	}
	sort.SliceStable(s.Problems, func(i, j int) bool {
		a, b := s.Problems[i].Position, s.Problems[j].Position
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if idx(a) != idx(b) {
			return idx(a) < idx(b)
		}
		return a.Column < b.Column
	})
}
