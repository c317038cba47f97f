package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats-server/v2/server"
)

// startNATSProcess runs `guildhall nats` in a child process and waits until it
// listens; it is killed at cleanup.
func startNATSProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(guildhallBinary(t), append([]string{"nats"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(up)
			} else if testing.Verbose() {
				t.Log("nats:", sc.Text())
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(30 * time.Second):
		t.Fatal("guildhall nats did not start in 30s")
	}
	return cmd
}

// leafOutMsgs is what the hub's nodes have sent over their leaf links.
func leafOutMsgs(t *testing.T, nodes []*server.Server) (links int, out int64) {
	t.Helper()
	for _, n := range nodes {
		lz, err := n.Leafz(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lz.Leafs {
			links++
			out += l.OutMsgs
		}
	}
	return links, out
}

// An edge site: a central 3-node cluster with JetStream domain "hub" and a leaf
// port on every node, and a site with its own leaf node (`guildhall nats
// --leaf-remotes` with the three hub URLs, no JetStream) and two gateways that
// use the hub's JetStream through the domain. Sessions on both site gateways get
// every message once and in order, and each message crosses the leaf link once,
// not once per site gateway: the hub's leaf counters grow by about the number of
// messages.
func TestEdgeSiteMessageCrossesLeafOnce(t *testing.T) {
	testenv.SkipShort(t, "cluster and edge processes")
	leafPorts := freeTCPPorts(t, 3)
	cluster := testenv.StartClusterWith(t, 3, natsTopologyForTests(), func(i int, cfg *ghnats.ServerConfig) {
		cfg.JetStreamDomain = "hub"
		cfg.LeafPort = leafPorts[i]
	})
	api := startStack(t, t.TempDir(), "--role", "api,writer", "--nats-url", cluster.URL(), "--nats-creds", cluster.Creds, "--replicas", "3")

	var remotes []string
	for _, p := range leafPorts {
		remotes = append(remotes, fmt.Sprintf("nats-leaf://127.0.0.1:%d", p))
	}
	edgePort := freeTCPPorts(t, 1)[0]
	startNATSProcess(t, "--name", "edge", "--port", itoa(edgePort), "--data", t.TempDir(), "--creds", cluster.Creds,
		"--leaf-remotes", strings.Join(remotes, ","))
	testenv.Eventually(t, 20*time.Second, func() error {
		if links, _ := leafOutMsgs(t, cluster.Nodes); links != 1 {
			return fmt.Errorf("%d leaf links to the hub; want 1", links)
		}
		return nil
	})
	edgeURL := fmt.Sprintf("nats://127.0.0.1:%d", edgePort)
	gw1 := startGatewayProcess(t, edgeURL, cluster.Creds, "--nats-js-domain", "hub")
	gw2 := startGatewayProcess(t, edgeURL, cluster.Creds, "--nats-js-domain", "hub")

	owner, _ := api.rest.Register(t, "owner"+randName())
	var g struct{ ID string }
	api.rest.Must(t, http.StatusCreated, "POST", "/guilds", owner, map[string]string{"name": "edge"}, &g)
	var chans []struct{ ID string }
	api.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", owner, nil, &chans)
	channel := chans[0].ID
	var inv struct{ Code string }
	api.rest.Must(t, http.StatusOK, "POST", "/channels/"+channel+"/invites", owner, map[string]any{}, &inv)

	const perGateway = 5
	var clients []*testenv.GatewayClient
	for i := range 2 * perGateway {
		tok, _ := api.rest.Register(t, fmt.Sprintf("edge%d%s", i, randName()))
		api.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, tok, nil, nil)
		gw := gw1
		if i%2 == 1 {
			gw = gw2
		}
		c := testenv.DialGateway(t, gw.url())
		c.Identify(tok)
		c.WaitFor(t, "GUILD_CREATE", 20*time.Second)
		clients = append(clients, c)
	}
	// A first message reaches every session: interest has crossed the link.
	first := api.post(t, owner, channel, "warm-up")
	for _, c := range clients {
		testenv.Eventually(t, 20*time.Second, func() error {
			for _, p := range c.Dispatches("MESSAGE_CREATE") {
				if decode[message](t, p.D).ID == first.ID {
					return nil
				}
			}
			return fmt.Errorf("warm-up message not received")
		})
	}

	const n = 200
	_, before := leafOutMsgs(t, cluster.Nodes)
	var sent []string
	for i := range n {
		sent = append(sent, api.post(t, owner, channel, fmt.Sprintf("edge-%03d", i)).Content)
	}
	want := strings.Join(sent, ",")
	for i, c := range clients {
		testenv.Eventually(t, 30*time.Second, func() error {
			var got []string
			for _, p := range c.Dispatches("MESSAGE_CREATE") {
				if m := decode[message](t, p.D); strings.HasPrefix(m.Content, "edge-") {
					got = append(got, m.Content)
				}
			}
			if len(got) < n {
				return fmt.Errorf("session %d: %d of %d messages", i, len(got), n)
			}
			if g := strings.Join(got, ","); g != want {
				t.Fatalf("session %d got %s\nwant %s", i, g, want)
			}
			return nil
		})
	}
	_, after := leafOutMsgs(t, cluster.Nodes)
	crossed := after - before
	t.Logf("%d messages to %d sessions on 2 site gateways: %d messages crossed the leaf link", n, len(clients), crossed)
	// Each message once, plus what else the site's gateways asked of the hub
	// meanwhile (JetStream and api replies): far below a second copy each.
	if crossed < n || crossed >= n+n/2 {
		t.Fatalf("%d messages crossed the leaf link for %d messages to 2 site gateways; want about %d (once per site)", crossed, n, n)
	}
}

func freeTCPPorts(t *testing.T, n int) []int {
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
