package web

import "net/http"

// ContentSecurityPolicy is the policy of every console page: scripts,
// styles, images and fonts only from the console itself, no inline script
// or style (so an injected <script> or style attribute does nothing), no
// plugins, no <base> rewriting, forms only to the console, and no framing
// (clickjacking). Charts are inline SVG with presentation attributes, which
// the policy allows.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// SetHeaders sets the security headers of an HTML response: the CSP,
// no MIME sniffing, no framing, a same-origin referrer, no caching of pages
// (they hold fleet data and CSRF tokens), and HSTS when served over TLS.
func (r *Renderer) SetHeaders(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	h.Set("Cache-Control", "no-store")
	if req != nil && DrawerOnly(req) {
		// The drawer alone, or an error, where the address without
		// the header answers the whole page.
		h.Add("Vary", DrawerHeader)
	}
	if req != nil && req.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// Secure wraps a handler so that its responses carry the security headers,
// for routes that do not go through Render (JSON, CSV, redirects).
func (r *Renderer) Secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.SetHeaders(w, req)
		next.ServeHTTP(w, req)
	})
}
