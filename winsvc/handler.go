package winsvc

import (
	"context"
	"log/slog"
	"time"
)

// State is a service state reported to the service control manager.
type State int

const (
	StartPending State = iota + 1
	Running
	StopPending
)

// Request is a control request from the service control manager.
type Request int

const (
	RequestInterrogate Request = iota + 1
	RequestStop                // SERVICE_CONTROL_STOP and SERVICE_CONTROL_SHUTDOWN
)

// StopTimeout bounds how long the agent may take to stop before the service
// exits anyway (the SCM's own wait hint is 20 s by default).
const StopTimeout = 15 * time.Second

// serve is the body of the Windows service handler, kept free of Windows
// types so it is tested everywhere. It reports Running at once, before the
// agent has loaded its last good indicator set or started its interceptors
// (the SCM gives a service only 30 s, and a slow disk or feed must not make
// Windows kill it), then runs the agent until it fails or the SCM asks it to
// stop. A failure exits non-zero, a requested stop zero. A non-zero exit code makes the SCM apply the recovery actions (the
// service is configured to treat such exits as failures too).
func serve(parent context.Context, run func(context.Context) error, requests <-chan Request, report func(State), log *slog.Logger, stopTimeout time.Duration) (exitCode uint32) {
	report(StartPending)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	report(Running)
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("netward agent failed; the service control manager will restart it", "err", err)
				return 1
			}
			// The agent never ends on its own without an error; treat it as a
			// failure so the service is restarted.
			log.Error("netward agent stopped unexpectedly; the service control manager will restart it")
			return 1
		case r, ok := <-requests:
			if !ok || r == RequestStop {
				report(StopPending)
				cancel()
				t := time.NewTimer(stopTimeout)
				defer t.Stop()
				select {
				case err := <-done:
					if err != nil {
						log.Error("netward agent failed while stopping", "err", err)
					}
				case <-t.C:
					log.Error("netward agent did not stop in time; exiting anyway", "timeout", stopTimeout)
				}
				// Exit 0 even so: a requested stop must not trigger the
				// recovery actions (they also fire on non-zero exit codes).
				return 0
			}
			if r == RequestInterrogate {
				report(Running)
			}
		}
	}
}
