package agent

import (
	"github.com/netward/netward/filter"
	"github.com/netward/netward/telemetry"
)

// recordSink receives every record the agent's interceptors produce: the
// telemetry chunker and the `netward events` ring buffer register one each.
// A sink must not block; it is called on interceptor hot paths.
type recordSink func(telemetry.Record)

// addSink registers s. Components call it during start, before any record is
// emitted, so the slice needs no lock.
func (a *Agent) addSink(s recordSink) { a.sinks = append(a.sinks, s) }

// emit stamps r with the device identity and time and hands it to every sink.
func (a *Agent) emit(r telemetry.Record) { a.emitExcept(&r, -1) }

// emitFlow is a flow source's emit: the record goes to the telemetry
// pipeline first and, if it refused it (a full queue), to no sink at all and
// false is returned, so the source keeps the bytes for its next report
// instead of losing them — and no other sink sees them twice.
func (a *Agent) emitFlow(r telemetry.Record) bool {
	p := a.tel.pipe.Load()
	if p == nil {
		a.emitExcept(&r, -1)
		return true
	}
	a.stamp(&r)
	if !p.Add(r) {
		return false
	}
	a.emitExcept(&r, a.tel.sink)
	return true
}

// emitExcept stamps *r and hands it to every sink but the one at index
// skip (a record its sink took another way).
func (a *Agent) emitExcept(r *telemetry.Record, skip int) {
	a.stamp(r)
	for i, s := range a.sinks {
		if i != skip {
			s(*r)
		}
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
