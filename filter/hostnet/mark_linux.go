package hostnet

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// MarkControl returns a net.Dialer / net.ListenConfig Control function that
// sets SO_MARK on the socket before it connects. Setting SO_MARK needs
// CAP_NET_ADMIN; without it the socket is left unmarked and the error says
// so, because an unmarked upstream query would be redirected to the proxy
// itself.
func MarkControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set SO_MARK %#x on %s socket to %s (needs CAP_NET_ADMIN): %w", mark, network, address, serr)
		}
		return nil
	}
}
