package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netward/netward/agent/control"
)

func checkCommand() *command {
	c := &command{
		name:    "check",
		usage:   "netward check [--json] [--config FILE | --socket PATH] NAME|URL|IP",
		short:   "Show the decision the agent would take now: action, matched indicator, interceptors and bypass state.",
		example: "netward check dropbox.com\nnetward check http://example.com/downloads/x.exe --json\nnetward check 203.0.113.7",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cf := addClientFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageErrorf("want exactly one NAME, URL or IP address, got %d arguments", fs.NArg())
		}
		if strings.TrimSpace(fs.Arg(0)) == "" {
			return usageErrorf("the name to check is empty; give a host name (example.com), a URL or an IP address")
		}
		cl, err := cf.client(env)
		if err != nil {
			return err
		}
		res, err := cl.Check(ctx, fs.Arg(0))
		if err != nil {
			return apiErr(err)
		}
		if *cf.json {
			return writeJSON(env.Stdout, res)
		}
		printCheck(env.Stdout, res)
		return nil
	}
	return c
}

func printCheck(out io.Writer, r control.CheckResult) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	action := r.Action
	if r.Would != r.Action {
		action += fmt.Sprintf(" (would %s in block mode; mode is %s)", r.Would, r.Mode)
	}
	fmt.Fprintf(w, "%s\t%s\n", r.Kind, r.Target)
	fmt.Fprintf(w, "action\t%s\n", action)
	if ind := r.Indicator; ind != nil {
		fmt.Fprintf(w, "indicator\t%s %s %s (id %s)\n", ind.Action, ind.Type, ind.Value, ind.ID)
		if ind.Title != "" {
			fmt.Fprintf(w, "title\t%s\n", ind.Title)
		}
		if ind.Application != "" {
			app := ind.Application
			if ind.ApplicationID != "" {
				app += " (id " + ind.ApplicationID + ")"
			}
			fmt.Fprintf(w, "application\t%s\n", app)
		}
	} else {
		fmt.Fprintf(w, "indicator\tnone matches\n")
	}
	ic := "none"
	if len(r.Interceptors) > 0 {
		ic = strings.Join(r.Interceptors, ", ")
	}
	fmt.Fprintf(w, "interceptors\t%s\n", ic)
	switch {
	case r.Bypass.Active:
		fmt.Fprintf(w, "bypass\tactive until %s\n", r.Bypass.Expires.UTC().Format(time.RFC3339))
	case r.Bypass.Possible && (r.Kind == "name" || r.Kind == "ip"):
		fmt.Fprintf(w, "bypass\tnone; continue with 'netward bypass %s'\n", r.Target)
	case r.Bypass.Possible:
		fmt.Fprintf(w, "bypass\tnone; continue from the warn page\n")
	default:
		fmt.Fprintf(w, "bypass\tnot applicable\n")
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note\t%s\n", r.Note)
	}
}
