package testenv

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a NATS cluster of embedded servers in the test process, each with its
// own client port, route port and JetStream directory.
// Authentication is on as in production (routes included); Creds is the
// credentials directory and Conn the harness's identity (see Harness).
type Cluster struct {
	t       testing.TB
	Nodes   []*server.Server
	cfgs    []ghnats.ServerConfig
	URLs    []string // client URL of each node
	Creds   string
	Conn    *natsgo.Conn
	JS      jetstream.JetStream
	stopped []bool
	h       *Harness
	// routeProxies[i] is in front of node i's route port (StartPartitionableCluster).
	routeProxies []*Proxy
}

// StartCluster starts n nodes (3 for a real quorum), applies the topology with
// topo.Replicas = n unless set, and connects to all of them.
func StartCluster(t testing.TB, n int, topo ghnats.Topology) *Cluster {
	t.Helper()
	return startCluster(t, n, topo, false, nil)
}

// StartPartitionableCluster is StartCluster with every route through a proxy,
// so that a test can cut a node off from the others (Isolate) while its clients
// stay connected to it.
func StartPartitionableCluster(t testing.TB, n int, topo ghnats.Topology) *Cluster {
	t.Helper()
	return startCluster(t, n, topo, true, nil)
}

// StartClusterWith is StartCluster with configure called on each node's
// configuration before it starts (a JetStream domain, a leaf port).
func StartClusterWith(t testing.TB, n int, topo ghnats.Topology, configure func(node int, cfg *ghnats.ServerConfig)) *Cluster {
	t.Helper()
	return startCluster(t, n, topo, false, configure)
}

func startCluster(t testing.TB, n int, topo ghnats.Topology, proxied bool, configure func(node int, cfg *ghnats.ServerConfig)) *Cluster {
	t.Helper()
	h := NewHarness(t)
	c := &Cluster{t: t, stopped: make([]bool, n), h: h, Creds: h.Creds}
	clientPorts := freeTCPPorts(t, n)
	routePorts := freeTCPPorts(t, n)
	// Each node is reached at its route address, advertised as such: through a
	// proxy, every route (configured or learned from another node) goes through
	// the proxy of the node it reaches.
	routeAddrs := make([]string, n)
	for i, p := range routePorts {
		routeAddrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
		if proxied {
			c.routeProxies = append(c.routeProxies, StartProxy(t, routeAddrs[i]))
			routeAddrs[i] = c.routeProxies[i].Addr
		}
	}
	var routes []string
	for _, a := range routeAddrs {
		routes = append(routes, "nats-route://"+a)
	}
	for i := range n {
		cfg := ghnats.ServerConfig{
			Name: fmt.Sprintf("n%d", i+1), Port: clientPorts[i], Dir: t.TempDir(),
			ClusterName: "guildhall-test", ClusterPort: routePorts[i], Routes: routes,
			Auth: h.Auth(),
		}
		if proxied {
			cfg.ClusterAdvertise = routeAddrs[i]
		}
		if configure != nil {
			configure(i, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	// Start every node at once: a JetStream cluster waits for its peers.
	errs := make(chan error, n)
	c.Nodes = make([]*server.Server, n)
	for i := range n {
		go func() {
			s, err := ghnats.StartServer(c.cfgs[i])
			c.Nodes[i] = s
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("start cluster: %v", err)
		}
	}
	t.Cleanup(func() {
		for i, s := range c.Nodes {
			if !c.stopped[i] {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	for i := range n {
		c.URLs = append(c.URLs, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	nc, js, err := ghnats.Connect(strings.Join(c.URLs, ","), "testenv-cluster", h.Options()...)
	if err != nil {
		t.Fatalf("connect cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	c.Conn, c.JS = nc, js
	if topo.Replicas == 0 {
		topo.Replicas = n
	}
	Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return ghnats.Apply(ctx, js, topo)
	})
	return c
}

// Isolate cuts node i's routes to every other node (StartPartitionableCluster):
// it and its clients' connections stay up, but nothing crosses to or from the
// rest of the cluster until Rejoin.
func (c *Cluster) Isolate(i int) {
	c.t.Helper()
	if c.routeProxies == nil {
		c.t.Fatal("Isolate needs StartPartitionableCluster")
	}
	id := c.Nodes[i].ID()
	for j, p := range c.routeProxies {
		if j == i {
			p.Cut()
		} else {
			p.Block(id)
		}
	}
}

// Rejoin ends Isolate and waits until node i has its routes again.
func (c *Cluster) Rejoin(i int) {
	c.t.Helper()
	for _, p := range c.routeProxies {
		p.Heal()
	}
	Eventually(c.t, 60*time.Second, func() error {
		for j, s := range c.Nodes {
			if c.stopped[j] {
				continue
			}
			rz, err := s.Routez(nil)
			if err != nil {
				return err
			}
			peers := map[string]bool{}
			for _, r := range rz.Routes {
				peers[r.RemoteID] = true
			}
			if len(peers) < len(c.Nodes)-1 {
				return fmt.Errorf("node %d has routes to %d nodes", j, len(peers))
			}
		}
		return nil
	})
}

// URL is every node's client URL, comma-separated, as clients are given it.
func (c *Cluster) URL() string { return strings.Join(c.URLs, ",") }

// Stop shuts node i down.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.Nodes[i].Shutdown()
	c.Nodes[i].WaitForShutdown()
	c.stopped[i] = true
}

// Restart starts node i again on its ports and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	s, err := ghnats.StartServer(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("restart node %d: %v", i, err)
	}
	c.Nodes[i] = s
	c.stopped[i] = false
}

// ConnectTo connects to node i only, so a test controls which node a component
// talks to (and what happens when that node stops).
func (c *Cluster) ConnectTo(i int, name string) (*natsgo.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc, js, err := ghnats.Connect(c.URLs[i], name, c.h.Options()...)
	if err != nil {
		c.t.Fatalf("connect node %d: %v", i, err)
	}
	c.t.Cleanup(nc.Close)
	return nc, js
}

// ConnectAs connects to node i only, as role.
func (c *Cluster) ConnectAs(i int, role ghnats.Role, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream) {
	c.t.Helper()
	return NATSConnectAs(c.t, c.URLs[i], c.Creds, role, extra...)
}

func freeTCPPorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
