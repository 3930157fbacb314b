package agent

import (
	"github.com/netward/netward/filter"
	"github.com/netward/netward/telemetry"
)

// recordSink receives every record the agent's interceptors produce (the
// decision counter registers one; tests do). A sink must not block; it is
// called on interceptor hot paths.
type recordSink func(telemetry.Record)

// packedSink receives every record packed (telemetry.Pack): the sinks that
// keep records in bulk — the telemetry chunker and the `netward events`
// ring — share one Pack per record instead of each copying the ~480-byte
// Record and packing it again (issue 21: every blocked answer is a
// record). It reports whether it took the record; it must not keep pk.
type packedSink func(pk *telemetry.Packed) bool

// addSink and addPackedSink register a sink. Components call them during
// start, before any record is emitted, so the slices need no lock.
func (a *Agent) addSink(s recordSink) { a.sinks = append(a.sinks, s) }
func (a *Agent) addPackedSink(s packedSink) int {
	a.packed = append(a.packed, s)
	return len(a.packed) - 1
}

// emit stamps r with the device identity and time and hands it to every sink.
func (a *Agent) emit(r telemetry.Record) {
	a.stamp(&r)
	pk := a.pack(&r)
	a.emitExcept(&r, &pk, -1)
}

// emitFlow is a flow source's emit: the record goes to the telemetry
// pipeline first and, if it refused it (a full queue), to no sink at all and
// false is returned, so the source keeps the bytes for its next report
// instead of losing them — and no other sink sees them twice.
func (a *Agent) emitFlow(r telemetry.Record) bool {
	a.stamp(&r)
	pk := a.pack(&r)
	skip := -1
	if a.tel.pipe.Load() != nil {
		if skip = a.tel.sink; !a.packed[skip](&pk) {
			return false
		}
	}
	a.emitExcept(&r, &pk, skip)
	return true
}

// pack is r packed for the packed sinks, or nothing when there are none.
func (a *Agent) pack(r *telemetry.Record) telemetry.Packed {
	if len(a.packed) == 0 {
		return telemetry.Packed{}
	}
	return telemetry.Pack(r)
}

// emitExcept hands the stamped *r (pk: it packed) to every sink but the
// packed sink at index skip (a record its sink took another way).
func (a *Agent) emitExcept(r *telemetry.Record, pk *telemetry.Packed, skip int) {
	for i, s := range a.packed {
		if i != skip {
			s(pk)
		}
	}
	for _, s := range a.sinks {
		s(*r)
	}
}

// actionTypeFor maps a decision to the CONTRACT §6 ActionType of its
// protection event, or "" when the decision produces no protection event.
func actionTypeFor(d filter.Decision) string {
	switch d.Verdict {
	case filter.VerdictBlock:
		return telemetry.NetworkProtectionBlocked
	case filter.VerdictWarn:
		return telemetry.NetworkProtectionWarned
	case filter.VerdictAudit:
		return telemetry.NetworkProtectionAudited
	case filter.VerdictBypassed:
		return telemetry.NetworkProtectionUserBypassEvent
	}
	return ""
}

// stamp fills in a record's time and device identity where unset.
func (a *Agent) stamp(r *telemetry.Record) {
	if r.Timestamp.IsZero() {
		r.Timestamp = a.now().UTC()
	}
	if r.DeviceId == "" {
		r.DeviceId = a.cfg.Device.ID
	}
	if r.DeviceName == "" {
		r.DeviceName = a.cfg.Device.Name
	}
}
