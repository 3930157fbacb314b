package config

import (
	"net"
	"net/url"
	"strings"
)

// TransportWarnings lists what the configuration sends or trusts in clear
// text: an http:// feed without indicators.publicKey (anyone on the path
// can hand the agent an indicator set, or "mode": "off"), and an http://
// telemetry endpoint (the device's bearer token and every record cross the
// network readable). The agent logs them at start and `netward status`
// shows them. Loopback URLs are not listed: nothing leaves the machine.
func TransportWarnings(c *Config) []string {
	var out []string
	if plainRemote(c.Indicators.Source) && strings.TrimSpace(c.Indicators.PublicKey) == "" {
		out = append(out, "indicators.source "+c.Indicators.Source+" is plain http:// and indicators.publicKey is not set: anyone on the network path can change the indicators and the mode; use https:// or set indicators.publicKey")
	}
	if plainRemote(c.Telemetry.Endpoint) {
		out = append(out, "telemetry.endpoint "+c.Telemetry.Endpoint+" is plain http://: the device token and every record cross the network in clear text; use https://")
	}
	return out
}

// plainRemote reports whether u is an http:// URL to a host other than the
// loopback.
func plainRemote(u string) bool {
	p, err := url.Parse(u)
	if err != nil || !strings.EqualFold(p.Scheme, "http") {
		return false
	}
	h := p.Hostname()
	if strings.EqualFold(h, "localhost") {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}
