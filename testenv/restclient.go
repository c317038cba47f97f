package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// REST is a small client of Guildhall's REST API for tests.
type REST struct {
	Base   string // e.g. http://127.0.0.1:8080/api/v10
	Client *http.Client
}

// NewREST returns a client for base.
func NewREST(base string) *REST {
	return &REST{Base: base, Client: &http.Client{Timeout: 30 * time.Second}}
}

// Do sends a request with an optional JSON body (a []byte is sent as is) and the
// token as Authorization, decodes a JSON answer into out when out is not nil, and
// returns the status and the raw body.
func (r *REST) Do(t testing.TB, method, path, token string, body, out any) (int, []byte) {
	t.Helper()
	return r.do(t, method, path, token, body, out, nil)
}

// DoHeaders is Do with extra request headers (an X-Audit-Log-Reason, say); it
// decodes nothing.
func (r *REST) DoHeaders(t testing.TB, method, path, token string, body any, h http.Header) (int, []byte) {
	t.Helper()
	return r.do(t, method, path, token, body, nil, h)
}

func (r *REST) do(t testing.TB, method, path, token string, body, out any, h http.Header) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, r.Base+path, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// Must is Do that fails the test unless the status is want.
func (r *REST) Must(t testing.TB, want int, method, path, token string, body, out any) []byte {
	t.Helper()
	status, raw := r.Do(t, method, path, token, body, out)
	if status != want {
		t.Fatalf("%s %s = %d %s; want %d", method, path, status, raw, want)
	}
	return raw
}

// Register creates an account and returns its token and user id.
func (r *REST) Register(t testing.TB, username string) (token, userID string) {
	t.Helper()
	var out struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	r.Must(t, http.StatusCreated, "POST", "/auth/register", "", map[string]string{"username": username, "password": "correct horse battery"}, &out)
	return out.Token, out.UserID
}
