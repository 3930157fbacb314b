//go:build !windows

package winsvc

import (
	"errors"
	"log/slog"
)

// EventLogger is Windows-only.
func EventLogger(string, slog.Level) (*slog.Logger, func() error, error) {
	return nil, nil, errors.New("the Windows event log exists only on Windows")
}
