// Package config is the agent's configuration (CONTRACT §4): the schema and
// its defaults and validation, where it is read from — the file, the
// embedded default, the Windows Group Policy overlay — how its "auto"
// values resolve on this machine (the device identity), and whether root
// may trust the files it names (permissions). It imports nothing of netward
// but the strict JSON loader, so the CLI, the service installer and winsvc
// use it without the agent.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/netward/netward/internal/jsonconfig"
)

// Config is the agent configuration file (CONTRACT §4). Every default is
// applied by Defaults and documented in the README.
type Config struct {
	Version    int        `json:"version"`
	Device     Device     `json:"device"`
	DataDir    string     `json:"dataDir"`
	Mode       string     `json:"mode"`
	Indicators Indicators `json:"indicators"`
	DNS        DNS        `json:"dns"`
	SNI        SNI        `json:"sni"`
	Warn       Warn       `json:"warn"`
	Telemetry  Telemetry  `json:"telemetry"`
	Control    Control    `json:"control"`
	Metrics    Metrics    `json:"metrics"`

	// Path is the file the config was read from ("" for the embedded default).
	Path string `json:"-"`
}

type Device struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type Indicators struct {
	Source          string `json:"source"`
	TokenFile       string `json:"tokenFile"`
	PublicKey       string `json:"publicKey"`
	CAFile          string `json:"caFile"`
	LongPollSeconds int    `json:"longPollSeconds"`
	// MaxAgeHours: a feed set whose freshness proof (CONTRACT §5) is older
	// stays in force but is reported stale (default 72).
	MaxAgeHours int `json:"maxAgeHours"`
	// MaxDropPercent: a new set whose invalid entries number more than this
	// share of the indicators in force is refused (default 50; 0 refuses
	// any invalid entry; 100 allows any). nil until defaults are applied.
	MaxDropPercent *int `json:"maxDropPercent"`
	// AllowDefaultRoute accepts IpAddress indicators 0.0.0.0/0 and ::/0
	// (otherwise refused: they would apply to every connection).
	AllowDefaultRoute bool `json:"allowDefaultRoute"`
}

type DNS struct {
	Capture             bool     `json:"capture"`
	Listen              []string `json:"listen"`
	Upstreams           []string `json:"upstreams"`
	BlockAnswer         string   `json:"blockAnswer"`
	SyntheticTTLSeconds int      `json:"syntheticTtlSeconds"`
	StripECH            *bool    `json:"stripEch"`
	// UDPSockets is dnsproxy.Config.UDPSockets: 0 (default) one
	// SO_REUSEPORT socket per core on Linux, 1 a single socket.
	UDPSockets int `json:"udpSockets"`
}

type SNI struct {
	Enabled    bool   `json:"enabled"`
	QUIC       string `json:"quic"`
	FailClosed bool   `json:"failClosed"`
	// ProxyPorts are forward proxy ports (HTTP CONNECT) whose tunnels are
	// inspected, besides those of the host's proxy settings
	// (https_proxy/http_proxy/all_proxy; WinINet on Windows).
	ProxyPorts []int `json:"proxyPorts"`
}

type Warn struct {
	SinkAddress string `json:"sinkAddress"`
	LocalCA     bool   `json:"localCA"`
}

type Telemetry struct {
	Endpoint      string   `json:"endpoint"`
	ChunkBytes    int64    `json:"chunkBytes"`
	ChunkRecords  int      `json:"chunkRecords"`
	ChunkInterval Duration `json:"chunkInterval"`
	SpoolBytes    int64    `json:"spoolBytes"`
	Privacy       string   `json:"privacy"`
	// DNSAnswers records allowed DNS answers as DnsQueryResponse records
	// (default true): discovery where no flow source runs.
	DNSAnswers *bool `json:"dnsAnswers"`
	// DedupWindow folds repeated DNS answers (same name, process or
	// client, user) into one record with RepeatCount (default 60s; "0s"
	// records every answer).
	DedupWindow *Duration `json:"dedupWindow"`
	// MachineInterval is how often a DeviceInfo record is written besides
	// at start and on change (default 1h).
	MachineInterval Duration `json:"machineInterval"`
	// OwnTraffic keeps the agent's own connections (upstream DNS, feed,
	// uploads) in the flow records (default false: left out).
	OwnTraffic bool `json:"ownTraffic"`
}

