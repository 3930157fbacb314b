package cli

import (
	"errors"
	"flag"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/control"
)

// clientFlags are the flags every verb that talks to the agent takes.
type clientFlags struct {
	config *string
	socket *string
	json   *bool
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		config: fs.String("config", "", "the agent's config file, to find its control socket (default: "+config.SystemPath()+" if it exists)"),
		socket: fs.String("socket", "", "the control socket (overrides --config)"),
		json:   fs.Bool("json", false, "print JSON (stable field names, see docs/control.md)"),
	}
}

// client finds the agent's control socket: --socket, else the config file's
// control.socket, else the default, else the user runtime directory a
// non-root `netward run` falls back to.
func (f clientFlags) client(env *Env) (*control.Client, error) {
	if *f.socket != "" {
		return control.NewClient(*f.socket), nil
	}
	if *f.config != "" {
		cfg, err := config.Load(*f.config)
		if err != nil {
			return nil, failf("%w", err)
		}
		return control.NewClient(cfg.Control.Socket), nil
	}
	cfg, err := config.Load(config.SystemPath())
	switch {
	case err == nil:
		return control.NewClient(cfg.Control.Socket), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, failf("%w (pass --config or --socket to use another file)", err)
	}
	def, err := config.Default()
	if err != nil {
		return nil, failf("%w", err)
	}
	path := def.Control.Socket
	if _, err := os.Stat(path); err != nil {
		getenv := env.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if alt := control.UserSocket(getenv); alt != "" {
			if _, err := os.Stat(alt); err == nil {
				if err := control.UserDirOK(filepath.Dir(alt)); err != nil {
					return nil, failf("%w", err)
				}
				path = alt
			}
		}
	}
	return control.NewClient(path), nil
}

// apiErr turns a client error into the CLI's exit codes: 3 when the agent
// cannot be reached, 2 when the agent says the argument is malformed, 1 for
// every refusal or failure.
func apiErr(err error) error {
	var nr *control.NotRunningError
	if errors.As(err, &nr) {
		return &exitError{ExitNotRunning, nr}
	}
	var ae *control.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		return &exitError{ExitUsage, ae}
	}
	return &exitError{ExitFailed, err}
}

// noArgs refuses positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseNoArgsClient parses args for a verb that takes flags only and
// returns the client its flags name.
func parseNoArgsClient(env *Env, fs *flag.FlagSet, cf clientFlags, args []string) (*control.Client, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := noArgs(fs); err != nil {
		return nil, err
	}
	return cf.client(env)
}
