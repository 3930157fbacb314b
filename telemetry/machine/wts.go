package machine

// The Windows session logic, kept free of system calls so it is tested on
// every platform; users_windows.go feeds it the real WTS API.

// wtsSession is one Remote Desktop Services session (WTS_SESSION_INFO plus
// its user and domain).
type wtsSession struct {
	ID     uint32
	State  uint32 // WTS_CONNECTSTATE_CLASS
	User   string
	Domain string
}

// WTS_CONNECTSTATE_CLASS values (wtsapi32.h) of sessions with a user.
const (
	wtsActive       = 0 // signed in and in use
	wtsConnected    = 1
	wtsDisconnected = 4 // signed in, RDP client gone: still signed in
)

// sessionSource is the WTS API as the session logic sees it.
type sessionSource interface {
	Sessions() ([]wtsSession, error)
}

// usersFrom names the users of sessions that have one: DOMAIN\user, as
// Windows shows accounts; session 0 (services) has none.
func usersFrom(src sessionSource) ([]string, error) {
	ss, err := src.Sessions()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range ss {
		if s.User == "" {
			continue
		}
		switch s.State {
		case wtsActive, wtsConnected, wtsDisconnected:
		default:
			continue
		}
		n := s.User
		if s.Domain != "" {
			n = s.Domain + `\` + s.User
		}
		names = append(names, n)
	}
	return uniqueSorted(names), nil
}
