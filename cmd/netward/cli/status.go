package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netward/netward/agent/control"
)

func statusCommand() *command {
	c := &command{
		name:    "status",
		usage:   "netward status [--json] [--config FILE | --socket PATH]",
		short:   "Show the agent's version, mode, indicator set, interception, bypasses, telemetry and last errors.",
		example: "netward status\nnetward status --json | jq .indicators",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cf := addClientFlags(fs)
		cl, err := parseNoArgsClient(env, fs, cf, args)
		if err != nil {
			return err
		}
		st, err := cl.Status(ctx)
		if err != nil {
			return apiErr(err)
		}
		if *cf.json {
			return writeJSON(env.Stdout, st)
		}
		printStatus(env.Stdout, st)
		return nil
	}
	return c
}

func printStatus(out io.Writer, st control.Status) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	ver := st.Version
	if st.Commit != "" {
		ver += " (" + st.Commit + ")"
	}
	fmt.Fprintf(w, "agent\tnetward %s, up %s\n", ver, roundDur(time.Duration(st.UptimeSeconds)*time.Second))
	mode := st.Mode
	if st.ModeOverride != "" {
		// CONTRACT §3: the local override beside the mode the source asks for.
		mode += fmt.Sprintf(" (local override; the source's mode is %s; 'netward mode --clear' returns to it)", st.SourceMode)
	}
	if st.ConvertWarnToBlock {
		mode += " (warnings are turned into blocks)"
	}
	fmt.Fprintf(w, "mode\t%s\n", mode)
	fmt.Fprintf(w, "config\t%s\n", st.Config)

	ind := st.Indicators
	version := ind.Version
	if version == "" {
		version = "(none reported)"
	}
	age := ""
	if strings.HasPrefix(ind.Source, "builtin:") {
		// The set's date is the build's: an age would only say how old
		// the binary is.
		age = ", built into netward"
	} else if !ind.GeneratedAt.IsZero() || !ind.LoadedAt.IsZero() {
		age = ", age " + roundDur(time.Duration(ind.AgeSeconds)*time.Second)
	}
	fmt.Fprintf(w, "indicators\tversion %s%s, %d in force: %s\n", version, age, ind.Total, actionCounts(ind.ByAction))
	if ind.HTTPOnly > 0 {
		fmt.Fprintf(w, "\t%d http-only (Url with a path: enforced on plain HTTP only)\n", ind.HTTPOnly)
	}
	if ind.Source != "" {
		fmt.Fprintf(w, "\tsource %s\n", ind.Source)
	}
	if ind.FromStore {
		fmt.Fprintf(w, "\tthe last good set stored on disk (the source has not answered since the start)\n")
	}
	if ind.Rejected > 0 {
		fmt.Fprintf(w, "\t%d entries rejected; run `netward indicators validate` on the source for each problem\n", ind.Rejected)
	}
	if !ind.NextExpiry.IsZero() {
		fmt.Fprintf(w, "\tnext expiry %s\n", ind.NextExpiry.UTC().Format(time.RFC3339))
	}
	if ind.LastError != "" {
		fmt.Fprintf(w, "\tsource failing (%d times, last %s): %s; the set above stays in force\n",
			ind.Failures, ind.LastErrorAt.UTC().Format(time.RFC3339), ind.LastError)
	}
	if ind.MaxAgeHours > 0 {
		proved := "never"
		if !ind.FreshAt.IsZero() {
			proved = ind.FreshAt.UTC().Format(time.RFC3339)
		}
		if ind.Stale {
			fmt.Fprintf(w, "\tSTALE: the console last proved this set current %s, more than indicators.maxAgeHours (%d) ago; it stays in force (a feed path that answers 304 for ever or replays old answers looks like this)\n",
				proved, ind.MaxAgeHours)
		} else {
			fmt.Fprintf(w, "\tsequence %d, proved current %s\n", ind.Sequence, proved)
		}
		if ind.FreshnessError != "" {
			fmt.Fprintf(w, "\tlast answer proved nothing: %s\n", ind.FreshnessError)
		}
	}

	ic := st.Interception
	dns := "off"
	if ic.DNS {
		dns = "on " + strings.Join(ic.DNSListen, " ")
		if ic.DNSCapture {
			dns += " (host-wide capture)"
		}
	}
	sni, quic := "off", "off"
	if ic.SNI {
		sni, quic = "on", ic.QUIC
	}
	fmt.Fprintf(w, "interception\tDNS %s; SNI %s; QUIC %s\n", dns, sni, quic)
	if ds := ic.DNSStats; ds != nil {
		hit := "no cache lookups yet"
		if n := ds.CacheHits + ds.CacheMisses; n > 0 {
			hit = fmt.Sprintf("cache hits %.0f%%", 100*float64(ds.CacheHits)/float64(n))
		}
		fmt.Fprintf(w, "\tDNS proxy: %d queries, %s, %d in flight, %d upstream errors, %d SERVFAIL\n",
			ds.Queries, hit, ds.InFlight, ds.UpstreamErrors, ds.ServFail)
	}

	if st.Bypasses.Active == 0 {
		fmt.Fprintf(w, "bypasses\tnone active\n")
	} else {
		keys := make([]string, 0, len(st.Bypasses.ByTarget))
		for k := range st.Bypasses.ByTarget {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, st.Bypasses.ByTarget[k]))
		}
		fmt.Fprintf(w, "bypasses\t%d active: %s\n", st.Bypasses.Active, strings.Join(parts, ", "))
	}

	if ts := st.Telemetry; ts != nil {
		last := "never"
		if !ts.LastUpload.IsZero() {
			last = ts.LastUpload.UTC().Format(time.RFC3339)
		}
		dest := ts.Endpoint
		if dest == "" {
			dest = "no endpoint (kept locally)"
		}
		fmt.Fprintf(w, "telemetry\t%s; spool %d chunks, %d records, %s; last upload %s\n", dest, ts.SpoolChunks, ts.SpoolRecords, humanBytes(ts.SpoolBytes), last)
		if ts.DeviceID != "" {
			fmt.Fprintf(w, "\tdevice id %s\n", ts.DeviceID)
		}
		if f := ts.Flows; f != nil && f.Records > 0 {
			fmt.Fprintf(w, "\tflow records %d, %.0f%% without a remote name\n", f.Records, 100*f.UnnamedShare)
		}
		if lost := ts.DroppedQueueFull + ts.DroppedSpoolRecords; lost > 0 {
			fmt.Fprintf(w, "\t%d records lost (queue full %d, spool full %d)\n", lost, ts.DroppedQueueFull, ts.DroppedSpoolRecords)
		}
		if ts.Quarantined > 0 {
			fmt.Fprintf(w, "\t%d chunks quarantined (refused by the console)\n", ts.Quarantined)
		}
		if ts.LastError != "" {
			fmt.Fprintf(w, "\tlast error: %s\n", ts.LastError)
		}
	}
	for i, m := range st.Warnings {
		label := ""
		if i == 0 {
			label = "WARNING"
		}
		fmt.Fprintf(w, "%s\t%s\n", label, m)
	}
	if len(st.Errors) == 0 {
		fmt.Fprintf(w, "errors\tnone\n")
	}
	for i, e := range st.Errors {
		label := ""
		if i == 0 {
			label = "errors"
		}
		fmt.Fprintf(w, "%s\t%s %s: %s\n", label, e.Time.UTC().Format(time.RFC3339), e.Component, e.Message)
	}
}

// actionCounts prints counts in the tie-break order of CONTRACT §1.
func actionCounts(m map[string]int) string {
	var parts []string
	for _, a := range []string{"Allowed", "Warn", "Block", "Audit"} {
		parts = append(parts, fmt.Sprintf("%d %s", m[a], a))
	}
	return strings.Join(parts, ", ")
}

func roundDur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Second).String()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
