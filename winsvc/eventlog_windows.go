package winsvc

import (
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/sys/windows/svc/eventlog"
)

// Event IDs of netward's event-log entries, one per level so admins can
// filter on them.
const (
	eventInfo    = 1
	eventWarning = 2
	eventError   = 3
)

type eventWriter struct{ el *eventlog.Log }

func (w eventWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	var err error
	switch l := lineLevel(p); {
	case l >= slog.LevelError:
		err = w.el.Error(eventError, msg)
	case l >= slog.LevelWarn:
		err = w.el.Warning(eventWarning, msg)
	default:
		err = w.el.Info(eventInfo, msg)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// EventLogger returns a logger writing to the Application event log under
// source name (registered by `netward install`), and a func closing it.
func EventLogger(name string, level slog.Level) (*slog.Logger, func() error, error) {
	el, err := eventlog.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("open event log source %s: %w (reinstall the service with `netward install`)", name, err)
	}
	h := slog.NewTextHandler(eventWriter{el}, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})
	return slog.New(h), el.Close, nil
}
