package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// The README's `guildhall serve`: its first start creates the bus credentials in
// the data directory, private to the user; later starts reuse them; the CLI
// signs in with the operator's; nobody gets in without them.
func TestEmbeddedCredentialsCreatedOnceAndPrivate(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	creds := filepath.Join(dir, "creds")
	fi, err := os.Stat(creds)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("%s has mode %#o; want 0700", creds, m)
	}
	entries, err := os.ReadDir(creds)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"server.json": true}
	for _, r := range ghnats.Roles {
		want[string(r)+".nk"] = true
	}
	for _, e := range entries {
		info, _ := e.Info()
		if m := info.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %#o; want 0600", e.Name(), m)
		}
		delete(want, e.Name())
	}
	if len(want) > 0 {
		t.Errorf("credentials missing: %v", want)
	}
	first, err := os.ReadFile(filepath.Join(creds, "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	url, err := os.ReadFile(filepath.Join(dir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := natsgo.Connect(strings.TrimSpace(string(url)), natsgo.Timeout(2*time.Second)); err == nil || !errors.Is(err, natsgo.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect to the embedded NATS without credentials: %v; want an authorization violation", err)
	}

	s.stop(t)
	startStack(t, dir)
	again, err := os.ReadFile(filepath.Join(creds, "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Fatal("a restart replaced the credentials")
	}
	if err := token([]string{"create", "--bot", "after_restart", "--data", dir}); err != nil {
		t.Fatalf("token create with the operator's credentials: %v", err)
	}
}

// A tier signs in with the seeds of the roles it runs and needs no others: a
// gateway machine holds gateway.nk only, and an api cannot start with it.
func TestTierNeedsOnlyItsRoleCredentials(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	gwOnly := t.TempDir()
	seed, err := os.ReadFile(ghnats.SeedFile(n.Creds, ghnats.RoleGateway))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ghnats.SeedFile(gwOnly, ghnats.RoleGateway), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	startStack(t, t.TempDir(), "--role", "gateway", "--nats-url", n.URL, "--nats-creds", gwOnly)

	f, err := parseServe([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--role", "api", "--nats-url", n.URL, "--nats-creds", gwOnly}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "api.nk") {
		t.Fatalf("api with only the gateway's credentials: %v; want an error naming api.nk", err)
	}
}

// `guildhall nats creds` writes a set a node can load, and never overwrites one.
func TestNATSCredsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	if err := natsNode([]string{"creds", "--out", dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := ghnats.LoadServerAuth(dir); err != nil {
		t.Fatalf("load the new set: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "server.json"))
	if err := natsNode([]string{"creds", "--out", dir}); !errors.Is(err, ghnats.ErrCredentialsExist) {
		t.Fatalf("second creds into the same directory: %v; want ErrCredentialsExist", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "server.json")); !bytes.Equal(before, after) {
		t.Fatal("the set was overwritten")
	}
	if err := natsNode([]string{"--data", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "--creds") {
		t.Fatalf("a node without credentials: %v; want an error asking for --creds", err)
	}
}

// `guildhall serve --nats-tls-cert/--nats-tls-key/--nats-tls-ca`: the embedded
// server speaks TLS only, its own roles and the CLI connect with the CA, and a
// client that does not do TLS is refused.
func TestEmbeddedNATSWithTLS(t *testing.T) {
	files := testenv.NewTestCA(t)
	dir := t.TempDir()
	s := startStack(t, dir, "--nats-tls-cert", files.Cert, "--nats-tls-key", files.Key, "--nats-tls-ca", files.CA)
	tok, _ := s.rest.Register(t, "tls"+randName())
	c := testenv.DialGateway(t, s.gatewayURL())
	c.Identify(tok) // through the gateway's TLS connection to the api's
	url, err := os.ReadFile(filepath.Join(dir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(url), "tls://") {
		t.Fatalf("nats.url = %q; want a tls:// URL", url)
	}
	if err := token([]string{"create", "--bot", "tlsbot", "--data", dir, "--nats-tls-ca", files.CA}); err != nil {
		t.Fatalf("token create over TLS: %v", err)
	}
	opts, err := ghnats.ClientAuth{Dir: filepath.Join(dir, "creds")}.Options(ghnats.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := natsgo.Connect(strings.TrimSpace(string(url)), append(opts, natsgo.Timeout(2*time.Second))...); err == nil {
		nc.Close()
		t.Fatal("a client without the CA connected to the TLS-only server")
	}
}

// An all-roles process opens one connection per role, each signed in with its
// own identity: the separation holds inside one process too.
func TestAllRolesOneConnectionPerIdentity(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	startStack(t, t.TempDir(), "--nats-url", n.URL, "--nats-creds", n.Creds)
	auth, err := ghnats.LoadServerAuth(n.Creds)
	if err != nil {
		t.Fatal(err)
	}
	cz, err := n.Server.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{} // role → the key its connection signed in with
	for _, c := range cz.Conns {
		if f := strings.Fields(c.Name); len(f) == 3 && f[0] == "guildhall" {
			if prev, dup := users[f[1]]; dup && prev != c.AuthorizedUser {
				t.Errorf("two %s connections with different keys", f[1])
			}
			users[f[1]] = c.AuthorizedUser
		}
	}
	for _, role := range []ghnats.Role{ghnats.RoleAPI, ghnats.RoleWriter, ghnats.RoleGateway} {
		if got, want := users[string(role)], auth.Users[role]; got != want {
			t.Errorf("the %s connection signed in as %q; want the %s key %q (connections: %v)", role, got, role, want, users)
		}
	}
}
