//go:build !windows

package winsvc

import (
	"context"
	"log/slog"
)

// IsService is false off Windows.
func IsService() bool { return false }

// Run runs the agent directly off Windows (systemd and launchd supervise a
// plain foreground process).
func Run(ctx context.Context, _ string, _ *slog.Logger, run func(context.Context) error) error {
	return run(ctx)
}
