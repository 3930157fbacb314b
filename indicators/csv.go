package indicators

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MDE CSV import columns (case-insensitive, any order; others are ignored).
var csvColumns = map[string]string{
	"indicatortype":  fType,
	"indicatorvalue": fValue,
	"expirationtime": fExpires,
	"action":         fAction,
	"title":          "title",
	"description":    "description",
	"application":    "application",
	"applicationid":  "applicationId",
	"id":             fID,
}

// ParseCSV parses a Microsoft Defender for Endpoint indicator import file:
// header IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,
// Description,... in any order and case. Every problem is reported as
// file:line:column. A row with bad quoting (a stray '"') is reported and
// skipped, and reading goes on at the next line: one typo costs one row,
// never the rows after it.
func ParseCSV(name string, r io.Reader, o Options) (*Set, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Set{Name: name}
	cr := newCSVReader(data)
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file; an MDE CSV starts with the header IndicatorType,IndicatorValue,ExpirationTime,Action,...", name)
		}
		return nil, fmt.Errorf("%s: the header row does not parse: %w", name, err)
	}
	header = slices.Clone(header)  // the reader reuses its record
	col := map[string]int{}        // field key → column index
	colName := map[string]string{} // field key → header spelling
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) // Excel writes a BOM
		key, ok := csvColumns[strings.ToLower(h)]
		if !ok {
			continue
		}
		if _, dup := col[key]; dup {
			line, c := cr.FieldPos(i)
			s.errorf(Position{Line: line, Column: c}, "column %q appears twice in the header", h)
			continue
		}
		col[key], colName[key] = i, h
	}
	var missing []string
	for _, need := range []struct{ key, name string }{{fType, "IndicatorType"}, {fValue, "IndicatorValue"}, {fAction, "Action"}} {
		if _, ok := col[need.key]; !ok {
			missing = append(missing, need.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s:1: header lacks column(s) %s; an MDE CSV header reads IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert", name, strings.Join(missing, ", "))
	}
	// The reader reads data[off:]; its line 1 is line base+1 of the file.
	off, base := 0, 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// Bad quoting leaves encoding/csv mid-record: it would read on
			// to the next quote, possibly the end of the file. The row is
			// reported where it starts and skipped; a new reader starts at
			// the next line (RFC 4180 §2: a field with a quote is quoted,
			// and the quote doubled).
			p := Position{Line: base + pe.StartLine}
			if pe.Line == pe.StartLine {
				p.Column = pe.Column
			}
			s.reject(p, "%v; the row is skipped (a field holding a quote must be quoted and the quote doubled, like \"a\"\"b\")", pe.Err)
			for range pe.StartLine {
				nl := bytes.IndexByte(data[off:], '\n')
				if nl < 0 {
					off = len(data)
					break
				}
				off += nl + 1
			}
			base += pe.StartLine
			cr = newCSVReader(data[off:])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		pos := func(i int) (int, int) {
			l, c := cr.FieldPos(i)
			return base + l, c
		}
		line, _ := pos(0)
		get := func(key string) string {
			if i, ok := col[key]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		at := func(key string) Position {
			i, ok := col[key]
			if !ok || i >= len(rec) {
				return Position{Line: line, Field: colName[key]}
			}
			l, c := pos(i)
			return Position{Line: l, Column: c, Field: colName[key]}
		}
		f := rawFields{
			id: get(fID), typ: get(fType), value: get(fValue), action: get(fAction),
			expires: get(fExpires), title: get("title"), app: get("application"), appID: get("applicationId"),
		}
		vl, vc := 0, 0
		if i, ok := col[fValue]; ok && i < len(rec) {
			vl, vc = pos(i)
		}
		if f.id == "" {
			f.id = fmt.Sprintf("%s:%d", baseName(name), line)
		}
		s.add(f, at, vl, vc, 0, o)
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
}

// newCSVReader reads MDE CSV from b: rows of any length (extra and missing
// columns are the row's problem, not the file's), strict quoting.
func newCSVReader(b []byte) *csv.Reader {
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.LazyQuotes = false
	return cr
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
