package agent

import (
	"github.com/netward/netward/filter"
	"github.com/netward/netward/telemetry"
)

// RecordSink receives every record the agent's interceptors produce: the
// telemetry chunker and the `netward events` ring buffer register one each.
// A sink must not block; it is called on interceptor hot paths.
type RecordSink func(telemetry.Record)

// addSink registers s. Components call it during start, before any record is
// emitted, so the slice needs no lock.
func (a *Agent) addSink(s RecordSink) { a.sinks = append(a.sinks, s) }

// Emit stamps r with the device identity and time and hands it to every sink.
func (a *Agent) Emit(r telemetry.Record) {
	if r.Timestamp.IsZero() {
		r.Timestamp = a.now().UTC()
	}
	if r.DeviceId == "" {
		r.DeviceId = a.cfg.Device.ID
	}
	if r.DeviceName == "" {
		r.DeviceName = a.cfg.Device.Name
	}
	for _, s := range a.sinks {
		s(r)
	}
}

// ActionTypeFor maps a decision to the CONTRACT §6 ActionType of its
// protection event, or "" when the decision produces no protection event.
func ActionTypeFor(d filter.Decision) string {
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
