package winsvc

import (
	"context"
	"log/slog"

	"golang.org/x/sys/windows/svc"
)

// IsService reports whether the process was started by the service control
// manager.
func IsService() bool {
	ok, err := svc.IsWindowsService()
	return err == nil && ok
}

type handler struct {
	ctx context.Context
	run func(context.Context) error
	log *slog.Logger
}

// Execute implements svc.Handler by translating to serve.
func (h *handler) Execute(_ []string, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	requests := make(chan Request)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case c := <-reqs:
				var r Request
				switch c.Cmd {
				case svc.Interrogate:
					r = RequestInterrogate
				case svc.Stop, svc.Shutdown:
					r = RequestStop
				default:
					continue
				}
				select {
				case requests <- r:
				case <-stop:
					return
				}
			}
		}
	}()
	report := func(s State) {
		switch s {
		case StartPending:
			status <- svc.Status{State: svc.StartPending}
		case Running:
			status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
		case StopPending:
			status <- svc.Status{State: svc.StopPending, WaitHint: uint32(StopTimeout.Milliseconds()) + 5000}
		}
	}
	code := serve(h.ctx, h.run, requests, report, h.log, StopTimeout)
	// A service-specific exit code: the SCM records it and, because the
	// service has FailureActionsOnNonCrashFailures set, restarts on non-zero.
	return code != 0, code
}

// Run runs the agent as the Windows service name until the SCM stops it or
// ctx ends. Call it only when IsService.
func Run(ctx context.Context, name string, log *slog.Logger, run func(context.Context) error) error {
	return svc.Run(name, &handler{ctx: ctx, run: run, log: log})
}
