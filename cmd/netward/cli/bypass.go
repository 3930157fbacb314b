package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netward/netward/agent/control"
)

func bypassCommand() *command {
	c := &command{
		name:  "bypass",
		usage: "netward bypass [--json] [--config FILE | --socket PATH] NAME | --list | --revoke NAME",
		short: "Continue past a Warn for NAME (any user, for themselves); list active bypasses; revoke them (root/Administrator).",
		example: "netward bypass dropbox.com\n" +
			"netward bypass --list\n" +
			"sudo netward bypass --revoke dropbox.com",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cf := addClientFlags(fs)
		list := fs.Bool("list", false, "list the active bypasses")
		revoke := fs.String("revoke", "", "revoke every bypass for `NAME` (its application, or indicator)")
		if err := parse(fs, args); err != nil {
			return err
		}
		modes := 0
		for _, on := range []bool{*list, *revoke != "", fs.NArg() > 0} {
			if on {
				modes++
			}
		}
		switch {
		case modes == 0:
			return usageErrorf("give a NAME to bypass, --list, or --revoke NAME")
		case modes > 1:
			return usageErrorf("NAME, --list and --revoke exclude each other")
		case fs.NArg() > 1:
			return usageErrorf("want one NAME, got %d arguments", fs.NArg())
		case fs.NArg() == 1 && strings.TrimSpace(fs.Arg(0)) == "":
			return usageErrorf("the name to bypass is empty; give the host name the warning is about")
		}
		cl, err := cf.client(env)
		if err != nil {
			return err
		}
		switch {
		case *list:
			l, err := cl.ListBypasses(ctx)
			if err != nil {
				return apiErr(err)
			}
			if *cf.json {
				return writeJSON(env.Stdout, l)
			}
			printBypasses(env.Stdout, l)
			return nil
		case *revoke != "":
			r, err := cl.RevokeBypass(ctx, *revoke)
			if err != nil {
				return apiErr(err)
			}
			if *cf.json {
				if err := writeJSON(env.Stdout, r); err != nil {
					return err
				}
			} else if r.Removed > 0 {
				fmt.Fprintf(env.Stdout, "Revoked %d bypass(es) for %s.\n", r.Removed, r.Name)
			}
			if r.Removed == 0 {
				return failf("no active bypass matches %s (see 'netward bypass --list')", r.Name)
			}
			return nil
		}
		name := fs.Arg(0)
		e, err := cl.Bypass(ctx, name)
		if err != nil {
			var ae *control.APIError
			if errors.As(err, &ae) && ae.Status == http.StatusConflict {
				return failf("%v (check with 'netward check %s')", ae, name)
			}
			return apiErr(err)
		}
		if *cf.json {
			return writeJSON(env.Stdout, e)
		}
		what := e.Name
		if e.Application != "" {
			what = fmt.Sprintf("%s (every site of the application %s)", e.Name, e.Application)
		}
		fmt.Fprintf(env.Stdout, "You may continue to %s until %s (for %s).\n", what, e.Expires.UTC().Format(time.RFC3339), e.Who)
		return nil
	}
	return c
}

func printBypasses(out io.Writer, l []control.BypassInfo) {
	if len(l) == 0 {
		fmt.Fprintln(out, "No active bypasses.")
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "APPLICATION/INDICATOR\tTITLE\tNAME\tUSER\tHOW\tEXPIRES")
	for _, e := range l {
		target := e.Application
		if target == "" {
			target = e.IndicatorType + " " + e.Indicator
		}
		title := e.Title
		if title == "" {
			title = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", target, title, e.Name, e.Who, e.How, e.Expires.UTC().Format(time.RFC3339))
	}
}
