package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/netward/netward/agent/control"
)

func modeCommand() *command {
	c := &command{
		name:  "mode",
		usage: "netward mode [--json] [--config FILE | --socket PATH] [off|audit|block | --clear]",
		short: "Show the enforcement mode; set a local override (root/Administrator) that stays, over the source's mode, until --clear.",
		example: "netward mode\n" +
			"sudo netward mode audit\n" +
			"sudo netward mode --clear",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cf := addClientFlags(fs)
		clearFlag := fs.Bool("clear", false, "clear the local override: the indicator source's mode (or the config's) applies again")
		if err := parse(fs, args); err != nil {
			return err
		}
		var mode string
		switch {
		case fs.NArg() > 1:
			return usageErrorf("want one mode (off, audit or block), got %d arguments", fs.NArg())
		case fs.NArg() == 1 && *clearFlag:
			return usageErrorf("a mode and --clear exclude each other")
		case fs.NArg() == 1:
			mode = fs.Arg(0)
			switch mode {
			case "off", "audit", "block":
			default:
				return usageErrorf("%q is not a mode; want off (no enforcement, reporting continues), audit (decide and record, never block) or block", mode)
			}
		}
		cl, err := cf.client(env)
		if err != nil {
			return err
		}
		var st control.ModeState
		switch {
		case *clearFlag:
			st, err = cl.ClearMode(ctx)
		case mode != "":
			st, err = cl.SetModeState(ctx, mode)
		default:
			var s control.Status
			s, err = cl.Status(ctx)
			st = control.ModeState{Mode: s.Mode, Override: s.ModeOverride, SourceMode: s.SourceMode}
		}
		if err != nil {
			return apiErr(err)
		}
		if *cf.json {
			return writeJSON(env.Stdout, st)
		}
		printMode(env.Stdout, st)
		return nil
	}
	return c
}

func printMode(w io.Writer, st control.ModeState) {
	if st.Override != "" {
		fmt.Fprintf(w, "mode %s (local override, until 'netward mode --clear'; the source's mode is %s)\n", st.Mode, st.SourceMode)
		return
	}
	fmt.Fprintf(w, "mode %s (the source's; no local override)\n", st.Mode)
}
