package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/telemetry"
	"github.com/netward/netward/telemetry/flow"
)

// telemetryState is the agent's telemetry component state.
type telemetryState struct {
	pipe atomic.Pointer[telemetry.Pipeline]
	// names resolves remote addresses to the name the connection was made
	// for: the DNS proxy's IP→name map, set by New (initDNS).
	names telemetry.NameLookup
	flows atomic.Pointer[flow.Conntrack]
	// conns names connections by what inspection read from them, for the
	// flow records (set by New).
	conns *connNames
	// noFlows keeps the conntrack source off (tests: it would watch and
	// change the root namespace).
	noFlows bool
	// sink is the pipeline's index in Agent.packed: records the pipeline
	// drains itself (Config.Drain) go to the other sinks only.
	sink int
}

// telemetryStatus is the telemetry part of `netward status`: spool depth,
// last upload, quarantined chunks, every counted loss and the conntrack
// source's counters; zero before start.
func (a *Agent) telemetryStatus() control.TelemetryStatus {
	var s control.TelemetryStatus
	if p := a.tel.pipe.Load(); p != nil {
		ps := p.Status()
		s = control.TelemetryStatus{
			DeviceID: ps.DeviceID, Endpoint: ps.Endpoint,
			SpoolChunks: ps.SpoolChunks, SpoolBytes: ps.SpoolBytes, SpoolRecords: ps.SpoolRecords,
			OpenRecords: ps.OpenRecords, QueuedRecords: ps.QueuedRecords, UploadedChunks: ps.UploadedChunks,
			LastUpload: ps.LastUpload, LastError: ps.LastError,
			Quarantined: ps.Quarantined, QuarantinedIDs: ps.QuarantinedIDs,
			DroppedQueueFull: ps.DroppedQueueFull, DroppedSpoolRecords: ps.DroppedSpoolRecords, DroppedSpoolChunks: ps.DroppedSpoolChunks,
		}
	}
	if f := a.tel.flows.Load(); f != nil {
		fs := f.Stats()
		s.Flows = &control.FlowStats{Events: fs.Events, Overruns: fs.Overruns, Dumps: fs.Dumps, Records: fs.Records,
			Flows: fs.Flows, FlowsDropped: fs.FlowsLimit, Unnamed: fs.Unnamed, Own: fs.Own,
			Refused: fs.Refused, Undecoded: fs.Undecoded}
		if fs.Records > 0 {
			s.Flows.UnnamedShare = float64(fs.Unnamed) / float64(fs.Records)
		}
	}
	s.DNSAnswers = a.answersStatus()
	return s
}

// startTelemetry builds the record pipeline (journal → chunks → spool →
// uploader) from cfg.Telemetry, registers it as a record sink and, on Linux,
// starts the conntrack flow source.
func (a *Agent) startTelemetry(ctx context.Context, g *errgroup.Group) error {
	tc := a.cfg.Telemetry
	privacy, err := telemetry.ParsePrivacy(tc.Privacy)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.cfg.DataDir, "telemetry")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w (check dataDir)", dir, err)
	}
	// Run resolved "auto" (config.ResolveIdentity): the records, the
	// chunks' URLs and the console all see one device id.
	deviceID, deviceName := a.cfg.Device.ID, a.cfg.Device.Name
	var token string
	if tc.Endpoint != "" && a.cfg.Indicators.TokenFile != "" {
		b, err := os.ReadFile(a.cfg.Indicators.TokenFile)
		if err != nil {
			return fmt.Errorf("telemetry upload token: %w (set indicators.tokenFile to the device token)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	var salt []byte
	if privacy == telemetry.PrivacyPseudonymous {
		if salt, err = config.ReadOrCreateSecret(filepath.Join(dir, "tenant-salt"), 32); err != nil {
			return err
		}
	}
	client, err := consoleClient(a.cfg.Indicators.CAFile, upstreamControl(a.cfg.DNS.Capture))
	if err != nil {
		return err
	}
	p, err := telemetry.New(telemetry.Config{
		Client:        client,
		Dir:           dir,
		DeviceID:      deviceID,
		DeviceName:    deviceName,
		Endpoint:      tc.Endpoint,
		Token:         token,
		ChunkBytes:    tc.ChunkBytes,
		ChunkRecords:  tc.ChunkRecords,
		ChunkInterval: time.Duration(tc.ChunkInterval),
		SpoolBytes:    tc.SpoolBytes,
		Privacy:       privacy,
		Salt:          salt,
		Drain:         a.answerDrainFunc(),
		Log:           a.log.With("component", "telemetry"),
		Now:           a.now,
	})
	if err != nil {
		return err
	}
	// Add never blocks: a full queue is counted and reported in a gap record.
	a.tel.sink = a.addPackedSink(p.AddPacked)
	a.tel.pipe.Store(p)
	if a.ans.on {
		a.ans.stopping = ctx.Done() // before the pipeline can drain
	}
	g.Go(func() error { return p.Run(ctx) })
	a.startAnswers(ctx, g)
	a.startMachine(ctx, g)
	if a.tel.noFlows {
		return nil
	}
	return a.startFlowSource(ctx, g)
}

// requeueTelemetry moves the quarantined chunks back into the spool
// (`netward telemetry requeue`).
func (a *Agent) requeueTelemetry() (int, error) {
	p := a.tel.pipe.Load()
	if p == nil {
		return 0, fmt.Errorf("telemetry is not running: %w", control.ErrNotSupported)
	}
	return p.Requeue()
}

// answerDrainFunc is the pipeline's Drain: the DNS answer window, when
// answers are recorded.
func (a *Agent) answerDrainFunc() func(add func(telemetry.Record)) {
	if !a.ans.on {
		return nil
	}
	return a.answerDrain
}

// consoleClient is the HTTP client for the console: TLS verified against the
// system roots, plus caFile (indicators.caFile) when the console uses a
// private CA.
//
// control marks the upload sockets as the agent's own (hostnet.AgentMark),
// like the DNS upstreams and the feed: captures and inspection exempt
// them and the flow records leave them out.
func consoleClient(caFile string, control func(network, address string, c syscall.RawConn) error) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if control != nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: control}
		tr.DialContext = d.DialContext
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("console CA: %w (check indicators.caFile)", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("console CA %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}
