package agent

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// The agent's sink reaches a real collector: records emitted by an
// interceptor are chunked, uploaded and rolled up, and status shows it.
func TestAgentTelemetryUploads(t *testing.T) {
	coll, err := telemetry.NewCollector(telemetry.CollectorConfig{Dir: t.TempDir(), Authorize: telemetry.TokenAuthorizer("tok")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(coll)
	defer srv.Close()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Device.ID = "dev-7"
	cfg.Device.Name = "laptop-7"
	cfg.Indicators.TokenFile = filepath.Join(cfg.DataDir, "token")
	os.WriteFile(cfg.Indicators.TokenFile, []byte("tok\n"), 0o600)
	cfg.Telemetry.Endpoint = srv.URL
	cfg.Telemetry.ChunkRecords = 3
	cfg.DNS.Listen = []string{"127.0.0.1:0"}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.tel.noFlows = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e2e.WaitFor(t, "telemetry to start", 30*time.Second, func() bool { return a.telemetryStatus().Endpoint != "" })
	// The machine record written at start and 8 transactions: 3 chunks.
	for range 8 {
		a.emit(telemetry.Record{ActionType: telemetry.ConnectionSuccess, RemoteUrl: "example.com", BytesSent: 10, BytesReceived: 20})
	}
	// The uploads go to a real HTTP collector: poll the status.
	e2e.WaitFor(t, "three chunks uploaded", 30*time.Second, func() bool { return a.telemetryStatus().UploadedChunks >= 3 })
	ru, err := coll.Rollup("dev-7")
	if err != nil {
		t.Fatal(err)
	}
	if ru.Transactions != 8 || ru.TotalBytes != 240 || ru.DeviceName != "laptop-7" || ru.Info == nil || ru.Info.OSPlatform == "" {
		t.Errorf("rollup = %+v, want 8 transactions, 240 bytes, device laptop-7 and its machine record", ru)
	}
	if s := a.telemetryStatus(); s.LastUpload.IsZero() {
		t.Errorf("status = %+v, want a last upload time", s)
	}
}
