// Package alertstest is a real syslog receiver for tests of alert
// delivery: UDP (a message per datagram, RFC 5426) and TCP (octet
// counting, RFC 6587 §3.4.1) listeners on loopback, and a parser of the
// RFC 5424 messages they get.
package alertstest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Message is one syslog message and the transport it came over.
type Message struct {
	Network string // "udp" or "tcp"
	Text    string
}

// Syslog listens on UDP and TCP loopback ports until the test ends.
type Syslog struct {
	UDP net.PacketConn
	TCP net.Listener
	C   chan Message
}

// NewSyslog starts the listeners.
func NewSyslog(t testing.TB) *Syslog {
	t.Helper()
	s := &Syslog{C: make(chan Message, 100)}
	var err error
	if s.UDP, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.TCP, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.UDP.Close(); s.TCP.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := s.UDP.ReadFrom(buf)
			if err != nil {
				return
			}
			s.C <- Message{"udp", string(buf[:n])}
		}
	}()
	go func() {
		for {
			c, err := s.TCP.Accept()
			if err != nil {
				return
			}
			go s.readFrames(c)
		}
	}()
	return s
}

// readFrames reads "LEN SP MSG" frames; a bad frame is reported as a
// message starting "bad frame" and ends the connection.
func (s *Syslog) readFrames(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || size <= 0 || size > 65536 {
			s.C <- Message{"tcp", "bad frame " + n}
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		s.C <- Message{"tcp", string(msg)}
	}
}

// Next returns the next message, failing the test after limit.
func (s *Syslog) Next(t testing.TB, limit time.Duration) Message {
	t.Helper()
	select {
	case m := <-s.C:
		return m
	case <-time.After(limit):
		t.Fatalf("no syslog message within %v", limit)
		return Message{}
	}
}

// rfc5424 is HEADER SP STRUCTURED-DATA SP MSG with one SD element:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG.
var (
	rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[\S+(?: \w+="(?:[^"\\]|\\.)*")*\]) (.*)$`)
	sdParam = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
)

// Parse reads an RFC 5424 message into its header fields ("pri",
// "timestamp", "host", "appName", "procId", "msgId", "msg") and its
// structured-data parameters (unescaped), or fails.
func Parse(msg string) (map[string]string, error) {
	m := rfc5424.FindStringSubmatch(msg)
	if m == nil {
		return nil, fmt.Errorf("not an RFC 5424 message: %q", msg)
	}
	if _, err := time.Parse(time.RFC3339Nano, m[2]); err != nil {
		return nil, fmt.Errorf("timestamp %q: %w", m[2], err)
	}
	out := map[string]string{"pri": m[1], "timestamp": m[2], "host": m[3], "appName": m[4], "procId": m[5], "msgId": m[6], "msg": m[8]}
	for _, p := range sdParam.FindAllStringSubmatch(m[7], -1) {
		out[p[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\]`, `]`).Replace(p[2])
	}
	return out, nil
}
