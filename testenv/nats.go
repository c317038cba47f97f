package testenv

import (
	"context"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is one embedded nats-server with JetStream, its data in a test temp dir,
// with authentication on as in production: a fresh credentials set in Creds.
type NATS struct {
	Server *server.Server
	URL    string
	// Creds is the credentials directory: a process of any role connects with
	// ghnats.ClientAuth{Dir: Creds} (or ConnectAs).
	Creds string
	// Conn and JS are the harness's identity (see Harness), not a role's.
	Conn *natsgo.Conn
	JS   jetstream.JetStream
	// Harness connects more connections as the harness.
	Harness *Harness
}

// StartNATS starts a single embedded node on a random loopback port, applies the
// topology (with topo's settings) and connects. Everything stops at test cleanup.
func StartNATS(t testing.TB, topo ghnats.Topology) *NATS {
	t.Helper()
	return StartNATSWith(t, topo, nil)
}

// StartNATSWith is StartNATS with configure called on the server's
// configuration before it starts.
func StartNATSWith(t testing.TB, topo ghnats.Topology, configure func(*ghnats.ServerConfig)) *NATS {
	t.Helper()
	h := NewHarness(t)
	cfg := ghnats.ServerConfig{Name: "test", Dir: t.TempDir(), Auth: h.Auth()}
	if configure != nil {
		configure(&cfg)
	}
	return startNATS(t, h, cfg, topo)
}

func startNATS(t testing.TB, h *Harness, cfg ghnats.ServerConfig, topo ghnats.Topology) *NATS {
	t.Helper()
	s, err := ghnats.StartServer(cfg)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, js, err := ghnats.Connect(s.ClientURL(), "testenv", h.Options()...)
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ghnats.Apply(ctx, js, topo); err != nil {
		t.Fatalf("apply topology: %v", err)
	}
	return &NATS{Server: s, URL: s.ClientURL(), Creds: h.Creds, Conn: nc, JS: js, Harness: h}
}

// ConnectAs connects to the server as role, closed at test cleanup.
func (n *NATS) ConnectAs(t testing.TB, role ghnats.Role, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream) {
	t.Helper()
	return NATSConnectAs(t, n.URL, n.Creds, role, extra...)
}

// NATSConnectAs connects to url as role with the credentials in the directory
// creds, closed at test cleanup.
func NATSConnectAs(t testing.TB, url, creds string, role ghnats.Role, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := ghnats.ConnectAs(url, "testenv-"+string(role), role, ghnats.ClientAuth{Dir: creds}, extra...)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// Eventually calls f every step until it returns nil or total has passed, then fails
// the test with f's last error.
func Eventually(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	step := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(step)
		if step < 200*time.Millisecond {
			step *= 2
		}
	}
}
