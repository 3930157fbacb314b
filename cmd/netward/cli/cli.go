// Package cli is the netward command line. main only calls Run, so the whole
// CLI can be tested in-process (golden tests pin its output and exit codes).
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes (CONTRACT §3).
const (
	ExitOK         = 0
	ExitFailed     = 1
	ExitUsage      = 2
	ExitNotRunning = 3
)

// Env is what a command may touch: its arguments and standard streams.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv is os.Getenv in production; tests inject their own.
	Getenv func(string) string
}

// command is one verb of the CLI.
type command struct {
	name    string
	usage   string // one line: "netward check NAME|URL|IP"
	short   string
	example string
	run     func(ctx context.Context, env *Env, args []string) error
}

// exitError carries a specific exit code up to Run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{ExitUsage, fmt.Errorf(format, args...)}
}

// failf reports a failed operation (exit 1).
func failf(format string, args ...any) error {
	return &exitError{ExitFailed, fmt.Errorf(format, args...)}
}

// silentExit exits with code without printing anything more (the command has
// already written its report).
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit %d", int(s)) }

func commands() []*command {
	return []*command{
		versionCommand(),
		runCommand(),
		caCommand(),
		indicatorsCommand(),
		statusCommand(),
		checkCommand(),
		eventsCommand(),
		bypassCommand(),
		modeCommand(),
		installCommand(),
		uninstallCommand(),
		startCommand(),
		stopCommand(),
		restartCommand(),
		cleanupCommand(),
		enrollCommand(),
		telemetryCommand(),
	}
}

// Run executes the CLI with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, env *Env, args []string) int {
	cmds := commands()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "-v") {
		// Every CLI user types it; it is the version verb.
		args = append([]string{"version"}, args[1:]...)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			for _, c := range cmds {
				if c.name == args[1] {
					printCommandHelp(env.Stdout, c, nil)
					return ExitOK
				}
			}
		}
		printUsage(env.Stdout, cmds)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		return report(env, c, err)
	}
	fmt.Fprintf(env.Stderr, "netward: unknown command %q\nRun 'netward --help' for the list of commands.\n", args[0])
	return ExitUsage
}

func report(env *Env, c *command, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var s silentExit
	if errors.As(err, &s) {
		return int(s)
	}
	code := ExitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(env.Stderr, "netward %s: %v\n", c.name, err)
	if code == ExitUsage {
		// The error and one usage line; the whole help is one --help away.
		fmt.Fprintf(env.Stderr, "Usage: %s (see 'netward %s --help')\n", c.usage, c.name)
	}
	return code
}

func printUsage(w io.Writer, cmds []*command) {
	fmt.Fprintf(w, "netward — endpoint network protection\n\nUsage: netward COMMAND [flags]\n\nCommands:\n")
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	width := 0
	for _, c := range sorted {
		width = max(width, len(c.name))
	}
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.short)
	}
	fmt.Fprintf(w, "\nExit codes: 0 success, 1 operation failed, 2 usage error, 3 agent not running.\nRun 'netward COMMAND --help' for a command's flags and an example.\n")
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.usage, c.short)
	if fs != nil {
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintf(w, "\nFlags:\n")
			out := fs.Output()
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(out)
		}
	}
	if c.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", strings.ReplaceAll(c.example, "\n", "\n  "))
	}
}

// newFlags returns a FlagSet for c whose -h prints the command's help with an
// example, and whose parse errors are usage errors.
//
// The flag package calls Usage itself on -h and on every bad flag; parse
// prints the help once for -h only, so Usage here prints nothing (a bad
// flag gets the error and one usage line from report, not the whole help).
func newFlags(env *Env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	hw := &helpWriter{out: env.Stdout}
	fs.SetOutput(hw)
	fs.Usage = func() {
		hw.help.Reset()
		printCommandHelp(&hw.help, c, fs)
	}
	return fs
}

// helpWriter is a FlagSet's output: it discards the flag package's own
// messages (report prints the error) and holds the help the last Usage call
// rendered, which parse prints for -h only.
type helpWriter struct {
	out  io.Writer
	help bytes.Buffer
}

func (*helpWriter) Write(p []byte) (int, error) { return len(p), nil }

// parse parses args, turning flag errors into usage errors. It also accepts
// flags after positional arguments ("netward check example.com --json").
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if hw, ok := fs.Output().(*helpWriter); ok {
					hw.out.Write(hw.help.Bytes())
				}
				return flag.ErrHelp
			}
			return usageErrorf("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
