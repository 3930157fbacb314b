package loadtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

// Names are the host names records are drawn from: the shared blocklist
// (tracker and ad hosts, most of them unknown to the catalog: discovery
// candidates) and the app catalog's domains (matched to apps).
type Names struct {
	Blocklist, Apps []string
}

// LoadNames reads the blocklist (one name a line) and the catalog JSON
// (kind:app entries' domains). Either path may be empty.
func LoadNames(blocklist, catalog string) (Names, error) {
	var n Names
	if blocklist != "" {
		f, err := os.Open(blocklist)
		if err != nil {
			return n, fmt.Errorf("loadtest: blocklist: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); s != "" && !strings.HasPrefix(s, "#") {
				n.Blocklist = append(n.Blocklist, s)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return n, fmt.Errorf("loadtest: blocklist: %w", err)
		}
	}
	if catalog != "" {
		b, err := os.ReadFile(catalog)
		if err != nil {
			return n, fmt.Errorf("loadtest: catalog: %w", err)
		}
		var entries []struct {
			Kind    string   `json:"kind"`
			Domains []string `json:"domains"`
		}
		if err := json.Unmarshal(b, &entries); err != nil {
			return n, fmt.Errorf("loadtest: catalog %s: %w", catalog, err)
		}
		for _, e := range entries {
			if e.Kind == "app" {
				n.Apps = append(n.Apps, e.Domains...)
			}
		}
	}
	return n.orMadeUp(), nil
}

// orMadeUp is n, or made-up names when it has none: without the shared
// data the simulator still runs.
func (n Names) orMadeUp() Names {
	if len(n.Blocklist)+len(n.Apps) == 0 {
		for i := range 2000 {
			n.Apps = append(n.Apps, fmt.Sprintf("app%d.example", i))
		}
	}
	return n
}

// actions are the transaction ActionTypes with a realistic weight: most
// records are connections and DNS answers; a few blocks, warns, bypasses.
var actions = []struct {
	name   string
	weight int
}{
	{"ConnectionSuccess", 55}, {"DnsQueryResponse", 35}, {"ConnectionFailed", 4},
	{"NetworkProtectionBlocked", 3}, {"NetworkProtectionWarned", 1}, {"NetworkProtectionAudited", 1},
	{"NetworkProtectionUserBypassEvent", 1},
}

// Sent is what a chunk carries, to check against the aggregates.
type Sent struct {
	Records, Transactions, BytesSent, BytesReceived int64
}

// Add sums o into s.
func (s *Sent) Add(o Sent) {
	s.Records += o.Records
	s.Transactions += o.Transactions
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
}

// chunk is one pre-compressed upload body and what it holds.
type chunk struct {
	gz   []byte
	sent Sent
}

// makeChunk builds a chunk of n records for a device, dated within the
// hour before at, as an agent writes it: a DeviceInfo record first, then
// transactions by a few users to a device's working set of names (a real
// endpoint talks to a few hundred hosts an hour, not n distinct ones).
func makeChunk(r *rand.Rand, names Names, device string, n int, at time.Time) (chunk, error) {
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	names = names.orMadeUp()
	users := []string{"CORP\\" + device + "-user", "CORP\\svc-backup", "NT AUTHORITY\\SYSTEM"}
	working := make([]string, 0, 300)
	for range cap(working) {
		if len(names.Blocklist) > 0 && (len(names.Apps) == 0 || r.IntN(3) == 0) {
			working = append(working, names.Blocklist[r.IntN(len(names.Blocklist))])
		} else {
			working = append(working, names.Apps[r.IntN(len(names.Apps))])
		}
	}
	start := at.Add(-time.Hour).Truncate(time.Second)
	info := map[string]any{
		"Timestamp": start.Format(time.RFC3339Nano), "DeviceId": device, "DeviceName": device, "ActionType": "DeviceInfo",
		"OSPlatform": "linux", "OSVersion": "Debian GNU/Linux 12 (bookworm)", "AgentVersion": "loadtest",
		"IPAddresses":   []map[string]string{{"Interface": "eth0", "Address": "192.0.2." + fmt.Sprint(1+r.IntN(250)), "Mac": "02:00:00:00:00:01"}},
		"LoggedOnUsers": []string{users[0]},
	}
	if err := enc.Encode(info); err != nil {
		return chunk{}, err
	}
	var sent Sent
	sent.Records = 1
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	for i := 1; i < n; i++ {
		pick := r.IntN(total)
		action := actions[0].name
		for _, a := range actions {
			if pick < a.weight {
				action = a.name
				break
			}
			pick -= a.weight
		}
		// Zipf-like: a few names take most of the traffic.
		name := working[min(len(working)-1, int(r.ExpFloat64()*40))]
		rec := map[string]any{
			"Timestamp": start.Add(time.Duration(i) * time.Hour / time.Duration(n)).Format(time.RFC3339Nano),
			"DeviceId":  device, "DeviceName": device, "ActionType": action,
			"RemoteUrl": name, "RemoteIP": fmt.Sprintf("198.51.100.%d", 1+r.IntN(250)), "RemotePort": 443,
			"LocalIP": "192.0.2.10", "LocalPort": 30000 + r.IntN(30000), "Protocol": "Tcp", "Source": "sni",
			"InitiatingProcessFileName":    "firefox",
			"InitiatingProcessAccountName": users[r.IntN(len(users))],
		}
		if action == "DnsQueryResponse" {
			rec["Protocol"], rec["Source"], rec["RemotePort"] = "Dns", "dns", 53
		}
		var bs, br int64
		if action == "ConnectionSuccess" {
			bs, br = int64(200+r.IntN(5000)), int64(500+r.IntN(200000))
			rec["BytesSent"], rec["BytesReceived"] = bs, br
		}
		if err := enc.Encode(rec); err != nil {
			return chunk{}, err
		}
		sent.Records++
		sent.Transactions++
		sent.BytesSent += bs
		sent.BytesReceived += br
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return chunk{}, err
	}
	if err := zw.Close(); err != nil {
		return chunk{}, err
	}
	return chunk{gz: gz.Bytes(), sent: sent}, nil
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 22)) }
