package indicators

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Document is the feed body of CONTRACT §5, for producing a feed.
type Document struct {
	Version string `json:"version"`
	// Sequence only grows from one published set to the next (CONTRACT §5
	// rollback rules); 0 means an unsequenced feed. It is not part of the
	// version: the version is the content digest.
	Sequence uint64 `json:"sequence,omitempty"`
	// GeneratedAt is when the sequence was made (not when it is served), so
	// every replica signs the same bytes for one sequence.
	GeneratedAt time.Time      `json:"generatedAt"`
	Settings    Settings       `json:"settings"`
	Indicators  []DocIndicator `json:"indicators"`
}

// DocIndicator is one indicator in MDE field names.
type DocIndicator struct {
	ID                  string     `json:"id"`
	IndicatorValue      string     `json:"indicatorValue"`
	IndicatorType       string     `json:"indicatorType"`
	Action              string     `json:"action"`
	Title               string     `json:"title,omitempty"`
	Application         string     `json:"application,omitempty"`
	ApplicationID       string     `json:"applicationId,omitempty"`
	ExpirationTime      *time.Time `json:"expirationTime"`
	BypassDurationHours *float64   `json:"bypassDurationHours"`
}

// AppendTo adds the set's indicators to d.
func (s *Set) AppendTo(d *Document) {
	for i := range s.Indicators {
		in := &s.Indicators[i]
		di := DocIndicator{
			ID: in.ID, IndicatorValue: in.Value, IndicatorType: in.Type.String(), Action: in.Action.String(),
			Title: in.Title, Application: in.Application, ApplicationID: in.ApplicationID,
		}
		if !in.Expires.IsZero() {
			e := in.Expires
			di.ExpirationTime = &e
		}
		if in.BypassDuration > 0 {
			h := in.BypassDuration.Hours()
			di.BypassDurationHours = &h
		}
		d.Indicators = append(d.Indicators, di)
	}
}

// Marshal encodes d. When d.Version is empty, the version becomes a digest
// of the settings and indicators, so the same content always has the same
// version (and ETag) and any change gets a new one.
func (d Document) Marshal() ([]byte, error) {
	if d.Indicators == nil {
		d.Indicators = []DocIndicator{}
	}
	if d.Version == "" {
		v, err := d.ContentVersion()
		if err != nil {
			return nil, err
		}
		d.Version = v
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode feed document: %w", err)
	}
	return b, nil
}

// ContentVersion is the digest of the settings and indicators that Marshal
// uses as the version when d has none: the same content always has the same
// version, whatever its sequence or generatedAt.
func (d Document) ContentVersion() (string, error) {
	if d.Indicators == nil {
		d.Indicators = []DocIndicator{}
	}
	content, err := json.Marshal(struct {
		S Settings
		I []DocIndicator
	}{d.Settings, d.Indicators})
	if err != nil {
		return "", fmt.Errorf("encode feed document: %w", err)
	}
	sum := sha256.Sum256(content)
	return "sha256-" + hex.EncodeToString(sum[:8]), nil
}
