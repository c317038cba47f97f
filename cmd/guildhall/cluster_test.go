package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
)

// The tests in this file run Guildhall as a tier: a 3-node NATS cluster in the
// test process, the api and writer in the test process, and gateways as child
// processes of the real binary, which a test can kill with SIGKILL.

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

func guildhallBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "guildhall-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "guildhall")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// gatewayProcess is `guildhall serve --role gateway` in a child process.
type gatewayProcess struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startGatewayProcess(t *testing.T, natsURL, creds string, extra ...string) *gatewayProcess {
	t.Helper()
	args := append([]string{"serve", "--role", "gateway", "--nats-url", natsURL, "--nats-creds", creds, "--addr", "127.0.0.1:0",
		"--data", t.TempDir(), "--drain", "500ms", "--log-level", "warn", "--replicas", "3", "--identify-concurrency", "64",
		"--gateway-max-conns-per-addr", "-1"}, extra...) // every test client is 127.0.0.1
	cmd := exec.Command(guildhallBinary(t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gatewayProcess{cmd: cmd, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "guildhall: listening on http://"); ok {
				addrCh <- strings.Fields(rest)[0]
			} else if testing.Verbose() {
				t.Log("gateway:", line)
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(syscall.SIGKILL) })
	select {
	case p.addr = <-addrCh:
	case <-p.done:
		t.Fatal("gateway process exited at start")
	case <-time.After(60 * time.Second):
		t.Fatal("gateway process did not start in 60s")
	}
	return p
}

func (p *gatewayProcess) url() string { return "ws://" + p.addr + "/?v=10&encoding=json" }

func (p *gatewayProcess) kill(sig syscall.Signal) {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// durableSession is a client session that resumes on another gateway when its
// connection ends, keeping every connection's payloads in order.
type durableSession struct {
	token     string
	sessionID string
	conns     []*testenv.GatewayClient
}

func (d *durableSession) current() *testenv.GatewayClient { return d.conns[len(d.conns)-1] }

// messages returns the content of every MESSAGE_CREATE received, across
// connections, in the order received.
func (d *durableSession) messages() []string {
	var out []string
	for _, c := range d.conns {
		for _, p := range c.Dispatches("MESSAGE_CREATE") {
			var m message
			_ = jsonUnmarshal(p.D, &m)
			out = append(out, m.Content)
		}
	}
	return out
}

func (d *durableSession) lastSeq() uint64 {
	var s uint64
	for _, c := range d.conns {
		s = max(s, c.LastSeq())
	}
	return s
}

// tierFixture is a cluster, an in-process api+writer and a guild of users.
type tierFixture struct {
	cluster *testenv.Cluster
	api     *stack
	owner   string
	g1, g2  guildChan
	users   []string // tokens
}

type guildChan struct{ guild, channel string }

func newTier(t *testing.T, users int, extra ...string) *tierFixture {
	t.Helper()
	tf := &tierFixture{cluster: testenv.StartCluster(t, 3, natsTopologyForTests())}
	tf.api = startStack(t, t.TempDir(), append([]string{"--role", "api,writer", "--nats-url", tf.cluster.URLs[0], "--nats-creds", tf.cluster.Creds, "--replicas", "3"}, extra...)...)
	tf.owner, _ = tf.api.rest.Register(t, "owner"+randName())
	tf.g1 = tf.createGuild(t, "one")
	tf.g2 = tf.createGuild(t, "two")
	for i := range users {
		tok, _ := tf.api.rest.Register(t, fmt.Sprintf("u%d%s", i, randName()))
		tf.users = append(tf.users, tok)
		tf.join(t, tf.g1, tok)
		if i%2 == 0 {
			tf.join(t, tf.g2, tok)
		}
	}
	return tf
}

func (tf *tierFixture) createGuild(t *testing.T, name string) guildChan {
	var g struct{ ID string }
	tf.api.rest.Must(t, http.StatusCreated, "POST", "/guilds", tf.owner, map[string]string{"name": name}, &g)
	var chans []struct{ ID string }
	tf.api.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", tf.owner, nil, &chans)
	return guildChan{guild: g.ID, channel: chans[0].ID}
}

func (tf *tierFixture) join(t *testing.T, g guildChan, token string) {
	var inv struct{ Code string }
	tf.api.rest.Must(t, http.StatusOK, "POST", "/channels/"+g.channel+"/invites", tf.owner, map[string]any{}, &inv)
	tf.api.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, token, nil, nil)
}

// A gateway dies without goodbye (SIGKILL: every connection cut) while messages
// flow to 1,000 sessions on two gateways; its sessions resume on the other one.
// Per guild, every session has every message exactly once and in order. The same
// with SIGTERM, where the dying gateway first asks its sessions to reconnect.
func TestGatewayDeathSessionsResumeElsewhere(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { testGatewayDeath(t, sig) })
	}
}

