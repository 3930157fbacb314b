package telemetry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

// burstRecords is the burst of issue 20 #3: 3,000 records with
// chunkRecords 5 (600 chunks).
const burstRecords = 3000

// TestCrashBurstChild is the agent side of TestKill9BurstSmallChunks: it
// adds a burst of records without waiting for them and watches its own
// status (queued + journaled + spooled must never fall below what it
// accepted) until it says nothing is queued any more; it prints that and
// how long it took, then idles until killed.
func TestCrashBurstChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestKill9BurstSmallChunks")
	}
	p, err := New(Config{Dir: os.Getenv("NETWARD_TEL_CHILD_DIR"), ChunkRecords: 5})
	if err != nil {
		t.Fatal(err)
	}
	go p.Run(context.Background())
	time.Sleep(50 * time.Millisecond) // recovery done
	start := time.Now()
	for i := range burstRecords {
		if !p.Add(rec(i)) {
			t.Fatalf("record %d refused", i)
		}
	}
	minSum := int64(burstRecords)
	for time.Since(start) < time.Minute {
		st := p.Status()
		minSum = min(minSum, int64(st.QueuedRecords)+st.OpenRecords+st.SpoolRecords)
		if st.QueuedRecords == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("monitor min %d queued-0-after-us %d\n", minSum, time.Since(start).Microseconds())
	select {} // killed -9 by the parent
}

// TestKill9BurstSmallChunks: with 5-record chunks, once status says a burst
// of 3,000 records is no longer queued, a kill -9 loses none of them, and
// the status never showed fewer records than accepted while they were being
// written (issue 20 #3: 2,870 of 3,000 lost with no gap record, and status
// showed 0 queued while the spool was still being written). The time the
// child took is logged (the figure in docs/telemetry.md), not asserted.
func TestKill9BurstSmallChunks(t *testing.T) {
	dir := t.TempDir()
	cmd, sc := runChild(t, "TestCrashBurstChild", "NETWARD_TEL_CHILD_DIR="+dir)
	line := ""
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "monitor ") {
			line = sc.Text()
			break
		}
	}
	kill9(t, cmd)
	if line == "" {
		t.Fatal("the child never reported")
	}
	f := strings.Fields(line)
	minSum, _ := strconv.Atoi(f[2])
	t.Logf("child: %s", line)
	if minSum < burstRecords {
		t.Errorf("status showed %d queued+journaled+spooled records while %d were accepted", minSum, burstRecords)
	}

	_, stop := startPipeline(t, Config{Dir: dir})
	stop()
	recs := readJournals(t, dir)
	var spooled []Record
	for _, c := range readSpool(t, dir) {
		spooled = append(spooled, c.records...)
	}
	recs = append(spooled, recs...)
	next := 0
	for _, r := range recs {
		if r.ActionType == ActionTelemetryGap {
			t.Errorf("gap record %+v: nothing was refused or evicted", r)
			continue
		}
		if r.IndicatorId != strconv.Itoa(next) {
			t.Fatalf("after kill -9: record %s where %d was expected (hole or duplicate)", r.IndicatorId, next)
		}
		next++
	}
	if next != burstRecords {
		t.Errorf("after kill -9 once nothing was queued: %d of %d records recovered", next, burstRecords)
	}
}

// TestRecoverJournalIndex: a journal file holding several chunks is
// recovered by its index: a chunk marked spooled is not spooled again, a
// complete chunk keeps its number and lines, the lines after the last
// complete chunk become one chunk under their own number, and a torn index
// line is ignored.
func TestRecoverJournalIndex(t *testing.T) {
	dir := t.TempDir()
	id := preparedChunkIDs(t, dir)
	var data []byte
	var ends []int
	for i := range 12 {
		r := rec(i)
		data = append(AppendJSON(data, &r), '\n')
		ends = append(ends, len(data))
	}
	// Chunk 7: lines 0-3 (spooled), chunk 8: lines 4-7, chunk 9: 8-11 (open).
	index := fmt.Sprintf("open 7 0\nchunk 7 %d 4\nspooled 7\nopen 8 %d\nchunk 8 %d 4\nopen 9 %d\nchunk 9 99", ends[3], ends[3], ends[7], ends[7])
	if err := os.WriteFile(filepath.Join(dir, "journal", id(7)+".ndjson"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal", id(7)+".idx"), []byte(index), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stop2 := startPipeline(t, Config{Dir: dir})
	stop2()
	chunks := readSpool(t, dir)
	if len(chunks) != 2 {
		t.Fatalf("recovered %d chunks, want 2 (8 and 9)", len(chunks))
	}
	for k, c := range chunks {
		want := id(uint64(8+k)) + ".4.ndjson.gz"
		if c.name != want || len(c.records) != 4 || c.records[0].IndicatorId != strconv.Itoa(4+4*k) {
			t.Errorf("chunk %d = %s with %d records from %s; want %s from record %d", k, c.name, len(c.records), c.records[0].IndicatorId, want, 4+4*k)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "journal", "*")); len(left) != 0 {
		t.Errorf("journal files left after recovery: %v", left)
	}
}

// preparedChunkIDs starts and stops a pipeline on dir (which creates its
// instance and directories) and returns the chunk id of a sequence number
// there: tests then write journals by hand, as a crash leaves them.
func preparedChunkIDs(t *testing.T, dir string) func(seq uint64) string {
	t.Helper()
	p, stop := startPipeline(t, Config{Dir: dir})
	flush(t, p)
	stop()
	inst, err := os.ReadFile(filepath.Join(dir, "instance"))
	if err != nil {
		t.Fatal(err)
	}
	return func(seq uint64) string { return formatChunkID(strings.TrimSpace(string(inst)), seq) }
}
