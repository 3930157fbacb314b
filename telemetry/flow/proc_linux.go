package flow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SockDiag attributes a connection to a process: netlink sock_diag
// (inet_diag, linux/inet_diag.h) finds the socket of the exact tuple and
// returns its inode and owner UID; a cached scan of /proc/*/fd maps the inode
// to a PID; the UID gives the account name. It must run in the namespace of
// the sockets (the agent's own), at connection start.
type SockDiag struct {
	mu       sync.Mutex
	conn     *netlink.Conn
	inodes   map[uint64]int // socket inode → pid, from the last /proc scan
	scanned  time.Time
	users    map[uint32]string
	now      func() time.Time
	minRescn time.Duration
}

// NewSockDiag opens the sock_diag netlink socket.
func NewSockDiag() (*SockDiag, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag netlink socket: %w", err)
	}
	return &SockDiag{conn: c, inodes: map[uint64]int{}, users: map[uint32]string{}, now: time.Now, minRescn: 100 * time.Millisecond}, nil
}

// Close releases the netlink socket.
func (s *SockDiag) Close() error { return s.conn.Close() }

const sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY

// Lookup implements ProcessLookup.
func (s *SockDiag) Lookup(proto uint8, local, remote netip.AddrPort) (Process, bool) {
	uid, inode, ok := s.socket(proto, local, remote)
	if !ok {
		return Process{}, false
	}
	return s.process(uid, inode), true
}

// LookupLocal attributes the socket whose local end is local, whatever its
// remote end: the client socket of a DNS query the capture redirected
// (the proxy sees the client's address; the socket's remote end is the
// resolver the client meant, which the redirect hid). The kernel filters
// the dump by port (inet_diag bytecode), so it costs one socket, not the
// table. A socket already closed is not found.
func (s *SockDiag) LookupLocal(proto uint8, local netip.AddrPort) (Process, bool) {
	families := []uint8{unix.AF_INET6}
	if local.Addr().Is4() {
		families = []uint8{unix.AF_INET, unix.AF_INET6} // v4 on a dual-stack socket: ::ffff:a.b.c.d
	}
	for _, fam := range families {
		if uid, inode, ok := s.localSocket(fam, proto, local); ok {
			return s.process(uid, inode), true
		}
	}
	return Process{}, false
}

// process maps a socket's owner and inode to the process holding it.
func (s *SockDiag) process(uid uint32, inode uint64) Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Process{Account: s.account(uid)}
	pid, found := s.inodes[inode]
	if !found && s.now().Sub(s.scanned) >= s.minRescn {
		s.scan()
		pid, found = s.inodes[inode]
	}
	if found {
		p.PID = pid
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
			p.FileName = filepath.Base(exe)
		} else if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
			p.FileName = strings.TrimSpace(string(comm))
		}
	}
	return p
}

// Operations of inet_diag bytecode (linux/inet_diag.h).
const (
	inetDiagBCSGE       = 2 // source port >= next op's port
	inetDiagBCSLE       = 3 // source port <= next op's port
	inetDiagReqBytecode = 1 // INET_DIAG_REQ_BYTECODE attribute
)

// localSocket dumps the sockets of family and proto whose local port is
// local's (bytecode: sport >= p && sport <= p, which every kernel since
// 2.6 understands) and returns the one bound to local's address, or to
// the unspecified address.
func (s *SockDiag) localSocket(family, proto uint8, local netip.AddrPort) (uid uint32, inode uint64, ok bool) {
	port := local.Port()
	// Each op is {code u8, yes u8, no u16}; a comparison is followed by an
	// op carrying the port in "no". Run: a match jumps yes bytes, a miss
	// no bytes; the socket is accepted when the jumps end exactly at the
	// end of the program.
	bc := make([]byte, 16)
	bc[0], bc[1] = inetDiagBCSGE, 8
	binary.NativeEndian.PutUint16(bc[2:], 20) // miss: past the end → reject
	binary.NativeEndian.PutUint16(bc[6:], port)
	bc[8], bc[9] = inetDiagBCSLE, 8
	binary.NativeEndian.PutUint16(bc[10:], 12)
	binary.NativeEndian.PutUint16(bc[14:], port)
	req := make([]byte, 56, 56+4+len(bc))
	req[0], req[1] = family, proto
	binary.NativeEndian.PutUint32(req[4:], 0xffffffff) // all states
	attr := make([]byte, 4)
	binary.NativeEndian.PutUint16(attr[0:], uint16(4+len(bc)))
	binary.NativeEndian.PutUint16(attr[2:], inetDiagReqBytecode)
	req = append(append(req, attr...), bc...)
	msgs, err := s.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
		Data:   req,
	})
	if err != nil {
		return 0, 0, false
	}
	want := local.Addr().Unmap()
	for _, m := range msgs {
		d := m.Data
		if len(d) < 72 || binary.BigEndian.Uint16(d[4:]) != port {
			continue
		}
		var a netip.Addr
		if d[0] == unix.AF_INET {
			a = netip.AddrFrom4([4]byte(d[8:12]))
		} else {
			a = netip.AddrFrom16([16]byte(d[8:24])).Unmap()
		}
		if a == want || a.IsUnspecified() {
			return binary.NativeEndian.Uint32(d[64:]), uint64(binary.NativeEndian.Uint32(d[68:])), true
		}
	}
	return 0, 0, false
}

// socket asks the kernel for the socket with exactly this tuple.
func (s *SockDiag) socket(proto uint8, local, remote netip.AddrPort) (uid uint32, inode uint64, ok bool) {
	family := uint8(unix.AF_INET)
	if local.Addr().Is6() {
		family = unix.AF_INET6
	}
	// struct inet_diag_req_v2 (56 bytes).
	req := make([]byte, 56)
	req[0], req[1] = family, proto
	binary.NativeEndian.PutUint32(req[4:], 0xffffffff) // all states
	binary.BigEndian.PutUint16(req[8:], local.Port())
	binary.BigEndian.PutUint16(req[10:], remote.Port())
	putAddr(req[12:28], local.Addr())
	putAddr(req[28:44], remote.Addr())
	binary.NativeEndian.PutUint32(req[48:], 0xffffffff) // INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(req[52:], 0xffffffff)
	msgs, err := s.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request},
		Data:   req,
	})
	if err != nil || len(msgs) == 0 || len(msgs[0].Data) < 72 {
		return 0, 0, false
	}
	d := msgs[0].Data // struct inet_diag_msg
	return binary.NativeEndian.Uint32(d[64:]), uint64(binary.NativeEndian.Uint32(d[68:])), true
}

func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	v := a.As16()
	copy(b, v[:])
}

// scan rebuilds the inode → pid map from /proc/*/fd. Bounded by the number
// of open sockets on the host; rate-limited by minRescn.
func (s *SockDiag) scan() {
	s.scanned = s.now()
	clear(s.inodes)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := "/proc/" + p.Name() + "/fd"
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			link, err := os.Readlink(fdDir + "/" + fd.Name())
			if err != nil {
				continue
			}
			if v, ok := strings.CutPrefix(link, "socket:["); ok {
				if n, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64); err == nil {
					if _, seen := s.inodes[n]; !seen {
						s.inodes[n] = pid
					}
				}
			}
		}
	}
}

func (s *SockDiag) account(uid uint32) string {
	if name, ok := s.users[uid]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	if len(s.users) < 4096 {
		s.users[uid] = name
	}
	return name
}
