package testenv

import (
	"errors"
	"fmt"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats-server/v2/server"
)

// LeafSite is an edge site: a hub (one node with JetStream and the topology, as
// StartNATS makes it, accepting leaf links) and a site's own nats-server joined
// to it as a leaf node through a Proxy, so that a test can cut the leaf link
// while the site's server and its clients stay up. How the site reaches the
// hub's JetStream: by its domain (Domain), which a process at the site names in
// ghnats.ClientAuth.JSDomain, since a leaf link does not carry the unprefixed
// JetStream API.
type LeafSite struct {
	Hub     *NATS
	Domain  string // the hub's JetStream domain
	Leaf    *server.Server
	LeafURL string // clients at the site connect here
	Link    *Proxy // the leaf link
	t       testing.TB
}

// StartLeafSite starts the hub with topo applied and a leaf site joined to it,
// and waits until the link is up. Everything stops at test cleanup.
func StartLeafSite(t testing.TB, topo ghnats.Topology) *LeafSite {
	t.Helper()
	h := NewHarness(t)
	leafPort := freeTCPPorts(t, 1)[0]
	link := StartProxy(t, fmt.Sprintf("127.0.0.1:%d", leafPort))
	// The hub tells leaf nodes where to reconnect: the proxy, or a cut link would
	// come back around it.
	const domain = "hub"
	hub := startNATS(t, h, ghnats.ServerConfig{Name: "hub", Dir: t.TempDir(), Auth: h.Auth(), JetStreamDomain: domain, LeafPort: leafPort, LeafAdvertise: link.Addr}, topo)
	leaf, err := ghnats.StartServer(ghnats.ServerConfig{Name: "site", Dir: t.TempDir(), Auth: h.Auth(),
		LeafRemotes: []string{"nats-leaf://" + link.Addr}})
	if err != nil {
		t.Fatalf("start leaf node: %v", err)
	}
	t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	site := &LeafSite{Hub: hub, Domain: domain, Leaf: leaf, LeafURL: leaf.ClientURL(), Link: link, t: t}
	site.waitLinked()
	return site
}

// Cut takes the leaf link down; the site's server and its clients stay up.
func (s *LeafSite) Cut() { s.Link.Cut() }

// Heal lets the leaf link up again and waits until it is.
func (s *LeafSite) Heal() {
	s.t.Helper()
	s.Link.Heal()
	s.waitLinked()
}

func (s *LeafSite) waitLinked() {
	s.t.Helper()
	Eventually(s.t, 30*time.Second, func() error {
		if s.Hub.Server.NumLeafNodes() != 1 || s.Leaf.NumLeafNodes() != 1 {
			return errors.New("leaf link not up")
		}
		return nil
	})
}
