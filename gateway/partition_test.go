package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	"github.com/guildhall/guildhall/messaging"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// Partitions between a gateway's NATS server and the stream while the gateway's
// own connection stays up: the server misses events, and no reconnect tells the
// gateway. In a quiet guild no later event shows the gap either. A session that
// stays connected must still get every event of the partition, once and in
// order, without waiting for another event; a session that resumes on that
// gateway or on another one must be replayed every one of them, and RESUMED must
// not claim more than was delivered.

// How long a partition lasts. The scenario is 15 s; the variants that
// isolate one detection path use less, which is still longer than what they rule
// out (a beacon that stops after 2 s, a probe every second).
const (
	partitionFor      = 15 * time.Second
	shortPartitionFor = 5 * time.Second
)

// detection selects how the near gateway may learn of the gap: the api's guild
// beacon, its own path probe, or both (the default deployment).
type detection struct {
	name      string
	noBeacon  bool
	beacon    messaging.BeaconConfig
	pathProbe time.Duration
	cutFor    time.Duration
	by        string // the gaps_noticed_total label expected to count; "" for either
}

var detections = []detection{
	// As deployed: whichever notices first.
	{name: "default", cutFor: partitionFor},
	// The beacon alone: the probe runs too seldom to matter.
	{name: "beacon", pathProbe: time.Hour, cutFor: shortPartitionFor, by: "heartbeat"},
	// The probe alone: no beacon at all.
	{name: "probe", noBeacon: true, pathProbe: time.Second, cutFor: shortPartitionFor, by: "probe"},
}

// partitionScene is a stack whose near gateway sits behind a link the test can
// cut, and whose far gateway is on the stream's side.
type partitionScene struct {
	st        *presenceStack
	near, far *stackGateway
	cut, heal func()
}

// An edge site: its own nats-server joined to the hub as a leaf node through a
// proxy, with its own gateway; the leaf link is cut.
func TestLeafLinkCutInQuietGuild(t *testing.T) {
	testenv.SkipShort(t, "partitions last seconds")
	for _, d := range detections {
		t.Run(d.name, func(t *testing.T) {
			site := testenv.StartLeafSite(t, ghnats.Topology{EventMaxBytes: 256 << 20})
			testQuietGuildPartition(t, d, func(o stackOptions) partitionScene {
				o.on = &stackServers{creds: site.Hub.Creds, api: site.Hub.URL, gateways: []string{site.LeafURL}, jsDomain: site.Domain}
				st := startPresenceStack(t, o)
				far := st.addGatewayOn(site.Hub.URL, "gw-hub", fastPresence)
				return partitionScene{st: st, near: st.gws[0], far: far, cut: site.Cut, heal: site.Heal}
			})
		})
	}
}

// A 3-node cluster whose routes go through proxies: the node the near gateway
// is connected to is cut off from the other two (it is not the stream's leader,
// so the stream goes on without it).
func TestRoutePartitionInQuietGuild(t *testing.T) {
	testenv.SkipShort(t, "partitions last seconds")
	for _, d := range detections {
		t.Run(d.name, func(t *testing.T) {
			c := testenv.StartPartitionableCluster(t, 3, ghnats.Topology{EventMaxBytes: 256 << 20})
			isolated, other := nonLeaders(t, c)
			testQuietGuildPartition(t, d, func(o stackOptions) partitionScene {
				o.on = &stackServers{creds: c.Creds, api: c.URLs[other], gateways: []string{c.URLs[isolated]}}
				st := startPresenceStack(t, o)
				far := st.addGatewayOn(c.URLs[other], "gw-far", fastPresence)
				return partitionScene{st: st, near: st.gws[0], far: far,
					cut: func() { c.Isolate(isolated) }, heal: func() { c.Rejoin(isolated) }}
			})
		})
	}
}

// nonLeaders picks a node that leads neither the EVENTS stream nor the
// JetStream meta group (isolated), and another node that does not lead the
// stream either (other), for the api and the far gateway.
func nonLeaders(t *testing.T, c *testenv.Cluster) (isolated, other int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var leader string
	testenv.Eventually(t, 30*time.Second, func() error {
		s, err := c.JS.Stream(ctx, ghnats.StreamEvents)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("no stream leader yet")
		}
		leader = info.Cluster.Leader
		return nil
	})
	isolated, other = -1, -1
	for i, s := range c.Nodes {
		switch {
		case s.Name() == leader:
		case isolated < 0 && !s.JetStreamIsLeader():
			isolated = i
		case other < 0:
			other = i
		}
	}
	if isolated < 0 || other < 0 {
		t.Fatalf("no node to isolate (stream leader %s)", leader)
	}
	return isolated, other
}

