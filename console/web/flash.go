package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Flash is a one-time message shown at the top of the next page, after a
// form's redirect ("App Dropbox tagged Unsanctioned").
type Flash struct {
	Kind FlashKind
	Text string
}

// FlashKind sets a flash message's colour and how urgently screen readers
// announce it.
type FlashKind string

// Flash kinds.
const (
	FlashSuccess FlashKind = "success"
	FlashInfo    FlashKind = "info"
	FlashWarning FlashKind = "warning"
	FlashError   FlashKind = "error"
)

// Role is the ARIA role of the message: errors interrupt, others wait.
func (f Flash) Role() string {
	if f.Kind == FlashError {
		return "alert"
	}
	return "status"
}

const (
	flashCookie = "nw_flash"
	maxFlashes  = 4
	maxFlashLen = 400
)

// Flash queues a message for the next page this browser renders (the
// post/redirect/get pattern). Messages are signed, so another site cannot
// plant text on a console page.
func (r *Renderer) Flash(w http.ResponseWriter, req *http.Request, f Flash) {
	list := r.readFlashes(req)
	if len(f.Text) > maxFlashLen {
		f.Text = strings.ToValidUTF8(f.Text[:maxFlashLen], "") + "…"
	}
	list = append(list, f)
	if len(list) > maxFlashes {
		list = list[len(list)-maxFlashes:]
	}
	body, _ := json.Marshal(list)
	val := base64.RawURLEncoding.EncodeToString(body)
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: val + "." + r.flashMAC(val), Path: r.cfg.Base + "/",
		HttpOnly: true, Secure: req.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: 300,
	})
}

// takeFlashes reads and clears the queued messages.
func (r *Renderer) takeFlashes(w http.ResponseWriter, req *http.Request) []Flash {
	list := r.readFlashes(req)
	if _, err := req.Cookie(flashCookie); err == nil {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: r.cfg.Base + "/", MaxAge: -1,
			HttpOnly: true, Secure: req.TLS != nil, SameSite: http.SameSiteLaxMode})
	}
	return list
}

func (r *Renderer) readFlashes(req *http.Request) []Flash {
	c, err := req.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	val, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(r.flashMAC(val))) {
		return nil
	}
	body, err := base64.RawURLEncoding.DecodeString(val)
	if err != nil {
		return nil
	}
	var list []Flash
	if json.Unmarshal(body, &list) != nil || len(list) > maxFlashes {
		return nil
	}
	return list
}

func (r *Renderer) flashMAC(val string) string {
	m := hmac.New(sha256.New, r.cfg.FlashKey)
	m.Write([]byte("flash\x00" + val))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
