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
}

// StartCluster starts n nodes (3 for a real quorum), applies the topology with
// topo.Replicas = n unless set, and connects to all of them.
func StartCluster(t testing.TB, n int, topo ghnats.Topology) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, topo, nil)
}

// StartClusterWith is StartCluster with configure called on each node's
// configuration before it starts (a JetStream domain, a leaf port).
func StartClusterWith(t testing.TB, n int, topo ghnats.Topology, configure func(node int, cfg *ghnats.ServerConfig)) *Cluster {
	t.Helper()
	h := NewHarness(t)
	c := &Cluster{t: t, stopped: make([]bool, n), h: h, Creds: h.Creds}
	clientPorts := freeTCPPorts(t, n)
	routePorts := freeTCPPorts(t, n)
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range n {
		c.cfgs = append(c.cfgs, ghnats.ServerConfig{
			Name: fmt.Sprintf("n%d", i+1), Port: clientPorts[i], Dir: t.TempDir(),
			ClusterName: "guildhall-test", ClusterPort: routePorts[i], Routes: routes,
			Auth: h.Auth(),
		})
		if configure != nil {
			configure(i, &c.cfgs[i])
		}
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
