package nats_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func jsOf(t *testing.T, url string, h *testenv.Harness, files ghnats.TLSFiles) jetstream.JetStream {
	t.Helper()
	nc, js, err := ghnats.Connect(url, "tls-harness", append(h.Options(), natsgo.RootCAs(files.CA))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func startServer(t *testing.T, cfg ghnats.ServerConfig) *server.Server {
	t.Helper()
	s, err := ghnats.StartServer(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// A client link with TLS works; a plaintext one is refused, as is TLS without
// credentials.
func TestTLSClientLinks(t *testing.T) {
	h := testenv.NewHarness(t)
	files := testenv.NewTestCA(t)
	s := startServer(t, ghnats.ServerConfig{Name: "tls", Dir: t.TempDir(), Auth: h.Auth(), TLS: files})
	url := s.ClientURL()

	nc, js, err := ghnats.ConnectAs(url, "tls-gateway", ghnats.RoleGateway, ghnats.ClientAuth{Dir: h.Creds, TLS: ghnats.TLSFiles{CA: files.CA}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("TLS client link: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("the server did not require TLS")
	}
	// The link carries JetStream requests (and their replies to the inbox).
	if err := ghnats.Apply(shortCtx(t), jsOf(t, url, h, files), ghnats.Topology{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(shortCtx(t), ghnats.StreamEvents); err != nil {
		t.Fatalf("stream info over TLS: %v", err)
	}

	// Plaintext: the server answers a CONNECT without TLS with an error.
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO = %q, %v; want tls_required", info, err)
	}
	fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"tls_required\":false}\r\nPING\r\n")
	line, err := r.ReadString('\n')
	if err == nil && !strings.HasPrefix(line, "-ERR") {
		t.Fatalf("plaintext CONNECT answered %q; want an error or a closed connection", line)
	}
	// A client that insists on plaintext (no TLS handshake) never connects.
	if nc, err := natsgo.Connect(url, natsgo.Timeout(2*time.Second), natsgo.Nkey("UNUSED", func([]byte) ([]byte, error) { return nil, nil })); err == nil {
		nc.Close()
		t.Fatal("a client without the CA connected")
	}
	// TLS alone is not enough: credentials are still required.
	if nc, err := natsgo.Connect(url, natsgo.RootCAs(files.CA), natsgo.Timeout(2*time.Second)); err == nil || !errors.Is(err, natsgo.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("TLS without credentials: %v; want an authorization violation", err)
	}
}

// Three nodes with TLS on their routes (both ends verified) form a JetStream
// cluster; a fourth node with a valid certificate but another deployment's
// route secret is not let in.
func TestClusterRoutesAuthenticatedOverTLS(t *testing.T) {
	testenv.SkipShort(t, "starts a 3-node cluster")
	h := testenv.NewHarness(t)
	files := testenv.NewTestCA(t)
	clients, routes := freePorts(t, 4), freePorts(t, 4)
	var urls []string
	for _, p := range routes[:3] {
		urls = append(urls, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*server.Server, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		cfg := ghnats.ServerConfig{Name: fmt.Sprintf("n%d", i+1), Port: clients[i], Dir: t.TempDir(), Auth: h.Auth(), TLS: files,
			ClusterName: "tls", ClusterPort: routes[i], Routes: urls}
		go func() {
			s, err := ghnats.StartServer(cfg)
			nodes[i] = s
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, s := range nodes {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	nc, js, err := ghnats.Connect(nodes[0].ClientURL(), "tls-harness", append(h.Options(), natsgo.RootCAs(files.CA))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	testenv.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return ghnats.Apply(ctx, js, ghnats.Topology{Replicas: 3})
	})
	// An event stored on three replicas reaches a gateway on another node.
	gw, _, err := ghnats.ConnectAs(nodes[2].ClientURL(), "tls-gw", ghnats.RoleGateway, ghnats.ClientAuth{Dir: h.Creds, TLS: ghnats.TLSFiles{CA: files.CA}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	sub, err := gw.SubscribeSync(ghnats.GuildEventSubject(5))
	if err != nil {
		t.Fatal(err)
	}
	_ = gw.Flush()
	time.Sleep(200 * time.Millisecond) // the subscription's interest crosses the routes
	if _, err := js.PublishMsg(context.Background(), ghnats.EventMsg(guildhall.Event{Type: "MESSAGE_CREATE", GuildID: 5, Data: []byte(`{}`)}, "r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("event across TLS routes: %v", err)
	}

	routesBefore := nodes[0].NumRoutes()
	other := testenv.NewHarness(t) // another deployment: its own route secret
	intruder := startServer(t, ghnats.ServerConfig{Name: "intruder", Port: clients[3], Dir: t.TempDir(), Auth: other.Auth(), TLS: files,
		ClusterName: "tls", ClusterPort: routes[3], Routes: urls})
	time.Sleep(3 * time.Second)
	if n := intruder.NumRoutes(); n != 0 {
		t.Fatalf("a node with the wrong route secret has %d routes; want 0", n)
	}
	if n := nodes[0].NumRoutes(); n != routesBefore {
		t.Fatalf("node 1 has %d routes after the intruder tried; want %d", n, routesBefore)
	}
}

// An edge site: a leaf node without JetStream signs in to the hub with the leaf
// identity, and a gateway at the edge reads events, the stream and its buckets
// through it, addressing the hub's JetStream by its domain, with no more than a
// gateway's permissions. Without the domain it reaches no JetStream; a leaf
// link with another key is refused.
func TestLeafNodeLinksAsGateway(t *testing.T) {
	h := testenv.NewHarness(t)
	ports := freePorts(t, 3)
	hub := startServer(t, ghnats.ServerConfig{Name: "hub", Dir: t.TempDir(), Auth: h.Auth(), LeafPort: ports[0], JetStreamDomain: "hub"})
	hnc, hjs, err := ghnats.Connect(hub.ClientURL(), "hub-harness", h.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	if err := ghnats.Apply(context.Background(), hjs, ghnats.Topology{}); err != nil {
		t.Fatal(err)
	}
	edge := startServer(t, ghnats.ServerConfig{Name: "edge", Port: ports[1], Dir: t.TempDir(), Auth: h.Auth(),
		LeafRemotes: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", ports[0])}})
	testenv.Eventually(t, 10*time.Second, func() error {
		if hub.NumLeafNodes() != 1 {
			return errors.New("leaf not connected")
		}
		return nil
	})

	var v violations
	edgeAuth := ghnats.ClientAuth{Dir: h.Creds, JSDomain: "hub"}
	gw, gjs, err := ghnats.ConnectAs(edge.ClientURL(), "edge-gw", ghnats.RoleGateway, edgeAuth, v.option())
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	sub, err := gw.SubscribeSync(ghnats.GuildEventSubject(8))
	if err != nil {
		t.Fatal(err)
	}
	_ = gw.Flush()
	_, ajs := testenv.NATSConnectAs(t, hub.ClientURL(), h.Creds, ghnats.RoleAPI)
	// Interest crosses the leaf link asynchronously: publish until it arrives.
	var got *natsgo.Msg
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, err := ajs.PublishMsg(context.Background(), ghnats.EventMsg(guildhall.Event{Type: "MESSAGE_CREATE", GuildID: 8, Data: []byte(`{}`)}, "")); err != nil {
			return err
		}
		m, err := sub.NextMsg(200 * time.Millisecond)
		got = m
		return err
	})
	if got.Header.Get(jetstream.SequenceHeader) == "" {
		t.Fatalf("event through the leaf link without its sequence: %v", got.Header)
	}
	stream, err := gjs.Stream(shortCtx(t), ghnats.StreamEvents)
	if err != nil {
		t.Fatalf("edge gateway reads the hub's stream: %v", err)
	}
	if _, err := stream.GetLastMsgForSubject(shortCtx(t), ghnats.GuildInSubject(8)); err != nil {
		t.Fatalf("edge gateway reads an event from the hub's stream: %v", err)
	}
	kv, err := gjs.KeyValue(shortCtx(t), ghnats.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(shortCtx(t), "edge", []byte("1")); err != nil {
		t.Fatalf("edge gateway writes the sessions bucket: %v", err)
	}
	if e, err := kv.Get(shortCtx(t), "edge"); err != nil || string(e.Value()) != "1" {
		t.Fatalf("edge gateway reads back its key: %v", err)
	}
	last, _ := stream.Info(shortCtx(t))
	if _, err := gjs.Publish(shortCtx(t), ghnats.GuildInSubject(8), []byte(`{}`)); err == nil {
		t.Fatal("edge gateway published an event")
	}
	v.wait(t, "publish", ghnats.GuildInSubject(8))
	if now, _ := stream.Info(shortCtx(t)); now.State.LastSeq != last.State.LastSeq {
		t.Fatal("an event from the edge was stored")
	}
	// What a gateway may not do, it may not do through the domain either.
	if err := gjs.DeleteStream(shortCtx(t), ghnats.StreamEvents); err == nil {
		t.Fatal("edge gateway deleted the stream through the domain")
	}
	v.wait(t, "publish", "$JS.hub.API.STREAM.DELETE."+ghnats.StreamEvents)
	if _, err := stream.Info(shortCtx(t)); err != nil {
		t.Fatalf("stream gone: %v", err)
	}

	// Without the domain, the edge has no JetStream: the leaf link does not
	// carry the unprefixed API (no fallback to the hub's).
	_, plain := testenv.NATSConnectAs(t, edge.ClientURL(), h.Creds, ghnats.RoleGateway)
	if _, err := plain.Stream(shortCtx(t), ghnats.StreamEvents); err == nil {
		t.Fatal("an edge gateway without the domain reached a JetStream")
	}

	// The leaf link itself may not do more than a gateway: a client at the edge
	// with a broader identity (the api's) still cannot publish events into the
	// hub's stream through it, nor purge it through the domain.
	_, ejs := testenv.NATSConnectAs(t, edge.ClientURL(), h.Creds, ghnats.RoleAPI)
	if _, err := ejs.Publish(shortCtx(t), ghnats.GuildInSubject(8), []byte(`{}`)); err == nil {
		t.Fatal("an api identity at the edge stored an event through the leaf link")
	}
	enc, err := ghnats.NewJetStream(ejs.Conn(), "hub")
	if err != nil {
		t.Fatal(err)
	}
	if es, err := enc.Stream(shortCtx(t), ghnats.StreamEvents); err == nil {
		if err := es.Purge(shortCtx(t)); err == nil {
			t.Fatal("an api identity at the edge purged the stream through the leaf link")
		}
	}
	if now, _ := stream.Info(shortCtx(t)); now.State.LastSeq != last.State.LastSeq || now.State.Msgs == 0 {
		t.Fatal("an event from the edge was stored, or the stream purged")
	}

	// Leaf links with the wrong key: another deployment's leaf key, and a role's
	// key (roles connect as clients only).
	other := testenv.NewHarness(t)
	badAuth := h.Auth()
	otherAuth, _ := ghnats.LoadServerAuth(other.Creds)
	badAuth.LeafSeed = otherAuth.LeafSeed
	startServer(t, ghnats.ServerConfig{Name: "edge-bad", Port: ports[2], Dir: t.TempDir(), Auth: badAuth,
		LeafRemotes: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", ports[0])}})
	seed, err := os.ReadFile(ghnats.SeedFile(h.Creds, ghnats.RoleGateway))
	if err != nil {
		t.Fatal(err)
	}
	asGateway := h.Auth()
	asGateway.LeafSeed = strings.TrimSpace(string(seed))
	startServer(t, ghnats.ServerConfig{Name: "edge-gw-key", Port: -1, Dir: t.TempDir(), Auth: asGateway,
		LeafRemotes: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", ports[0])}})
	time.Sleep(2 * time.Second)
	if n := hub.NumLeafNodes(); n != 1 {
		t.Fatalf("hub has %d leaf links; want 1 (links with the wrong key must be refused)", n)
	}
}

// A leaf link over TLS: the edge verifies the hub's certificate with the CA, and
// an edge gateway reaches the hub's stream through it.
func TestLeafLinkOverTLS(t *testing.T) {
	h := testenv.NewHarness(t)
	files := testenv.NewTestCA(t)
	leafPort := freePorts(t, 1)[0]
	hub := startServer(t, ghnats.ServerConfig{Name: "hub", Dir: t.TempDir(), Auth: h.Auth(), TLS: files, LeafPort: leafPort, JetStreamDomain: "hub"})
	if err := ghnats.Apply(shortCtx(t), jsOf(t, hub.ClientURL(), h, files), ghnats.Topology{}); err != nil {
		t.Fatal(err)
	}
	edge := startServer(t, ghnats.ServerConfig{Name: "edge", Dir: t.TempDir(), Auth: h.Auth(), TLS: files,
		LeafRemotes: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort)}})
	testenv.Eventually(t, 10*time.Second, func() error {
		if hub.NumLeafNodes() != 1 {
			return errors.New("leaf not connected")
		}
		return nil
	})
	gnc, gjs, err := ghnats.ConnectAs(edge.ClientURL(), "edge-gw", ghnats.RoleGateway, ghnats.ClientAuth{Dir: h.Creds, TLS: ghnats.TLSFiles{CA: files.CA}, JSDomain: "hub"})
	if err != nil {
		t.Fatal(err)
	}
	defer gnc.Close()
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := gjs.Stream(shortCtx(t), ghnats.StreamEvents)
		return err
	})
	// Without the CA the edge cannot verify the hub: no link.
	noCA := files
	noCA.CA = ""
	if _, err := ghnats.StartServer(ghnats.ServerConfig{Name: "edge-no-ca", Dir: t.TempDir(), Auth: h.Auth(), TLS: noCA,
		LeafRemotes: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort)}}); err == nil {
		t.Fatal("a TLS leaf node started without the CA to verify the hub")
	}
}
