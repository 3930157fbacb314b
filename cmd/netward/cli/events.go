package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/telemetry"
)

func eventsCommand() *command {
	c := &command{
		name:    "events",
		usage:   "netward events [--follow] [--since DUR|TIME] [--json] [--config FILE | --socket PATH]",
		short:   "Show recent decisions and transactions (the agent keeps the last few thousand).",
		example: "netward events --since 10m\nnetward events --follow --json",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cf := addClientFlags(fs)
		follow := fs.Bool("follow", false, "keep printing new events until interrupted")
		since := fs.String("since", "", "only events newer than this: a duration back (10m, 2h) or an RFC 3339 time")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		if _, err := control.ParseSince(*since, time.Now()); err != nil {
			return usageErrorf("--since: %v", err)
		}
		cl, err := cf.client(env)
		if err != nil {
			return err
		}
		if *follow {
			var stop context.CancelFunc
			ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
		}
		enc := json.NewEncoder(env.Stdout)
		n := 0
		err = cl.Events(ctx, *since, *follow, func(r telemetry.Record) error {
			n++
			if *cf.json {
				return enc.Encode(r)
			}
			_, err := io.WriteString(env.Stdout, eventLine(r))
			return err
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			return apiErr(err)
		}
		if n == 0 && !*cf.json && !*follow {
			fmt.Fprintln(env.Stderr, "no events (yet)")
		}
		return nil
	}
	return c
}

// eventLine is one readable event: time, action, source, target, then the
// details that are set.
func eventLine(r telemetry.Record) string {
	target := r.RemoteUrl
	if target == "" {
		target = r.RemoteIP
	} else if r.RemoteIP != "" {
		target += " (" + r.RemoteIP + ")"
	}
	if r.RemotePort != 0 {
		target += " port " + strconv.Itoa(r.RemotePort)
	}
	if r.ActionType == telemetry.DeviceInfo {
		// A machine record: who and what this machine is.
		var addrs []string
		for _, a := range r.IPAddresses {
			addrs = append(addrs, a.Interface+"="+a.Address)
		}
		target = fmt.Sprintf("device %s (%s) %s %s, agent %s, policy %d, users [%s], addresses [%s]", r.DeviceId, r.DeviceName,
			r.OSPlatform, r.OSVersion, r.AgentVersion, r.PolicySequence, strings.Join(r.LoggedOnUsers, " "), strings.Join(addrs, " "))
	}
	src := r.Source
	if src == "" {
		src = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-32s  %-9s  %s", r.Timestamp.UTC().Format(time.RFC3339), r.ActionType, src, target)
	if r.IndicatorId != "" {
		fmt.Fprintf(&b, "  indicator=%s", r.IndicatorId)
	}
	if r.Application != "" {
		fmt.Fprintf(&b, "  app=%q", r.Application)
	}
	if r.InitiatingProcessFileName != "" {
		fmt.Fprintf(&b, "  process=%s", r.InitiatingProcessFileName)
		if r.InitiatingProcessId != 0 {
			fmt.Fprintf(&b, "[%d]", r.InitiatingProcessId)
		}
	}
	if r.InitiatingProcessAccountName != "" {
		fmt.Fprintf(&b, "  user=%s", r.InitiatingProcessAccountName)
	}
	if r.RepeatCount > 1 {
		fmt.Fprintf(&b, "  repeats=%d", r.RepeatCount)
	}
	if r.Resolver != "" {
		fmt.Fprintf(&b, "  via=%s", r.Resolver)
	}
	b.WriteByte('\n')
	return b.String()
}
