package machine

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// users lists the users of the machine's WTS sessions (console and remote
// desktop): WTSEnumerateSessionsW, then WTSQuerySessionInformationW for
// each session's WTSUserName and WTSDomainName.
func users() ([]string, error) { return usersFrom(wtsAPI{}) }

// wtsAPI is the real Remote Desktop Services API.
type wtsAPI struct{}

var (
	wtsapi32                 = windows.NewLazySystemDLL("wtsapi32.dll")
	procWTSQuerySessionInfoW = wtsapi32.NewProc("WTSQuerySessionInformationW")
)

// WTS_INFO_CLASS values (wtsapi32.h).
const (
	wtsUserName   = 5
	wtsDomainName = 7
)

func (wtsAPI) Sessions() ([]wtsSession, error) {
	var infos *windows.WTS_SESSION_INFO
	var n uint32
	if err := windows.WTSEnumerateSessions(0 /* WTS_CURRENT_SERVER_HANDLE */, 0, 1, &infos, &n); err != nil {
		return nil, fmt.Errorf("WTSEnumerateSessions: %w", err)
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(infos)))
	list := unsafe.Slice(infos, n)
	out := make([]wtsSession, 0, n)
	for _, s := range list {
		out = append(out, wtsSession{ID: s.SessionID, State: s.State,
			User: querySessionString(s.SessionID, wtsUserName), Domain: querySessionString(s.SessionID, wtsDomainName)})
	}
	return out, nil
}

func querySessionString(id uint32, class uint32) string {
	var buf *uint16
	var size uint32
	r, _, _ := procWTSQuerySessionInfoW.Call(0, uintptr(id), uintptr(class), uintptr(unsafe.Pointer(&buf)), uintptr(unsafe.Pointer(&size)))
	if r == 0 || buf == nil {
		return ""
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(buf)))
	return windows.UTF16PtrToString(buf)
}