type Control struct {
	Socket string `json:"socket"`
}

type Metrics struct {
	Listen string `json:"listen"`
}

// Duration is a time.Duration written as a Go duration string ("1h", "90s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"1h\" or \"90s\"", b)
	}
	*d = Duration(v)
	return nil
}

// Mode values (CONTRACT §1).
const (
	ModeOff   = "off"
	ModeAudit = "audit"
	ModeBlock = "block"
)

// SystemPath is where the service looks for its configuration.
func SystemPath() string {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "netward", "netward.json")
	}
	return "/etc/netward/netward.json"
}

//go:embed default.json
var defaultConfigJSON []byte

// DefaultJSON is the embedded default configuration `netward run` uses when
// there is no config file (CONTRACT §3).
func DefaultJSON() []byte { return bytes.Clone(defaultConfigJSON) }

// Default returns the embedded default with defaults applied and the data
// directory under the user's state directory.
func Default() (*Config, error) {
	c, err := Parse(defaultConfigJSON, "(embedded default)")
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	c.Path = ""
	if c.DataDir == "" {
		c.DataDir = userStateDir()
	}
	return c, nil
}

func userStateDir() string {
	if runtime.GOOS != "windows" {
		if d := os.Getenv("XDG_STATE_HOME"); d != "" {
			return filepath.Join(d, "netward")
		}
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, ".local", "state", "netward")
		}
	} else if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "netward")
	}
	return filepath.Join(os.TempDir(), "netward")
}

// keysDoc is where every key is documented.
const keysDoc = "the README's Configuration section"

// Load reads and validates a config file.
func Load(path string) (*Config, error) { return jsonconfig.Load[Config](path, keysDoc) }

// Parse decodes a config strictly: unknown keys and trailing data are errors
// naming the key and the file. Defaults are applied, then the result is
// validated.
func Parse(b []byte, name string) (*Config, error) {
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
	if c.Version == 0 {
		c.Version = 1
	}
	if c.Device.ID == "" {
		c.Device.ID = "auto"
	}
	if c.Device.Name == "" {
		c.Device.Name = "auto"
	}
	if c.DataDir == "" && c.Path != "(embedded default)" {
		if runtime.GOOS == "windows" {
			c.DataDir = filepath.Join(filepath.Dir(SystemPath()), "data")
		} else {
			c.DataDir = "/var/lib/netward"
		}
	}
	if c.Mode == "" {
		c.Mode = ModeBlock
	}
	if c.Indicators.LongPollSeconds == 0 {
		c.Indicators.LongPollSeconds = 60
	}
	if c.Indicators.MaxAgeHours == 0 {
		c.Indicators.MaxAgeHours = 72
	}
	if c.Indicators.MaxDropPercent == nil {
		d := 50
		c.Indicators.MaxDropPercent = &d
	}
	if len(c.DNS.Listen) == 0 {
		if c.DNS.Capture {
			c.DNS.Listen = []string{"127.0.0.153:53", "[::1]:53"}
		} else {
			c.DNS.Listen = []string{"127.0.0.1:15353"}
		}
	}
	if c.DNS.BlockAnswer == "" {
		c.DNS.BlockAnswer = "nxdomain"
	}
	if c.DNS.SyntheticTTLSeconds == 0 {
		c.DNS.SyntheticTTLSeconds = 10
	}
	if c.DNS.StripECH == nil {
		t := true
		c.DNS.StripECH = &t
	}
	if c.SNI.QUIC == "" {
		c.SNI.QUIC = "inspect"
	}
	if c.Warn.SinkAddress == "" {
		c.Warn.SinkAddress = "127.0.0.154"
	}
	if c.Telemetry.ChunkBytes == 0 {
		c.Telemetry.ChunkBytes = 4 << 20
	}
	if c.Telemetry.ChunkRecords == 0 {
		c.Telemetry.ChunkRecords = 4000
	}
	if c.Telemetry.ChunkInterval == 0 {
		c.Telemetry.ChunkInterval = Duration(time.Hour)
	}
	if c.Telemetry.SpoolBytes == 0 {
		c.Telemetry.SpoolBytes = 256 << 20
	}
	if c.Telemetry.Privacy == "" {
		c.Telemetry.Privacy = "full"
	}
	if c.Telemetry.DNSAnswers == nil {
		t := true
		c.Telemetry.DNSAnswers = &t
	}
	if c.Telemetry.DedupWindow == nil {
		w := Duration(time.Minute)
		c.Telemetry.DedupWindow = &w
	}
	if c.Telemetry.MachineInterval == 0 {
		c.Telemetry.MachineInterval = Duration(time.Hour)
	}
	if c.Control.Socket == "" {
		if runtime.GOOS == "windows" {
			c.Control.Socket = `\\.\pipe\netward`
		} else {
			c.Control.Socket = "/run/netward/netward.sock"
		}
	}
}

