package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

// mintBot runs `guildhall token create` with args and returns the token it prints.
func mintBot(t *testing.T, args ...string) string {
	t.Helper()
	out := captureStdout(t, func() {
		if err := token(append([]string{"create"}, args...)); err != nil {
			t.Fatal(err)
		}
	})
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			return v
		}
	}
	t.Fatalf("no token in %q", out)
	return ""
}

// `guildhall token create --owner` gives a bot an owner who lists it; `token
// revoke` revokes one token, or every token of a user, on the running server:
// the REST API refuses them and the gateway refuses to identify with them.
func TestTokenRevokeCLI(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	name := "owner" + randName()
	ownerTok, _ := s.rest.Register(t, name)
	botTok := mintBot(t, "--bot", "cli"+randName(), "--owner", name, "--data", dir)
	var bots []struct {
		Bot bool `json:"bot"`
	}
	s.rest.Must(t, http.StatusOK, "GET", "/users/@me/bots", ownerTok, nil, &bots)
	if len(bots) != 1 || !bots[0].Bot {
		t.Fatalf("owner's bots = %+v; want the one minted with --owner", bots)
	}
	if err := token([]string{"create", "--bot", "stray" + randName(), "--owner", "no.such.user", "--data", dir}); err == nil {
		t.Fatal("token create with an unknown owner succeeded")
	}

	s.rest.Must(t, http.StatusOK, "GET", "/users/@me", "Bot "+botTok, nil, nil)
	if err := token([]string{"revoke", "--token", "Bot " + botTok, "--data", dir}); err != nil {
		t.Fatal(err)
	}
	s.rest.Must(t, http.StatusUnauthorized, "GET", "/users/@me", "Bot "+botTok, nil, nil)
	if err := token([]string{"revoke", "--token", botTok, "--data", dir}); err == nil {
		t.Fatal("revoking a revoked token again succeeded")
	}
	c := testenv.DialGateway(t, s.gatewayURL())
	c.WaitFor(t, "op:10", 5*time.Second)
	if err := c.SendIdentify(botTok, 0); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.WaitClose(10 * time.Second); code != 4004 {
		t.Fatalf("IDENTIFY with a revoked token closed with %d; want 4004", code)
	}

	second, _ := s.rest.Register(t, "second"+randName())
	s.rest.Must(t, http.StatusOK, "GET", "/users/@me", ownerTok, nil, nil)
	if err := token([]string{"revoke", "--user", name, "--data", dir}); err != nil {
		t.Fatal(err)
	}
	s.rest.Must(t, http.StatusUnauthorized, "GET", "/users/@me", ownerTok, nil, nil)
	s.rest.Must(t, http.StatusOK, "GET", "/users/@me", second, nil, nil)
}

// A revoked token's live gateway sessions are closed with 4004 and cannot
// resume; a password change keeps the session of the token that made it.
func TestRevocationClosesGatewaySessions(t *testing.T) {
	s := startStack(t, t.TempDir())
	name := "rev" + randName()
	const pw = "correct horse battery"
	tok, _ := s.rest.Register(t, name)
	var other struct {
		Token string `json:"token"`
	}
	s.rest.Must(t, http.StatusOK, "POST", "/auth/login", "", map[string]string{"username": name, "password": pw}, &other)

	a := testenv.DialGateway(t, s.gatewayURL())
	ready := a.Identify(tok)
	b := testenv.DialGateway(t, s.gatewayURL())
	b.Identify(other.Token)
	var r struct {
		SessionID string `json:"session_id"`
	}
	mustJSON(t, ready.D, &r)

	// Password change with the second token: the first token's session goes,
	// the second's stays.
	s.rest.Must(t, http.StatusOK, "PATCH", "/users/@me", other.Token, map[string]string{"password": pw, "new_password": "a new passphrase"}, nil)
	if code, _ := a.WaitClose(10 * time.Second); code != 4004 {
		t.Fatalf("the revoked token's session closed with %d; want 4004", code)
	}
	res := testenv.DialGateway(t, s.gatewayURL())
	res.WaitFor(t, "op:10", 5*time.Second)
	if err := res.Resume(tok, r.SessionID, 0); err != nil {
		t.Fatal(err)
	}
	if code, _ := res.WaitClose(10 * time.Second); code != 4004 {
		t.Fatalf("RESUME with the revoked token closed with %d; want 4004", code)
	}
	time.Sleep(200 * time.Millisecond)
	if b.Closed() {
		t.Fatal("the session of the token that changed the password was closed")
	}

	// Logout ends the second one too.
	s.rest.Must(t, http.StatusNoContent, "POST", "/auth/logout", other.Token, nil, nil)
	if code, _ := b.WaitClose(10 * time.Second); code != 4004 {
		t.Fatalf("the logged-out token's session closed with %d; want 4004", code)
	}
}

func mustJSON(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}
