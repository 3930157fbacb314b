package winsvc

import (
	"bytes"
	"log/slog"
)

// lineLevel returns the level of one line written by slog.TextHandler with
// the time attribute removed ("level=WARN msg=...").
func lineLevel(p []byte) slog.Level {
	rest, ok := bytes.CutPrefix(p, []byte("level="))
	if !ok {
		return slog.LevelInfo
	}
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	var l slog.Level
	if err := l.UnmarshalText(rest); err != nil {
		return slog.LevelInfo
	}
	return l
}

// dropTime removes the time attribute: the event log stamps every entry.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
