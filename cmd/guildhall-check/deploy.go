package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Database is the CQL server the api processes and the writer share, and what
// the nemesis does to it. The checker declares it; the Go test hands it
// testenv's Cassandra, the command line shell commands.
type Database interface {
	// Hosts are the CQL contact points, host:port.
	Hosts() []string
	// Stop takes the server down (its process gone) and returns once it is.
	Stop(ctx context.Context) error
	// Start brings it up again on the same data and returns once CQL answers.
	Start(ctx context.Context) error
}

// hubDomain is the JetStream domain of the central cluster.
const hubDomain = "hub"

// deployment is everything the checker runs: a 3-node NATS cluster whose routes
// go through proxies (one per direction of each pair, so a node can be
// partitioned), two api processes and a writer on the CQL store, two gateways
// on the cluster, and an edge site: a leaf node, joined to the hub through
// proxies, with its own gateway.
type deployment struct {
	cfg   Config
	dir   string
	creds string

	nodes      [3]*natsNode
	edge       *natsNode
	routes     [3][3]*proxy // routes[i][j]: node i's route to node j
	leafs      [3]*proxy    // the edge's link to node i's leaf port
	apis       [2]*service
	writer     *service
	gateways   []*service // hub A, hub B, edge
	operator   *natsgo.Conn
	operatorJS jetstream.JetStream
}

// natsNode is a `guildhall nats` child process.
type natsNode struct {
	*process
	server  string // server name
	client  string // nats://…
	monitor string // http://… of its monitoring endpoints
}

// service is a `guildhall serve` child process.
type service struct {
	*process
	addr string // host:port of its HTTP listener
}

func (s *service) baseURL() string    { return "http://" + s.addr + "/api/v10" }
func (s *service) gatewayURL() string { return "ws://" + s.addr + "/?v=10&encoding=json" }

// Names of the gateways, in deployment.gateways order.
var gatewayNames = []string{"gateway-a", "gateway-b", "gateway-edge"}