func testGatewayDeath(t *testing.T, sig syscall.Signal) {
	const users, perUser = 100, 10 // 1,000 sessions
	tf := newTier(t, users)
	gwA := startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds)
	gwB := startGatewayProcess(t, tf.cluster.URLs[2], tf.cluster.Creds)

	var sessions []*durableSession
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i, tok := range tf.users {
		for j := range perUser {
			url := gwA.url()
			if (i*perUser+j)%2 == 1 {
				url = gwB.url()
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c := testenv.DialGateway(t, url)
				ready := c.Identify(tok)
				var r struct {
					SessionID string `json:"session_id"`
				}
				_ = jsonUnmarshal(ready.D, &r)
				mu.Lock()
				sessions = append(sessions, &durableSession{token: tok, sessionID: r.SessionID, conns: []*testenv.GatewayClient{c}})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	// Every session has its GUILD_CREATEs before messages start.
	for _, d := range sessions {
		testenv.Eventually(t, 30*time.Second, func() error {
			if n := len(d.current().Dispatches("GUILD_CREATE")); n < 1 {
				return fmt.Errorf("%d GUILD_CREATE", n)
			}
			return nil
		})
	}

	var sent1, sent2 []string
	const total = 60
	for i := range total {
		c1 := fmt.Sprintf("g1-%03d", i)
		tf.api.post(t, tf.owner, tf.g1.channel, c1)
		sent1 = append(sent1, c1)
		if i%2 == 0 {
			c2 := fmt.Sprintf("g2-%03d", i)
			tf.api.post(t, tf.owner, tf.g2.channel, c2)
			sent2 = append(sent2, c2)
		}
		if i == total/3 {
			gwA.kill(sig)
		}
		if i > total/3 {
			// Sessions whose connection ended resume on gateway B, as a client would.
			for _, d := range sessions {
				if d.current().Closed() && len(d.conns) < 5 {
					c, err := testenv.TryDialGateway(t, gwB.url())
					if err != nil {
						continue
					}
					c.WaitFor(t, "op:10", 10*time.Second)
					if err := c.Resume(d.token, d.sessionID, d.lastSeq()); err != nil {
						t.Fatal(err)
					}
					d.conns = append(d.conns, c)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The rest resume after the messages stopped.
	testenv.Eventually(t, 60*time.Second, func() error {
		open := 0
		for _, d := range sessions {
			if d.current().Closed() {
				c, err := testenv.TryDialGateway(t, gwB.url())
				if err != nil {
					return err
				}
				c.WaitFor(t, "op:10", 10*time.Second)
				_ = c.Resume(d.token, d.sessionID, d.lastSeq())
				d.conns = append(d.conns, c)
			}
			if !d.current().Closed() {
				open++
			}
		}
		if open != len(sessions) {
			return fmt.Errorf("%d of %d sessions open", open, len(sessions))
		}
		return nil
	})

	member2 := map[string]bool{}
	for i, tok := range tf.users {
		member2[tok] = i%2 == 0
	}
	resumed := 0
	for _, d := range sessions {
		want := append([]string(nil), sent1...)
		if member2[d.token] {
			want = mergeByIndex(sent1, sent2)
		}
		testenv.Eventually(t, 60*time.Second, func() error {
			if got := d.messages(); len(got) < len(want) {
				return fmt.Errorf("session %s has %d of %d messages", d.sessionID, len(got), len(want))
			}
			return nil
		})
		got := d.messages()
		if g1 := filterPrefix(got, "g1-"); strings.Join(g1, ",") != strings.Join(sent1, ",") {
			t.Fatalf("session %s guild one got %v\nwant %v", d.sessionID, g1, sent1)
		}
		wantG2 := sent2
		if !member2[d.token] {
			wantG2 = nil
		}
		if g2 := filterPrefix(got, "g2-"); strings.Join(g2, ",") != strings.Join(wantG2, ",") {
			t.Fatalf("session %s guild two got %v\nwant %v", d.sessionID, g2, wantG2)
		}
		if len(d.conns) > 1 {
			resumed++
			if len(d.conns[len(d.conns)-1].Dispatches("RESUMED")) != 1 {
				t.Fatalf("session %s did not get RESUMED on its last connection", d.sessionID)
			}
		}
	}
	if resumed < len(sessions)/2 {
		t.Fatalf("only %d sessions resumed; want every session of the dead gateway (%d)", resumed, len(sessions)/2)
	}
	t.Logf("%d sessions, %d resumed on the other gateway after %v", len(sessions), resumed, sig)
}

// The NATS node a gateway is connected to stops: the gateway moves to another node
// and its sessions lose nothing.
func TestNATSNodeStopGatewayMoves(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	tf := newTier(t, 10)
	// The gateway knows nodes 1 and 2, never the api's node 0.
	gw := startGatewayProcess(t, tf.cluster.URLs[1]+","+tf.cluster.URLs[2], tf.cluster.Creds)
	var sessions []*durableSession
	for _, tok := range tf.users {
		c := testenv.DialGateway(t, gw.url())
		c.Identify(tok)
		c.WaitFor(t, "GUILD_CREATE", 10*time.Second)
		sessions = append(sessions, &durableSession{token: tok, conns: []*testenv.GatewayClient{c}})
	}
	node := -1
	testenv.Eventually(t, 10*time.Second, func() error {
		for i := 1; i <= 2; i++ {
			cz, err := tf.cluster.Nodes[i].Connz(nil)
			if err != nil {
				return err
			}
			for _, c := range cz.Conns {
				if strings.HasPrefix(c.Name, "guildhall gateway") {
					node = i
					return nil
				}
			}
		}
		return fmt.Errorf("gateway connection not found")
	})
	var sent []string
	for i := range 40 {
		c := fmt.Sprintf("g1-%03d", i)
		tf.api.post(t, tf.owner, tf.g1.channel, c)
		sent = append(sent, c)
		if i == 10 {
			tf.cluster.Stop(node)
		}
		time.Sleep(25 * time.Millisecond)
	}
	for _, d := range sessions {
		testenv.Eventually(t, 60*time.Second, func() error {
			if got := d.messages(); len(got) < len(sent) {
				return fmt.Errorf("%d of %d messages", len(got), len(sent))
			}
			return nil
		})
		if d.current().Closed() {
			t.Fatal("a session was disconnected; the gateway should have kept it")
		}
		if got := d.messages(); strings.Join(got, ",") != strings.Join(sent, ",") {
			t.Fatalf("got %v\nwant %v", got, sent)
		}
	}
}

// A session that stays away past the resume window gets INVALID_SESSION, identifies
// again and finds what it missed in history.
func TestResumePastWindow(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	tf := newTier(t, 1, "--resume-window", "2s")
	gw := startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds)
	tok := tf.users[0]
	c := testenv.DialGateway(t, gw.url())
	ready := c.Identify(tok)
	var r struct {
		SessionID string `json:"session_id"`
	}
	_ = jsonUnmarshal(ready.D, &r)
	c.WaitFor(t, "GUILD_CREATE", 10*time.Second)
	seq := c.LastSeq()
	c.Drop()
	missed := tf.api.post(t, tf.owner, tf.g1.channel, "while away")

	reg, err := registry.Open(context.Background(), tf.cluster.JS)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway notices the drop: the window runs from then.
	var left time.Time
	testenv.Eventually(t, 30*time.Second, func() error {
		e, err := reg.Get(context.Background(), r.SessionID)
		if err != nil {
			return err
		}
		if left = e.DisconnectedAt; left.IsZero() {
			return fmt.Errorf("session %s not marked disconnected", r.SessionID)
		}
		return nil
	})
	time.Sleep(time.Until(left.Add(reg.Window() + time.Second)))
	c2 := testenv.DialGateway(t, gw.url())
	c2.WaitFor(t, "op:10", 10*time.Second)
	_ = c2.Resume(tok, r.SessionID, seq)
	inv := c2.WaitFor(t, "op:9", 10*time.Second)
	if string(inv.D) != "false" {
		t.Fatalf("INVALID_SESSION d = %s; want false", inv.D)
	}
	c2.Identify(tok)
	var hist []message
	tf.api.rest.Must(t, http.StatusOK, "GET", "/channels/"+tf.g1.channel+"/messages", tok, nil, &hist)
	if len(hist) == 0 || hist[0].ID != missed.ID {
		t.Fatalf("history = %+v; want %s first", hist, missed.ID)
	}
}

func filterPrefix(xs []string, p string) []string {
	var out []string
	for _, x := range xs {
		if strings.HasPrefix(x, p) {
			out = append(out, x)
		}
	}
	return out
}

func mergeByIndex(a, b []string) []string { return append(append([]string(nil), a...), b...) }

// A session resumed on another gateway while its old connection still looks alive
// (a half-open socket) is closed on the old gateway, so it is never served twice.
func TestResumeElsewhereClosesTheOldConnection(t *testing.T) {
	tf := newTier(t, 1)
	gwA := startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds)
	gwB := startGatewayProcess(t, tf.cluster.URLs[2], tf.cluster.Creds)
	tok := tf.users[0]
	old := testenv.DialGateway(t, gwA.url())
	ready := old.Identify(tok)
	var r struct {
		SessionID string `json:"session_id"`
	}
	_ = jsonUnmarshal(ready.D, &r)
	old.WaitFor(t, "GUILD_CREATE", 10*time.Second)

	// Resume on B as a client does: a 4000 ("try again", e.g. the api slow on a
	// loaded machine) means reconnect and resume again.
	var c *testenv.GatewayClient
	for attempt := 0; ; attempt++ {
		c = testenv.DialGateway(t, gwB.url())
		c.WaitFor(t, "op:10", 10*time.Second)
		if err := c.Resume(tok, r.SessionID, old.LastSeq()); err != nil {
			t.Fatal(err)
		}
		_, err := waitDispatch(c, "RESUMED", 20*time.Second)
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("no RESUMED after %d attempts: %v", attempt+1, err)
		}
	}
	if code, err := old.WaitClose(10 * time.Second); err != nil || code != 4000 {
		t.Fatalf("old connection: close code %d, %v; want 4000", code, err)
	}
	m := tf.api.post(t, tf.owner, tf.g1.channel, "only once")
	got := c.WaitFor(t, "MESSAGE_CREATE", 10*time.Second)
	if decode[message](t, got.D).ID != m.ID {
		t.Fatalf("MESSAGE_CREATE = %s", got.D)
	}
}

// waitDispatch is GatewayClient.WaitFor returning the error (a closed connection)
// instead of failing the test, for tests that retry as a client would.
func waitDispatch(c *testenv.GatewayClient, name string, timeout time.Duration) (testenv.Payload, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.Next(time.Until(deadline))
		if err != nil {
			return p, err
		}
		if p.T == name {
			return p, nil
		}
	}
}
