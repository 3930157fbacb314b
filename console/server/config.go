package server

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/netward/netward/internal/jsonconfig"
)

// Config is the console's configuration file (docs/console.md lists every
// key with its default). Relative paths are relative to the working
// directory, as a user typing them expects.
type Config struct {
	Version int    `json:"version"`
	DataDir string `json:"dataDir"`
	// Listen is the HTTPS address for agents, the API and the UI.
	Listen string       `json:"listen"`
	Store  StoreConfig  `json:"store"`
	TLS    TLSConfig    `json:"tls"`
	Feed   FeedConfig   `json:"feed"`
	Ingest IngestConfig `json:"ingest"`
	Auth   AuthConfig   `json:"auth"`
	Log    LogConfig    `json:"log"`

	// Path is the file read ("" for the embedded default).
	Path string `json:"-"`
}

// StoreConfig selects the database.
type StoreConfig struct {
	// DSN: "postgres://user@host/db" for PostgreSQL, "sqlite:PATH" for
	// SQLite; empty: SQLite at <dataDir>/console.db.
	DSN string `json:"dsn"`
	// MaxConns bounds the console's connections to PostgreSQL (0: 16).
	MaxConns int `json:"maxConns"`
}

// TLSConfig: a certificate pair, or (both empty) a self-signed certificate
// made at first start under <dataDir>/tls for Hosts.
type TLSConfig struct {
	CertFile string   `json:"certFile"`
	KeyFile  string   `json:"keyFile"`
	Hosts    []string `json:"hosts"`
}

// FeedConfig tunes the indicator feed.
type FeedConfig struct {
	MaxWaitSeconds   int `json:"maxWaitSeconds"`
	RefreshSeconds   int `json:"refreshSeconds"`
	CheckinSeconds   int `json:"checkinSeconds"`
	FreshnessMinutes int `json:"freshnessMinutes"`
	// MaxPollsPerDevice and MaxHeldPolls cap held long polls (per device
	// token; overall).
	MaxPollsPerDevice int `json:"maxPollsPerDevice"`
	MaxHeldPolls      int `json:"maxHeldPolls"`
}

// IngestConfig tunes telemetry ingest.
type IngestConfig struct {
	RetentionDays        int   `json:"retentionDays"`
	MaxChunkBytes        int64 `json:"maxChunkBytes"`
	MaxDecompressedBytes int64 `json:"maxDecompressedBytes"`
	MemoryBudgetBytes    int64 `json:"memoryBudgetBytes"`
	RetryAfterSeconds    int   `json:"retryAfterSeconds"`
	// CompactAfterDays folds hourly aggregates into days once this old;
	// AggregateRetentionDays deletes daily ones past it (0: keep).
	CompactAfterDays       int `json:"compactAfterDays"`
	AggregateRetentionDays int `json:"aggregateRetentionDays"`
	// ObjectStore, when its endpoint is set, keeps raw chunks in
	// S3-compatible storage instead of <dataDir>/chunks (replicas).
	ObjectStore ObjectStoreConfig `json:"objectStore"`
	// Kafka, when brokers are set, receives every ingested record.
	Kafka KafkaConfig `json:"kafka"`
}

// ObjectStoreConfig is an S3-compatible bucket for raw chunks, at
// <tenant>/<date>/<device>/<chunk>.ndjson.gz.
type ObjectStoreConfig struct {
	Endpoint      string `json:"endpoint"`
	Bucket        string `json:"bucket"`
	Region        string `json:"region"`
	AccessKey     string `json:"accessKey"`
	SecretKeyFile string `json:"secretKeyFile"`
	Tenant        string `json:"tenant"`
}

// KafkaConfig is where ingested records are published.
type KafkaConfig struct {
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
}

// AuthConfig tunes accounts and sessions.
type AuthConfig struct {
	SessionIdleHours int `json:"sessionIdleHours"`
	SessionMaxDays   int `json:"sessionMaxDays"`
	LoginBurst       int `json:"loginBurst"`
}

// LogConfig sets the log level: debug, info, warn, error.
type LogConfig struct {
	Level string `json:"level"`
}

//go:embed default.json
var defaultConfigJSON []byte

// DefaultConfigJSON is the embedded default configuration.
func DefaultConfigJSON() []byte { return bytes.Clone(defaultConfigJSON) }

// DefaultConfig is the configuration `netward-console serve` runs without
// --config: data under ./netward-console-data, HTTPS on 127.0.0.1:8443.
func DefaultConfig() (*Config, error) {
	c, err := ParseConfig(defaultConfigJSON, "(embedded default)")
	if err != nil {
		return nil, err
	}
	c.Path = ""
	return c, nil
}

// keysDoc is where every key is documented.
const keysDoc = "docs/console.md"

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) { return jsonconfig.Load[Config](path, keysDoc) }

// ParseConfig decodes strictly: unknown keys and trailing data are errors
// that name the key and the file. Defaults are applied, then validated.
func ParseConfig(b []byte, name string) (*Config, error) {
	return jsonconfig.Parse[Config](b, name, keysDoc)
}

