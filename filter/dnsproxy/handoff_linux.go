package dnsproxy

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// writeWaking writes b on the connected UDP socket c. A socket reader's
// write (g set) wakes a helper of g before it waits for room in the
// socket's send buffer (EAGAIN), so the reader's own socket is read
// meanwhile (readerGroup); a write that does not wait wakes nothing.
func writeWaking(c *net.UDPConn, b []byte, g *readerGroup) error {
	if g == nil {
		_, err := c.Write(b)
		return err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	woke := false
	err = rc.Write(func(fd uintptr) bool {
		for {
			_, werr = syscall.Write(int(fd), b)
			if !errors.Is(werr, syscall.EINTR) {
				break
			}
		}
		if errors.Is(werr, syscall.EAGAIN) {
			if !woke {
				g.wake()
				woke = true
			}
			return false // the runtime waits until the socket is writable
		}
		return true
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	return nil
}