// freePorts reserves n free loopback ports: they stay bound until release, so
// that the listeners made meanwhile (the proxies, on ports the kernel picks)
// cannot take one of them before the process it is meant for binds it.
func freePorts(n int) (ports []int, release func(), err error) {
	var ls []net.Listener
	release = func() {
		for _, l := range ls {
			l.Close()
		}
		ls = nil
	}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			release()
			return nil, nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, release, nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// deploy starts everything and waits until it serves. Close stops it.
func deploy(ctx context.Context, cfg Config, logf func(string, ...any)) (_ *deployment, err error) {
	d := &deployment{cfg: cfg, dir: cfg.Dir, creds: filepath.Join(cfg.Dir, "creds")}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if out, err := exec.CommandContext(ctx, cfg.Bin, "nats", "creds", "--out", d.creds).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nats creds: %v: %s", err, out)
	}
	ports, releasePorts, err := freePorts(3*4 + 2 + 6)
	if err != nil {
		return nil, err
	}
	defer releasePorts()
	take := func() int { p := ports[0]; ports = ports[1:]; return p }
	var client, route, leaf, monitor [3]int
	for i := range 3 {
		client[i], route[i], leaf[i], monitor[i] = take(), take(), take(), take()
	}
	for i := range 3 {
		for j := range 3 {
			if i != j {
				if d.routes[i][j], err = newProxy(fmt.Sprintf("route n%d→n%d", i+1, j+1), addr(route[j])); err != nil {
					return nil, err
				}
			}
		}
		if d.leafs[i], err = newProxy(fmt.Sprintf("leaf edge→n%d", i+1), addr(leaf[i])); err != nil {
			return nil, err
		}
	}
	logs := filepath.Join(d.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	releasePorts() // the proxies are bound: the nodes may take their ports now
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		var routes []string
		for j := range 3 {
			if i != j {
				routes = append(routes, "nats-route://"+d.routes[i][j].Addr())
			}
		}
		args := []string{"nats", "--name", name, "--port", strconv.Itoa(client[i]), "--cluster", "guildhall-check",
			"--cluster-port", strconv.Itoa(route[i]), "--routes", strings.Join(routes, ","),
			// Nodes find each other only through the proxies: a route to an
			// address learnt from another node would go around them.
			"--cluster-advertise", "127.0.0.1:1",
			"--js-domain", hubDomain, "--leaf-port", strconv.Itoa(leaf[i]), "--http-port", strconv.Itoa(monitor[i]),
			// The edge's link learns the hub's other leaf ports from it: the proxies.
			"--leaf-advertise", d.leafs[i].Addr(),
			"--data", filepath.Join(d.dir, name), "--creds", d.creds}
		if cfg.SyncAlways {
			args = append(args, "--sync-always")
		}
		d.nodes[i] = &natsNode{
			process: &process{name: name, bin: cfg.Bin, args: args, log: filepath.Join(logs, name+".log"),
				ready: "guildhall: nats " + name + " listening on"},
			server: name, client: "nats://" + addr(client[i]), monitor: "http://" + addr(monitor[i]),
		}
	}
	// A JetStream cluster waits for its peers: start the nodes together.
	if err := startAll(ctx, d.nodes[0].process, d.nodes[1].process, d.nodes[2].process); err != nil {
		return nil, err
	}
	logf("NATS cluster up: %s", d.hubURL())
	d.operator, d.operatorJS, err = ghnats.ConnectAs(d.hubURL(), "guildhall-check", ghnats.RoleOperator, ghnats.ClientAuth{Dir: d.creds})
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 2*time.Minute, func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := d.operatorJS.AccountInfo(c)
		return err
	}); err != nil {
		return nil, fmt.Errorf("JetStream not ready: %w", err)
	}

	svc := func(name string, extra ...string) *service {
		a := addr(take())
		args := append([]string{"serve", "--addr", a, "--nats-creds", d.creds, "--data", filepath.Join(d.dir, name),
			"--log-level", "warn", "--drain", "1s"}, extra...)
		return &service{addr: a, process: &process{name: name, bin: cfg.Bin, args: args, log: filepath.Join(logs, name+".log"),
			ready: "guildhall: listening on http://"}}
	}
	store := []string{"--store", "cql", "--cql-hosts", strings.Join(cfg.Database.Hosts(), ","), "--cql-keyspace", cfg.Keyspace}
	gwAddrs := []int{take(), take(), take()}
	// Each process starts on a home node (and learns the others from it, for
	// when that node goes): api-1 and gateway-a on n1, api-2 and gateway-b on
	// n2, the writer on n3, so that a fault's reach does not depend on luck.
	api := func(name string, home int) *service {
		return svc(name, append([]string{"--role", "api", "--nats-url", d.nodes[home].client, "--replicas", "3",
			"--rate-limits", "off", "--bcrypt-cost", "4", "--public-url", "ws://" + addr(gwAddrs[0])}, store...)...)
	}
	d.apis[0], d.apis[1] = api("api-1", 0), api("api-2", 1)
	d.writer = svc("writer", append([]string{"--role", "writer", "--nats-url", d.nodes[2].client}, store...)...)
	// The first api applies the topology and creates the keyspace; the others
	// start once it has.
	if err := d.apis[0].Start(ctx); err != nil {
		return nil, err
	}
	if err := startAll(ctx, d.apis[1].process, d.writer.process); err != nil {
		return nil, err
	}
	logf("api processes and writer up")
	gw := func(i int, natsURL string, extra ...string) *service {
		a := addr(gwAddrs[i])
		args := append([]string{"serve", "--role", "gateway", "--addr", a, "--public-url", "ws://" + a,
			"--nats-url", natsURL, "--nats-creds", d.creds, "--data", filepath.Join(d.dir, gatewayNames[i]),
			"--heartbeat-interval", cfg.Heartbeat.String(), "--identify-concurrency", "64", "--identify-total", "1000000",
			"--log-level", "warn", "--drain", "1s"}, extra...)
		return &service{addr: a, process: &process{name: gatewayNames[i], bin: cfg.Bin, args: args,
			log: filepath.Join(logs, gatewayNames[i]+".log"), ready: "guildhall: listening on http://"}}
	}
	d.gateways = []*service{gw(0, d.nodes[0].client), gw(1, d.nodes[1].client)}
	if err := startAll(ctx, d.gateways[0].process, d.gateways[1].process); err != nil {
		return nil, err
	}
	edgeClient, edgeMonitor := take(), take()
	var remotes []string
	for _, p := range d.leafs {
		remotes = append(remotes, "nats-leaf://"+p.Addr())
	}
	d.edge = &natsNode{
		process: &process{name: "edge", bin: cfg.Bin, log: filepath.Join(logs, "edge.log"), ready: "guildhall: nats edge listening on",
			args: []string{"nats", "--name", "edge", "--port", strconv.Itoa(edgeClient), "--http-port", strconv.Itoa(edgeMonitor),
				"--leaf-remotes", strings.Join(remotes, ","), "--data", filepath.Join(d.dir, "edge"), "--creds", d.creds}},
		server: "edge", client: "nats://" + addr(edgeClient), monitor: "http://" + addr(edgeMonitor),
	}
	if err := d.edge.Start(ctx); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, time.Minute, func() error {
		if n := d.leafLinks(ctx); n != 1 {
			return fmt.Errorf("%d leaf links to the hub", n)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	d.gateways = append(d.gateways, gw(2, d.edge.client, "--nats-js-domain", hubDomain))
	if err := d.gateways[2].Start(ctx); err != nil {
		return nil, err
	}
	logf("gateways up: %s %s (edge)", d.gateways[0].addr, d.gateways[1].addr)
	return d, nil
}

// startAll starts processes concurrently and waits for all of them.
func startAll(ctx context.Context, ps ...*process) error {
	errs := make(chan error, len(ps))
	for _, p := range ps {
		go func() { errs <- p.Start(ctx) }()
	}
	var all []error
	for range ps {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func (d *deployment) hubURL() string {
	var urls []string
	for _, n := range d.nodes {
		urls = append(urls, n.client)
	}
	return strings.Join(urls, ",")
}

// monitorJSON reads a monitoring endpoint of a node into v.
func monitorJSON(ctx context.Context, base, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s", base, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// leafz is the part of /leafz the checker reads.
type leafz struct {
	Leafs []struct {
		Name    string `json:"name"`
		InMsgs  int64  `json:"in_msgs"`
		OutMsgs int64  `json:"out_msgs"`
	} `json:"leafs"`
}

// leafLinks counts the leaf links the hub's running nodes hold.
func (d *deployment) leafLinks(ctx context.Context) int {
	n := 0
	for _, node := range d.nodes {
		var lz leafz
		if node.Running() && monitorJSON(ctx, node.monitor, "/leafz", &lz) == nil {
			n += len(lz.Leafs)
		}
	}
	return n
}

// nodeOf returns the index of the hub node that the process whose HTTP
// listener is at addr is connected to (its NATS connection is named
// "guildhall <role> <addr>"), or -1.
func (d *deployment) nodeOf(ctx context.Context, addr string) int {
	for i, node := range d.nodes {
		var cz struct {
			Connections []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		if !node.Running() || monitorJSON(ctx, node.monitor, "/connz?limit=4096", &cz) != nil {
			continue
		}
		for _, c := range cz.Connections {
			if strings.HasSuffix(c.Name, " "+addr) {
				return i
			}
		}
	}
	return -1
}

// placement says which hub node each process (and the edge's leaf link) is
// connected to, and which leads the EVENTS stream: "n1: api-1 gateway-a; n2: …".
func (d *deployment) placement(ctx context.Context) string {
	names := map[string]string{}
	for _, s := range append(append([]*service{d.writer}, d.apis[:]...), d.gateways...) {
		if s != nil {
			names[s.addr] = s.name
		}
	}
	var parts []string
	leader, _ := d.streamLeader(ctx)
	for i, node := range d.nodes {
		var here []string
		if i == leader {
			here = append(here, "EVENTS leader")
		}
		var cz struct {
			Connections []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		if !node.Running() {
			here = append(here, "down")
		} else if monitorJSON(ctx, node.monitor, "/connz?limit=4096", &cz) == nil {
			for _, c := range cz.Connections {
				if f := strings.Fields(c.Name); len(f) == 3 && f[0] == "guildhall" && names[f[2]] != "" {
					here = append(here, names[f[2]])
				}
			}
			var lz leafz
			if monitorJSON(ctx, node.monitor, "/leafz", &lz) == nil && len(lz.Leafs) > 0 {
				here = append(here, "edge leaf link")
			}
		}
		parts = append(parts, node.server+": "+strings.Join(here, " "))
	}
	return strings.Join(parts, "; ")
}

// streamLeader returns the index of the node leading the EVENTS stream.
func (d *deployment) streamLeader(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := d.operatorJS.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return -1, err
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return -1, errors.New("EVENTS has no leader")
	}
	for i, n := range d.nodes {
		if n.server == info.Cluster.Leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("EVENTS led by unknown server %q", info.Cluster.Leader)
}

// awaitLeader waits up to leaderWait for the EVENTS stream to have a leader.
func (d *deployment) awaitLeader(ctx context.Context) (int, error) {
	i := -1
	err := waitFor(ctx, leaderWait, func() (err error) {
		i, err = d.streamLeader(ctx)
		return err
	})
	return i, err
}

// partition cuts every route of node i, both ways, or heals them.
func (d *deployment) partition(i int, cut bool) {
	for j := range 3 {
		if i == j {
			continue
		}
		for _, p := range []*proxy{d.routes[i][j], d.routes[j][i]} {
			if cut {
				p.Cut()
			} else {
				p.Heal()
			}
		}
	}
}

// cutLeaf cuts the edge site's link to the hub, or heals it.
func (d *deployment) cutLeaf(cut bool) {
	for _, p := range d.leafs {
		if cut {
			p.Cut()
		} else {
			p.Heal()
		}
	}
}

// processes lists every child process, the NATS nodes last (the others need
// them to shut down).
func (d *deployment) processes() []*process {
	var ps []*process
	for _, g := range d.gateways {
		ps = append(ps, g.process)
	}
	for _, a := range d.apis {
		if a != nil {
			ps = append(ps, a.process)
		}
	}
	if d.writer != nil {
		ps = append(ps, d.writer.process)
	}
	if d.edge != nil {
		ps = append(ps, d.edge.process)
	}
	for _, n := range d.nodes {
		if n != nil {
			ps = append(ps, n.process)
		}
	}
	return ps
}

// healAll undoes whatever a fault left: proxies healed, stopped processes
// continued, dead ones started again.
func (d *deployment) healAll(ctx context.Context) error {
	for i := range 3 {
		d.partition(i, false)
	}
	d.cutLeaf(false)
	var errs []error
	for _, p := range d.processes() {
		p.Signal(syscall.SIGCONT)
	}
	// NATS first, then what connects to it.
	ps := d.processes()
	for i := len(ps) - 1; i >= 0; i-- {
		if !ps[i].Running() {
			errs = append(errs, ps[i].Start(ctx))
		}
	}
	return errors.Join(errs...)
}

// Close stops every process and proxy.
func (d *deployment) Close() {
	if d.operator != nil {
		d.operator.Close()
	}
	var wg sync.WaitGroup
	ps := d.processes()
	// Guildhall processes first, together; then the NATS nodes.
	nats := map[*process]bool{}
	for _, n := range d.nodes {
		if n != nil {
			nats[n.process] = true
		}
	}
	if d.edge != nil {
		nats[d.edge.process] = true
	}
	for _, group := range []bool{false, true} {
		for _, p := range ps {
			if nats[p] == group {
				wg.Add(1)
				go func() { defer wg.Done(); p.Stop(5 * time.Second) }()
			}
		}
		wg.Wait()
	}
	for i := range 3 {
		for j := range 3 {
			if d.routes[i][j] != nil {
				d.routes[i][j].Close()
			}
		}
		if d.leafs[i] != nil {
			d.leafs[i].Close()
		}
	}
}

// waitFor calls f until it returns nil or total passes.
func waitFor(ctx context.Context, total time.Duration, f func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
