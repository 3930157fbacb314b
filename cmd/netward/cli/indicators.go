package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/indicators"
)

func indicatorsCommand() *command {
	c := &command{
		name: "indicators",
		usage: "netward indicators validate FILE [--format auto|feed|csv|json|hosts|list|catalog] [--tags FILE] [--action A] [--allow-default-route] [--json]\n" +
			"       netward indicators reload [--config FILE | --socket PATH]",
		short: "Check an indicator file offline and report every problem with its line or index; make the agent read its source now (admin).",
		example: "netward indicators validate indicators.csv\n" +
			"netward indicators validate catalog.json --tags tags.json --json\n" +
			"sudo netward indicators reload",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		if len(args) == 0 {
			return usageErrorf("missing subcommand; want \"validate\" or \"reload\"")
		}
		if args[0] == "-h" || args[0] == "--help" {
			printCommandHelp(env.Stdout, c, nil)
			return nil
		}
		if args[0] == "reload" {
			return indicatorsReload(ctx, env, c, args[1:])
		}
		if args[0] != "validate" {
			return usageErrorf("unknown subcommand %q; want \"validate\" or \"reload\"", args[0])
		}
		fs := newFlags(env, c)
		format := fs.String("format", indicators.FormatAuto, "file format: "+strings.Join(indicators.Formats, ", "))
		tags := fs.String("tags", "", "tags file for an app catalog (app → Unsanctioned, Monitored, Sanctioned)")
		action := fs.String("action", "Block", "action for hosts files and lists, which carry none")
		allowDefault := fs.Bool("allow-default-route", false, "accept IpAddress 0.0.0.0/0 and ::/0 (as indicators.allowDefaultRoute does)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageErrorf("want exactly one FILE")
		}
		act, err := filter.ParseAction(*action)
		if err != nil {
			return usageErrorf("--action: %v", err)
		}
		if !validFormat(*format) {
			return usageErrorf("--format %q: want one of %s", *format, strings.Join(indicators.Formats, ", "))
		}
		file := fs.Arg(0)
		b, err := os.ReadFile(file)
		if err != nil {
			return failf("%v", err)
		}
		var tagBytes []byte
		if *tags != "" {
			if tagBytes, err = os.ReadFile(*tags); err != nil {
				return failf("%v", err)
			}
		}
		detected := *format
		if detected == indicators.FormatAuto {
			detected = indicators.DetectFormat(file, b)
		}
		set, err := indicators.Parse(file, b, detected, *tags, tagBytes, indicators.Options{Action: act, Now: time.Now(), AllowDefaultRoute: *allowDefault})
		if err != nil {
			return failf("%v", err)
		}
		st := set.Stats(time.Now())
		if *asJSON {
			problems := set.Problems
			if problems == nil {
				problems = []indicators.Problem{}
			}
			if err := writeJSON(env.Stdout, validateReport{
				File: file, Format: detected, Version: set.Version, Valid: st.Errors == 0, Stats: st, Problems: problems,
			}); err != nil {
				return err
			}
		} else {
			for _, p := range set.Problems {
				fmt.Fprintln(env.Stdout, p.String())
			}
			fmt.Fprintf(env.Stdout, "%s (%s): %d indicators loaded, %d expired, %d errors, %d warnings%s\n",
				file, detected, st.Indicators, st.Expired, st.Errors, st.Warnings, countsLine(st))
		}
		if st.Errors > 0 {
			return silentExit(ExitFailed)
		}
		return nil
	}
	return c
}

// validateReport is the --json output of `netward indicators validate`.
type validateReport struct {
	File     string               `json:"file"`
	Format   string               `json:"format"`
	Version  string               `json:"version,omitempty"`
	Valid    bool                 `json:"valid"`
	Stats    indicators.Stats     `json:"stats"`
	Problems []indicators.Problem `json:"problems"`
}

func validFormat(f string) bool {
	for _, x := range indicators.Formats {
		if f == x {
			return true
		}
	}
	return false
}

func countsLine(st indicators.Stats) string {
	var parts []string
	for _, a := range []string{"Allowed", "Warn", "Block", "Audit"} {
		if n := st.ByAction[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", a, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// indicatorsReload asks the running agent to read its indicator source now
// (an admin call: a feed fixed or a file edited need not wait for the next
// change notification).
func indicatorsReload(ctx context.Context, env *Env, c *command, args []string) error {
	fs := newFlags(env, c)
	cf := addClientFlags(fs)
	cl, err := parseNoArgsClient(env, fs, cf, args)
	if err != nil {
		return err
	}
	if err := cl.Reload(ctx); err != nil {
		return apiErr(err)
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return apiErr(err)
	}
	if *cf.json {
		return writeJSON(env.Stdout, st.Indicators)
	}
	fmt.Fprintf(env.Stdout, "indicator set %s in force (%d indicators) from %s\n", st.Indicators.Version, st.Indicators.Total, st.Indicators.Source)
	return nil
}
