package dnsproxy

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// One UDP socket per core (Config.UDPSockets): every socket of a listen
// address sets SO_REUSEPORT before it binds, and the kernel hands each
// client (by its address and port) to one of them, so readers on different
// cores do not take turns at one socket's receive queue and lock. Linux
// lets only sockets of the same effective user join a group (socket(7)).

// reusePortBuilt: this OS opens several sockets per address.
const reusePortBuilt = true

func defaultUDPSockets() int { return runtime.GOMAXPROCS(0) }

// reusePort is the Control of a ListenConfig whose sockets join a
// SO_REUSEPORT group.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
		return err
	}
	return serr
}