// Finish records the file name, applies the defaults and validates
// (jsonconfig.Finisher).
func (c *Config) Finish(name string) error {
	c.Path = name
	c.applyDefaults()
	return c.Validate()
}

func (c *Config) applyDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Version, 1)
	if c.DataDir == "" {
		c.DataDir = "netward-console-data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8443"
	}
	if c.Store.DSN == "" {
		c.Store.DSN = "sqlite:" + filepath.Join(c.DataDir, "console.db")
	}
	if len(c.TLS.Hosts) == 0 {
		c.TLS.Hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	def(&c.Feed.MaxWaitSeconds, 300)
	def(&c.Feed.RefreshSeconds, 2)
	def(&c.Feed.CheckinSeconds, 1)
	def(&c.Feed.FreshnessMinutes, 60)
	def(&c.Feed.MaxPollsPerDevice, 2)
	def(&c.Feed.MaxHeldPolls, 20000)
	def(&c.Ingest.RetentionDays, 90)
	def64(&c.Ingest.MaxChunkBytes, 8<<20)
	def64(&c.Ingest.MaxDecompressedBytes, 64<<20)
	def64(&c.Ingest.MemoryBudgetBytes, 64<<20)
	def(&c.Ingest.RetryAfterSeconds, 30)
	def(&c.Ingest.CompactAfterDays, 30)
	if c.Ingest.ObjectStore.Endpoint != "" && c.Ingest.ObjectStore.Tenant == "" {
		c.Ingest.ObjectStore.Tenant = "default"
	}
	def(&c.Auth.SessionIdleHours, 12)
	def(&c.Auth.SessionMaxDays, 7)
	def(&c.Auth.LoginBurst, 5)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
}

// Validate reports every bad key at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("key %q: "+format, append([]any{key}, args...)...))
	}
	if c.Version != 1 {
		bad("version", "%d is not supported; this netward-console reads version 1", c.Version)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port (like 127.0.0.1:8443 or :443)", c.Listen)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.certFile", "give both tls.certFile and tls.keyFile, or neither (a self-signed certificate is made)")
	}
	rng := func(key string, v, lo, hi int64) {
		if v < lo || v > hi {
			bad(key, "%d is outside %d..%d", v, lo, hi)
		}
	}
	rng("feed.maxWaitSeconds", int64(c.Feed.MaxWaitSeconds), 1, 3600)
	rng("feed.refreshSeconds", int64(c.Feed.RefreshSeconds), 1, 3600)
	rng("feed.checkinSeconds", int64(c.Feed.CheckinSeconds), 1, 3600)
	rng("feed.freshnessMinutes", int64(c.Feed.FreshnessMinutes), 1, 60)
	rng("feed.maxPollsPerDevice", int64(c.Feed.MaxPollsPerDevice), 1, 16)
	rng("feed.maxHeldPolls", int64(c.Feed.MaxHeldPolls), 1, 1000000)
	rng("ingest.retentionDays", int64(c.Ingest.RetentionDays), 1, 36500)
	rng("store.maxConns", int64(c.Store.MaxConns), 0, 1000) // 0: the store's default
	rng("ingest.maxChunkBytes", c.Ingest.MaxChunkBytes, 1<<10, 1<<30)
	rng("ingest.maxDecompressedBytes", c.Ingest.MaxDecompressedBytes, 1<<10, 4<<30)
	rng("ingest.memoryBudgetBytes", c.Ingest.MemoryBudgetBytes, 1<<20, 64<<30)
	rng("ingest.retryAfterSeconds", int64(c.Ingest.RetryAfterSeconds), 1, 3600)
	rng("ingest.compactAfterDays", int64(c.Ingest.CompactAfterDays), 1, 3650)
	rng("ingest.aggregateRetentionDays", int64(c.Ingest.AggregateRetentionDays), 0, 36500)
	if c.Ingest.AggregateRetentionDays != 0 && c.Ingest.AggregateRetentionDays < c.Ingest.CompactAfterDays {
		bad("ingest.aggregateRetentionDays", "%d is shorter than ingest.compactAfterDays (%d)", c.Ingest.AggregateRetentionDays, c.Ingest.CompactAfterDays)
	}
	if o := c.Ingest.ObjectStore; o.Endpoint != "" && (o.Bucket == "" || o.AccessKey == "" || o.SecretKeyFile == "") {
		bad("ingest.objectStore", "give bucket, accessKey and secretKeyFile with the endpoint")
	}
	if k := c.Ingest.Kafka; (len(k.Brokers) == 0) != (k.Topic == "") {
		bad("ingest.kafka", "give both brokers and topic, or neither")
	}
	rng("auth.sessionIdleHours", int64(c.Auth.SessionIdleHours), 1, 24*365)
	rng("auth.sessionMaxDays", int64(c.Auth.SessionMaxDays), 1, 365)
	rng("auth.loginBurst", int64(c.Auth.LoginBurst), 1, 1000)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	return errors.Join(errs...)
}
