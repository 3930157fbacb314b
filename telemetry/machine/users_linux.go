package machine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Where Linux says who is signed in. logind (systemd) keeps one file per
// session in sessionsDir (sd-login's own source of truth, read by
// loginctl); without systemd, utmp(5) lists login records.
var (
	sessionsDir = "/run/systemd/sessions"
	utmpFiles   = []string{"/run/utmp", "/var/run/utmp"}
)

func users() ([]string, error) {
	if names, err := logindUsers(sessionsDir); err == nil {
		return names, nil
	}
	var errs []error
	for _, f := range utmpFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return utmpUsers(b), nil
	}
	return nil, errors.Join(errs...)
}

// logindUsers reads the USER of every session of class "user" (not the
// greeter, not background or manager sessions) that is not closing.
func logindUsers(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if u, ok := logindSession(b); ok {
			names = append(names, u)
		}
	}
	return uniqueSorted(names), nil
}

// logindSession reads one session file (KEY=value lines).
func logindSession(b []byte) (user string, ok bool) {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, found := strings.Cut(sc.Text(), "="); found {
			kv[k] = v
		}
	}
	if kv["USER"] == "" || kv["STATE"] == "closing" {
		return "", false
	}
	if c := kv["CLASS"]; c != "" && c != "user" {
		return "", false
	}
	return kv["USER"], true
}

// utmp(5) record layout of glibc on 64-bit and 32-bit Linux alike: 384
// bytes; ut_type (int16) at 0, ut_user (32 bytes, NUL-padded) at 44.
const (
	utmpSize        = 384
	utmpUserOffset  = 44
	utmpUserLen     = 32
	utmpUserProcess = 7 // USER_PROCESS: a signed-in user
)

// utmpUsers reads the users of USER_PROCESS records; a torn last record
// is ignored.
func utmpUsers(b []byte) []string {
	var names []string
	for off := 0; off+utmpSize <= len(b); off += utmpSize {
		rec := b[off : off+utmpSize]
		if int16(binary.NativeEndian.Uint16(rec)) != utmpUserProcess {
			continue
		}
		u := rec[utmpUserOffset : utmpUserOffset+utmpUserLen]
		if i := bytes.IndexByte(u, 0); i >= 0 {
			u = u[:i]
		}
		names = append(names, string(u))
	}
	return uniqueSorted(names)
}
