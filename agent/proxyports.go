package agent

import (
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Forward proxies the host is set to use: their ports are inspected for
// the CONNECT target and the tunnel's ClientHello (filter/inspect
// ProxyPorts), so a proxy does not hide the names from enforcement and
// discovery. Sources: sni.proxyPorts, the agent's environment
// (https_proxy, http_proxy, all_proxy, either case), and the system's
// settings (systemProxySettings: /etc/environment on Linux, the Internet
// Settings ProxyServer values on Windows).

// proxyEnv are the variables curl, Go, Python and most tools read.
var proxyEnv = []string{"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}

// proxyPorts is the sorted set of forward proxy ports to inspect.
func (a *Agent) proxyPorts() []uint16 {
	var ports []uint16
	for _, p := range a.cfg.SNI.ProxyPorts {
		ports = append(ports, uint16(p))
	}
	for _, k := range proxyEnv {
		if p, ok := proxyURLPort(os.Getenv(k)); ok {
			ports = append(ports, p)
		}
	}
	for _, s := range systemProxySettings() {
		ports = append(ports, proxyServerPorts(s)...)
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// proxyURLPort reads the port of an HTTP proxy setting ("http://proxy:3128",
// "proxy.corp:8080", "https://u:p@proxy:443/"). SOCKS proxies carry no
// CONNECT and are skipped, as is a setting without an explicit port
// (tools disagree on its default).
func proxyURLPort(s string) (uint16, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return 0, false
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || p == 0 {
		return 0, false
	}
	return uint16(p), true
}

// proxyServerPorts reads a Windows ProxyServer value: "host:port", or
// "http=host:port;https=host:port;socks=host:port" (socks skipped).
func proxyServerPorts(v string) []uint16 {
	var out []uint16
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ' ' }) {
		if scheme, rest, ok := strings.Cut(part, "="); ok {
			if strings.EqualFold(scheme, "socks") {
				continue
			}
			part = rest
		}
		if p, ok := proxyURLPort(part); ok {
			out = append(out, p)
		}
	}
	return out
}

// environmentProxies reads the proxy variables of an /etc/environment
// style file (KEY=value lines, optional quotes, # comments).
func environmentProxies(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || !slices.Contains(proxyEnv, strings.TrimSpace(k)) {
			continue
		}
		out = append(out, strings.Trim(strings.TrimSpace(v), `"'`))
	}
	return out
}
