package control

import (
	"net"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// peerIdentity reads the connecting process's credentials with SO_PEERCRED
// (unix(7)): the kernel records them at connect, so the peer cannot lie.
func peerIdentity(c net.Conn) Peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return Peer{}
	}
	p := Peer{Known: true, UID: int(cred.Uid), PID: int(cred.Pid), Admin: cred.Uid == 0}
	p.User = strconv.Itoa(p.UID)
	if u, err := user.LookupId(p.User); err == nil {
		p.User = u.Username
	}
	return p
}
