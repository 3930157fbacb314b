package indicators

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
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
// file:line:column.
func ParseCSV(name string, r io.Reader, o Options) (*Set, error) {
	s := &Set{Name: name}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.LazyQuotes = false
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file; an MDE CSV starts with the header IndicatorType,IndicatorValue,ExpirationTime,Action,...", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
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
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				s.errorf(Position{Line: pe.Line, Column: pe.Column}, "%v", pe.Err)
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					continue
				}
				// A quoting error leaves the reader mid-record; what follows
				// cannot be trusted to be aligned with the header.
				break
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		line, _ := cr.FieldPos(0)
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
			l, c := cr.FieldPos(i)
			return Position{Line: l, Column: c, Field: colName[key]}
		}
		f := rawFields{
			id: get(fID), typ: get(fType), value: get(fValue), action: get(fAction),
			expires: get(fExpires), title: get("title"), app: get("application"), appID: get("applicationId"),
		}
		vl, vc := 0, 0
		if i, ok := col[fValue]; ok && i < len(rec) {
			vl, vc = cr.FieldPos(i)
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

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
