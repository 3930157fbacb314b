//go:build !linux

package flow

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/netward/netward/telemetry"
)

// Config configures a flow source (see conntrack_linux.go).
type Config struct {
	Names        telemetry.NameLookup
	Procs        ProcessLookup
	DumpInterval time.Duration
	MaxFlows     int
	ReadBuffer   int
	Netns        string
	ConnNames    ConnNameLookup
	OwnMark      uint32
	OwnPID       int
	SkipLoopback bool
	Pace         func()
	Log          *slog.Logger
	Now          func() time.Time
}

// Conntrack is Linux-only; elsewhere Run reports that.
type Conntrack struct{}

func New(Config) *Conntrack { return &Conntrack{} }

// ErrUnsupported is returned by Run on systems without conntrack.
var ErrUnsupported = errors.New("flow accounting (conntrack) is available on Linux only")

func (c *Conntrack) Run(ctx context.Context, emit func(telemetry.Record) bool) error {
	return ErrUnsupported
}

func (c *Conntrack) Stats() Stats { return Stats{} }
