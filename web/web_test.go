package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// The page is served at every path the client routes, the assets with their
// types, and nothing else.
func TestHandlerServesPageAndAssets(t *testing.T) {
	h := NewHandler()
	for _, p := range []string{"/", "/invite/abc123", "/channels/1/2"} {
		w := get(t, h, "GET", p, nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `<script type="module" src="/assets/js/main.js">`) {
			t.Errorf("GET %s = %d, body without the client's script", p, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s Content-Type = %q; want text/html", p, ct)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s CSP = %q", p, csp)
		}
	}
	cases := map[string]string{
		"/assets/app.css":     "text/css",
		"/assets/js/main.js":  "text/javascript",
		"/assets/js/app.js":   "text/javascript",
		"/assets/favicon.svg": "image/svg+xml",
	}
	for p, want := range cases {
		w := get(t, h, "GET", p, nil)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), want) {
			t.Errorf("GET %s = %d %q; want 200 %s", p, w.Code, w.Header().Get("Content-Type"), want)
		}
	}
	for _, p := range []string{"/assets/nope.js", "/assets/index.html", "/elsewhere", "/assets/../index.html"} {
		if w := get(t, h, "GET", p, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404", p, w.Code)
		}
	}
	if w := get(t, h, "POST", "/", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d; want 405", w.Code)
	}
	if w := get(t, h, "HEAD", "/assets/app.css", nil); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD = %d with %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

// A browser that has a file gets 304 for it.
func TestHandlerRevalidates(t *testing.T) {
	h := NewHandler()
	w := get(t, h, "GET", "/assets/js/app.js", nil)
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if w := get(t, h, "GET", "/assets/js/app.js", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("revalidation = %d with %d bytes; want 304, empty", w.Code, w.Body.Len())
	}
	if w := get(t, h, "GET", "/assets/app.css", map[string]string{"If-None-Match": etag}); w.Code != 200 {
		t.Fatalf("another file's ETag = %d; want 200", w.Code)
	}
}

// Every module the client imports, and every asset the page names, is embedded:
// a missing file would only show as a blank page in a browser.
func TestEveryReferencedFileIsEmbedded(t *testing.T) {
	h := NewHandler()
	imports := regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"](\./[^'"]+)['"]`)
	err := fs.WalkDir(static, "static/js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := static.ReadFile(p)
		for _, m := range imports.FindAllStringSubmatch(string(src), -1) {
			name := "js/" + strings.TrimPrefix(m[1], "./")
			if _, ok := h.assets[name]; !ok {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="/assets/([^"]+)"`)
	for _, m := range refs.FindAllStringSubmatch(string(h.index.body), -1) {
		if _, ok := h.assets[m[1]]; !ok {
			t.Errorf("index.html names /assets/%s, which is not embedded", m[1])
		}
	}
}
