package agent

import (
	"reflect"
	"testing"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/telemetry"
)

// A flow record the telemetry queue refuses reaches no sink and is reported
// as refused, so the flow source keeps its bytes for the next dump (and no
// other sink sees them twice); one it takes reaches every sink, stamped.
func TestEmitFlowAllOrNothing(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Device.ID = "dev-f"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := telemetry.New(telemetry.Config{Dir: t.TempDir(), QueueRecords: 2})
	if err != nil {
		t.Fatal(err)
	}
	var other []telemetry.Record
	a.addSink(func(r telemetry.Record) { other = append(other, r) })
	var ring []telemetry.Record
	a.addPackedSink(func(pk *telemetry.Packed) bool { ring = append(ring, pk.Record()); return true })
	a.tel.sink = a.addPackedSink(p.AddPacked)
	a.tel.pipe.Store(p)
	var taken int
	for range 3 {
		if a.emitFlow(telemetry.Record{ActionType: telemetry.ConnectionSuccess}) {
			taken++
		}
	}
	if taken != 2 || len(other) != 2 || len(ring) != 2 {
		t.Fatalf("%d of 3 taken into a queue of 2, %d and %d seen by the other sinks; want 2, 2 and 2", taken, len(other), len(ring))
	}
	if !reflect.DeepEqual(ring[1], other[1]) {
		t.Errorf("the packed sink saw %+v, the record sink %+v", ring[1], other[1])
	}
	if other[0].DeviceId != "dev-f" || other[0].Timestamp.IsZero() {
		t.Errorf("record not stamped: %+v", other[0])
	}
	if st := p.Status(); st.QueuedRecords != 2 || st.DroppedQueueFull != 1 {
		t.Errorf("pipeline %+v; want 2 queued (each once), 1 refused", st)
	}
}