// testQuietGuildPartition: alice stays connected to the near gateway; bob and
// carol drop before the partition and resume after it, bob on the near gateway,
// carol on the far one. Five messages are posted during the partition and then
// nothing until every client has them; then one more.
func testQuietGuildPartition(t *testing.T, d detection, scene func(stackOptions) partitionScene) {
	users := newSeedUsers(3_100_000, "pt", 4)
	poster, alice, bob, carol := users[0], users[1], users[2], users[3]
	sc := scene(stackOptions{presence: fastPresence, noBeacon: d.noBeacon, beacon: d.beacon, pathProbe: d.pathProbe,
		seed: func(path string) { seedBolt(t, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users}) }})
	st := sc.st
	noticed := func() float64 {
		return counterValue(t, st, "guildhall_gateway_gaps_noticed_total", "by", d.by)
	}
	before := noticed()

	clients := map[string]*partitionClient{}
	for _, u := range []seedUser{alice, bob, carol} {
		c, err := connect(t, sc.near.url, u.Token, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients[u.Name] = &partitionClient{token: u.Token, session: sessionID(t, c), conns: []*testenv.GatewayClient{c}}
	}
	var want []string
	post := func(content string) {
		postMessage(t, st, poster.Token, smallChannel, content)
		want = append(want, content)
	}
	post("before")
	for _, c := range clients {
		c.waitFor(t, want, 10*time.Second)
	}
	bobs, carols := clients[bob.Name], clients[carol.Name]
	bobs.drop()
	carols.drop()

	sc.cut()
	start := time.Now()
	for i := range 5 {
		post(fmt.Sprintf("during %d", i))
	}
	time.Sleep(d.cutFor - time.Since(start))
	// The partition is real: the connected client got nothing of it.
	if got, _ := clients[alice.Name].messages(); len(got) != 1 {
		t.Fatalf("during the partition the connected client received %q", got)
	}
	healed := time.Now()
	sc.heal()

	// Nothing more is posted until every client has the partition's messages.
	alices := clients[alice.Name]
	alicesDelay := make(chan time.Duration, 1)
	go func() {
		for len(alices.current().Dispatches(guildhall.EventMessageCreate)) < len(want) && time.Since(healed) < 30*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		alicesDelay <- time.Since(healed)
	}()
	bobs.resume(t, sc.near.url)
	carols.resume(t, sc.far.url)
	alices.waitFor(t, want, 20*time.Second)
	t.Logf("%s: the connected client had the partition's messages %v after the heal", d.name, (<-alicesDelay).Round(10*time.Millisecond))
	for _, c := range []*partitionClient{bobs, carols} {
		c.waitFor(t, want, 10*time.Second)
	}
	if d.by != "" && noticed() == before {
		t.Errorf("the gap was not noticed by %s", d.by)
	}

	post("after")
	for name, c := range clients {
		c.waitFor(t, want, 10*time.Second)
		c.checkExactlyOnce(t, name, want)
	}
}

// partitionClient is one user's session across its connections.
type partitionClient struct {
	token, session string
	conns          []*testenv.GatewayClient
}

func (c *partitionClient) current() *testenv.GatewayClient { return c.conns[len(c.conns)-1] }

func (c *partitionClient) drop() { c.current().Drop() }

// resume resumes on url, again while the gateway answers "try again" (4000: the
// link may be back before every path through it is).
func (c *partitionClient) resume(t *testing.T, url string) {
	t.Helper()
	seq := c.lastSeq()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn := testenv.DialGateway(t, url)
		conn.WaitFor(t, "op:10", 10*time.Second)
		if err := conn.Resume(c.token, c.session, seq); err != nil {
			t.Fatal(err)
		}
		_, err := waitPayload(conn, "RESUMED", 30*time.Second)
		if err == nil {
			c.conns = append(c.conns, conn)
			return
		}
		code, _ := conn.WaitClose(time.Second)
		if code != gateway.CloseUnknownError || time.Now().After(deadline) {
			t.Fatalf("resume on %s: %v (close %d; payloads %s)", url, err, code, describe(conn.All()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *partitionClient) lastSeq() uint64 {
	var s uint64
	for _, conn := range c.conns {
		s = max(s, conn.LastSeq())
	}
	return s
}

// messages is every MESSAGE_CREATE's content and s across the connections, in
// the order received.
func (c *partitionClient) messages() (contents []string, seqs []uint64) {
	for _, conn := range c.conns {
		for _, p := range conn.Dispatches(guildhall.EventMessageCreate) {
			var m struct{ Content string }
			_ = json.Unmarshal(p.D, &m)
			contents = append(contents, m.Content)
			seqs = append(seqs, p.Seq())
		}
	}
	return contents, seqs
}

func (c *partitionClient) waitFor(t *testing.T, want []string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		got, _ := c.messages()
		if len(got) < len(want) {
			return fmt.Errorf("has %d of %d messages: %v", len(got), len(want), got)
		}
		return nil
	})
}

// checkExactlyOnce: the messages, exactly, in order, each with a larger s than
// the one before (every event keeps its own stream sequence).
func (c *partitionClient) checkExactlyOnce(t *testing.T, name string, want []string) {
	t.Helper()
	got, seqs := c.messages()
	if !slices.Equal(got, want) {
		t.Errorf("%s received %q; want %q exactly once, in order", name, got, want)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Errorf("%s: message %d has s=%d after s=%d", name, i, seqs[i], seqs[i-1])
		}
	}
}

func describe(ps []testenv.Payload) string {
	var b strings.Builder
	for _, p := range ps {
		if p.T != "" {
			fmt.Fprintf(&b, "%s(s=%d) ", p.T, p.Seq())
		} else {
			fmt.Fprintf(&b, "op%d ", p.Op)
		}
	}
	return b.String()
}