// Validate checks values that the JSON decoder cannot.
func (c *Config) Validate() error {
	var errs []error
	if c.Version != 1 {
		errs = append(errs, fmt.Errorf("key \"version\": %d is not supported; this netward reads version 1", c.Version))
	}
	switch c.Mode {
	case ModeOff, ModeAudit, ModeBlock:
	default:
		errs = append(errs, fmt.Errorf("key \"mode\": %q is not one of off, audit, block", c.Mode))
	}
	switch c.DNS.BlockAnswer {
	case "nxdomain", "nullip", "sink":
	default:
		errs = append(errs, fmt.Errorf("key \"dns.blockAnswer\": %q is not one of nxdomain, nullip, sink", c.DNS.BlockAnswer))
	}
	if c.DNS.UDPSockets < 0 || c.DNS.UDPSockets > 256 {
		errs = append(errs, fmt.Errorf("key \"dns.udpSockets\": %d is outside 0..256 (0: one per core)", c.DNS.UDPSockets))
	}
	if c.DNS.SyntheticTTLSeconds < 0 || c.DNS.SyntheticTTLSeconds > 86400 {
		errs = append(errs, fmt.Errorf("key \"dns.syntheticTtlSeconds\": %d is outside 0..86400", c.DNS.SyntheticTTLSeconds))
	}
	switch c.SNI.QUIC {
	case "inspect", "block", "allow":
	default:
		errs = append(errs, fmt.Errorf("key \"sni.quic\": %q is not one of inspect, block, allow", c.SNI.QUIC))
	}
	switch c.Telemetry.Privacy {
	case "full", "noProcess", "pseudonymous":
	default:
		errs = append(errs, fmt.Errorf("key \"telemetry.privacy\": %q is not one of full, noProcess, pseudonymous", c.Telemetry.Privacy))
	}
	if c.Indicators.LongPollSeconds < 0 || c.Indicators.LongPollSeconds > 3600 {
		errs = append(errs, fmt.Errorf("key \"indicators.longPollSeconds\": %d is outside 0..3600", c.Indicators.LongPollSeconds))
	}
	if c.Indicators.MaxAgeHours < 0 || c.Indicators.MaxAgeHours > 24*366 {
		errs = append(errs, fmt.Errorf("key \"indicators.maxAgeHours\": %d is outside 1..8784 (one year)", c.Indicators.MaxAgeHours))
	}
	if d := c.Indicators.MaxDropPercent; d != nil && (*d < 0 || *d > 100) {
		errs = append(errs, fmt.Errorf("key \"indicators.maxDropPercent\": %d is outside 0..100", *d))
	}
	if w := c.Telemetry.DedupWindow; w != nil && (*w < 0 || time.Duration(*w) > time.Hour) {
		errs = append(errs, fmt.Errorf("key \"telemetry.dedupWindow\": %v is outside 0s..1h", time.Duration(*w)))
	}
	if c.Telemetry.MachineInterval < 0 || (c.Telemetry.MachineInterval > 0 && time.Duration(c.Telemetry.MachineInterval) < time.Second) {
		errs = append(errs, errors.New("key \"telemetry.machineInterval\": must be at least 1s"))
	}
	for _, p := range c.SNI.ProxyPorts {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("key \"sni.proxyPorts\": %d is not a port (1..65535)", p))
		}
	}
	if c.Telemetry.ChunkBytes < 0 || c.Telemetry.ChunkRecords < 0 || c.Telemetry.SpoolBytes < 0 || c.Telemetry.ChunkInterval < 0 {
		errs = append(errs, errors.New("telemetry sizes and intervals must not be negative"))
	}
	return errors.Join(errs...)
}
