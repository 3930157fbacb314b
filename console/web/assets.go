package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets templates pages
var embedded embed.FS

// asset is one embedded file under its hashed name.
type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

// assetSet serves the embedded assets. A file's URL carries the first 12
// hex digits of its SHA-256, so a new release gets new URLs and browsers may
// cache each one forever.
type assetSet struct {
	prefix string
	byName map[string]string // "console.css" -> "console.1a2b3c4d5e6f.css"
	byHash map[string]*asset
}

func newAssetSet(prefix string) (*assetSet, error) {
	s := &assetSet{prefix: prefix, byName: map[string]string{}, byHash: map[string]*asset{}}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:6])
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + h + ext
		ctype := mime.TypeByExtension(ext)
		switch ext { // not left to the host's MIME table
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		a := &asset{body: body, ctype: ctype, etag: `"` + h + `"`}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(body)
		if zw.Close() == nil && gz.Len() < len(body)*9/10 {
			a.gz = gz.Bytes()
		}
		s.byName[name] = hashed
		s.byHash[hashed] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: load assets: %w", err)
	}
	return s, nil
}

func (s *assetSet) url(name string) string {
	if h, ok := s.byName[name]; ok {
		return s.prefix + h
	}
	return ""
}

// ServeHTTP serves GET/HEAD of hashed names only, immutable for a year,
// gzip-encoded when the client accepts it.
func (s *assetSet) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := s.byHash[path.Base(req.URL.Path)]
	if !ok || !strings.HasPrefix(req.URL.Path, s.prefix) {
		w.Header().Set("Cache-Control", "no-store")
		http.NotFound(w, req)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if req.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(req.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if req.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
