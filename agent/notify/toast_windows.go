package notify

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/windows"
)

// Windows toasts. The service runs in session 0, which has no desktop, so
// the toast is raised by a short-lived PowerShell process started in the
// active console session with the logged-in user's token
// (WTSQueryUserToken + CreateProcessAsUser). PowerShell uses the WinRT
// ToastNotificationManager; the script is passed -EncodedCommand so no
// quoting of the site name can break out of it.

// DefaultBackend is the toast backend.
func DefaultBackend() Backend { return toast{} }

type toast struct{}

func (toast) Notify(ctx context.Context, n Notice, _ func()) error {
	session := windows.WTSGetActiveConsoleSessionId()
	if session == 0xFFFFFFFF {
		return fmt.Errorf("%w: no active console session", ErrNoSession)
	}
	var tok windows.Token
	if err := windows.WTSQueryUserToken(session, &tok); err != nil {
		return fmt.Errorf("%w: query the session's user token: %v (the agent must run as the LocalSystem service)", ErrNoSession, err)
	}
	defer tok.Close()
	cmd := "powershell.exe -NoProfile -NonInteractive -WindowStyle Hidden -EncodedCommand " + encodePS(toastScript(n))
	cl, err := windows.UTF16PtrFromString(cmd)
	if err != nil {
		return err
	}
	si := &windows.StartupInfo{Cb: uint32(sizeofStartupInfo()), Desktop: windows.StringToUTF16Ptr(`winsta0\default`)}
	var pi windows.ProcessInformation
	if err := windows.CreateProcessAsUser(tok, nil, cl, nil, nil, false, windows.CREATE_NO_WINDOW, nil, nil, si, &pi); err != nil {
		return fmt.Errorf("start the toast helper in session %d: %w", session, err)
	}
	windows.CloseHandle(pi.Thread)
	windows.CloseHandle(pi.Process)
	return nil
}

// psQuote makes s a single-quoted PowerShell string literal.
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// xmlEscape escapes s for the toast XML.
func xmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")
	return r.Replace(s)
}

func toastScript(n Notice) string {
	xml := `<toast><visual><binding template="ToastGeneric"><text>` + xmlEscape(n.Summary()) +
		`</text><text>` + xmlEscape(n.Body()) + `</text></binding></visual></toast>`
	return `[Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime] | Out-Null
[Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime] | Out-Null
$x = New-Object Windows.Data.Xml.Dom.XmlDocument
$x.LoadXml(` + psQuote(xml) + `)
$t = New-Object Windows.UI.Notifications.ToastNotification $x
[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier('netward').Show($t)`
}

// encodePS encodes a script for -EncodedCommand (base64 of UTF-16LE).
func encodePS(s string) string {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}
