package server

import (
	"strings"
	"testing"
)

// The fleet-scale keys (docs/scale.md): defaults, and half-given object
// storage or Kafka settings named in the error.
func TestParseConfigScaleKeys(t *testing.T) {
	c, err := ParseConfig([]byte(`{}`), "f.json")
	if err != nil || c.Ingest.CompactAfterDays != 30 || c.Ingest.AggregateRetentionDays != 0 || c.Ingest.ObjectStore.Endpoint != "" {
		t.Fatalf("defaults: %+v %v", c.Ingest, err)
	}
	c, err = ParseConfig([]byte(`{"ingest":{"objectStore":{"endpoint":"https://s3.example","bucket":"b","accessKey":"k","secretKeyFile":"/etc/s3"},"kafka":{"brokers":["k:9092"],"topic":"t"}}}`), "f.json")
	if err != nil || c.Ingest.ObjectStore.Tenant != "default" {
		t.Fatalf("object store config: %+v %v", c.Ingest.ObjectStore, err)
	}
	for in, want := range map[string]string{
		`{"ingest":{"objectStore":{"endpoint":"https://s3.example"}}}`: `key "ingest.objectStore"`,
		`{"ingest":{"kafka":{"topic":"t"}}}`:                           `key "ingest.kafka"`,
		`{"ingest":{"compactAfterDays":0,"aggregateRetentionDays":7}}`: `key "ingest.aggregateRetentionDays"`,
	} {
		if _, err := ParseConfig([]byte(in), "f.json"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) = %v, want %s", in, err, want)
		}
	}
}
