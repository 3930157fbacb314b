package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// Freedesktop desktop notifications (org.freedesktop.Notifications,
// https://specifications.freedesktop.org/notification-spec/latest/) over the
// user's session bus.
const (
	notifDest  = "org.freedesktop.Notifications"
	notifPath  = dbus.ObjectPath("/org/freedesktop/Notifications")
	notifIface = "org.freedesktop.Notifications"
	actionWait = 2 * time.Minute
)

// DefaultBackend is the session D-Bus backend.
func DefaultBackend() Backend { return &DBus{} }

// Bus is one session bus and the account it belongs to.
type Bus struct {
	Address string
	UID     int
}

// DBus sends notifications to session buses. The agent usually runs as
// root, so it finds the logged-in users' buses under /run/user/UID/bus
// (systemd-logind); run as a user it uses $DBUS_SESSION_BUS_ADDRESS.
type DBus struct {
	// Buses lists the session buses for user ("" = every session); nil
	// means SessionBuses.
	Buses func(user string) []Bus
}

// SessionBuses finds the session buses of logged-in users.
func SessionBuses(name string) []Bus {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && os.Getuid() != 0 {
		return []Bus{{Address: a, UID: os.Getuid()}}
	}
	var want = -1
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return nil
		}
		want, _ = strconv.Atoi(u.Uid)
	}
	socks, _ := filepath.Glob("/run/user/*/bus")
	var out []Bus
	for _, s := range socks {
		uid, err := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		if err != nil || (want >= 0 && uid != want) {
			continue
		}
		out = append(out, Bus{Address: "unix:path=" + s, UID: uid})
	}
	return out
}

// Notify shows n on every matching session; it succeeds if any did.
func (d *DBus) Notify(ctx context.Context, n Notice, cont func()) error {
	list := d.Buses
	if list == nil {
		list = SessionBuses
	}
	buses := list(n.User)
	if len(buses) == 0 {
		return fmt.Errorf("%w: no session bus found (no user logged in to a desktop)", ErrNoSession)
	}
	var errs []error
	ok := false
	for _, b := range buses {
		if err := notifyBus(ctx, b, n, cont); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Address, err))
			continue
		}
		ok = true
	}
	if ok {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNoSession, errors.Join(errs...))
}

func notifyBus(ctx context.Context, b Bus, n Notice, cont func()) error {
	conn, err := dialSession(b)
	if err != nil {
		return err
	}
	obj := conn.Object(notifDest, notifPath)
	var caps []string
	_ = obj.CallWithContext(ctx, notifIface+".GetCapabilities", 0).Store(&caps)
	actions := []string{}
	withAction := cont != nil && contains(caps, "actions")
	if withAction {
		actions = []string{"continue", "Continue"}
	}
	var sigs chan *dbus.Signal
	if withAction {
		if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(notifIface), dbus.WithMatchObjectPath(notifPath)); err != nil {
			withAction = false
		} else {
			sigs = make(chan *dbus.Signal, 8)
			conn.Signal(sigs)
		}
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(1)), "category": dbus.MakeVariant("network")}
	var id uint32
	call := obj.CallWithContext(ctx, notifIface+".Notify", 0, "netward", uint32(0), "dialog-warning",
		n.Summary(), n.Body(), actions, hints, int32(-1))
	if err := call.Store(&id); err != nil {
		conn.Close()
		return err
	}
	if !withAction {
		conn.Close()
		return nil
	}
	// Wait, bounded, for the user's click; the connection is closed either way.
	go func() {
		defer conn.Close()
		timer := time.NewTimer(actionWait)
		defer timer.Stop()
		for {
			select {
			case <-timer.C:
				return
			case s, ok := <-sigs:
				if !ok {
					return
				}
				if len(s.Body) < 1 {
					continue
				}
				if sid, _ := s.Body[0].(uint32); sid != id {
					continue
				}
				switch s.Name {
				case notifIface + ".ActionInvoked":
					if len(s.Body) == 2 && s.Body[1] == "continue" {
						cont()
					}
					return
				case notifIface + ".NotificationClosed":
					return
				}
			}
		}
	}()
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
