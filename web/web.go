package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	etag        string
	contentType string
}

// Handler serves the client. Its zero value is not usable; use NewHandler.
type Handler struct {
	index  asset
	assets map[string]asset // by path below /assets/
}

// NewHandler returns the client's handler. It serves GET and HEAD only: the page
// at /, /invite/{code} and /channels/…, the files at /assets/{name}; anything
// else is 404.
func NewHandler() *Handler {
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		a := asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		name := strings.TrimPrefix(p, "static/")
		if name == "index.html" {
			h.index = a
		} else {
			h.assets[name] = a
		}
		return nil
	})
	if err != nil || h.index.body == nil {
		panic("web: embedded client is incomplete: " + fmtErr(err)) // a build problem, not a runtime one
	}
	return h
}

func fmtErr(err error) string {
	if err == nil {
		return "no index.html"
	}
	return err.Error()
}

// IsPage reports whether p is a path the page itself answers (the client routes
// it), as opposed to an asset.
func IsPage(p string) bool {
	return p == "/" || strings.HasPrefix(p, "/invite/") || strings.HasPrefix(p, "/channels/")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var a asset
	switch p := r.URL.Path; {
	case IsPage(p):
		a = h.index
	case strings.HasPrefix(p, "/assets/"):
		var ok bool
		if a, ok = h.assets[strings.TrimPrefix(p, "/assets/")]; !ok {
			http.NotFound(w, r)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Files are not content-addressed, so a browser revalidates every time; the
	// ETag makes that a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Invite codes are in the page's path: do not leak them to other sites.
	hd.Set("Referrer-Policy", "no-referrer")
	// The client is self-contained: scripts and styles from this origin only; it
	// talks to REST here and to the gateway at whatever URL GET /gateway gives.
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(a.body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(a.body)
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/"))
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
