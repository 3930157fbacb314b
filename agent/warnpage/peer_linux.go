package warnpage

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// LocalPeerUser returns the account owning the local TCP socket that
// connected from client to server (both on this host, as every connection to
// the loopback sink is), read from /proc/net/tcp{,6} of the agent's network
// namespace. "" when it cannot tell: the bypass is then device-wide.
func LocalPeerUser(client, server netip.AddrPort) string {
	file := "/proc/net/tcp"
	if client.Addr().Is6() && !client.Addr().Is4In6() {
		file = "/proc/net/tcp6"
	}
	uid, ok := socketUID(file, procAddr(client), procAddr(server))
	if !ok {
		return ""
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid:" + strconv.Itoa(uid)
}

// procAddr renders ap the way /proc/net/tcp does: the address as 32-bit
// words in host (little-endian on every Linux netward supports) order, the
// port big-endian, both upper-case hex.
func procAddr(ap netip.AddrPort) string {
	a := ap.Addr().Unmap()
	var b []byte
	if a.Is4() {
		v := a.As4()
		b = v[:]
	} else {
		v := a.As16()
		b = v[:]
	}
	var s strings.Builder
	for i := 0; i < len(b); i += 4 {
		w := binary.BigEndian.Uint32(b[i : i+4])
		var le [4]byte
		binary.LittleEndian.PutUint32(le[:], w)
		s.WriteString(strings.ToUpper(hex.EncodeToString(le[:])))
	}
	return fmt.Sprintf("%s:%04X", s.String(), ap.Port())
}

func socketUID(file, local, remote string) (int, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[1] != local || fields[2] != remote {
			continue
		}
		uid, err := strconv.Atoi(fields[7])
		return uid, err == nil
	}
	return 0, false
}
