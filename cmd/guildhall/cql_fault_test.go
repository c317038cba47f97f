package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/cql"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// Fault tests of the writer against a real Cassandra (testenv starts one per test
// binary, on first use): NATS embedded in the test, the api (REST) in-process with
// the CQL store, and the writer as a child process of the real binary that the
// tests SIGKILL, or whose database they stop.
//
// The Cassandra server is shared by this binary's tests and started lazily, so
// tests that do not call NeedCassandra never wait for a JVM. With CI=true a server
// that cannot start fails these tests instead of skipping them.
func TestMain(m *testing.M) { os.Exit(testenv.CassandraMain(m, nil)) }

var faultKeyspaceSeq atomic.Int64

// faultKeyspace is a keyspace name no other test of any run on the server uses.
func faultKeyspace() string {
	return fmt.Sprintf("gh_fault_%d_%d", os.Getpid(), faultKeyspaceSeq.Add(1))
}

// cqlTier is NATS in the test process, the api in-process on a fresh keyspace, a
// guild with a few text channels, and what a writer process needs to join.
type cqlTier struct {
	nats     *testenv.NATS
	cass     *testenv.Cassandra
	keyspace string
	api      *stack
	owner    string // token
	ownerID  guildhall.Snowflake
	guild    guildhall.Snowflake
	channels []string
}

func newCQLTier(t *testing.T, channels int) *cqlTier {
	t.Helper()
	c := testenv.NeedCassandra(t)
	ct := &cqlTier{nats: testenv.StartNATS(t, ghnats.Topology{}), cass: c, keyspace: faultKeyspace()}
	// Registered before the api starts, so it runs after the api and the writer have
	// stopped: the server outlives this test (it stops when the binary ends), and a
	// dropped keyspace costs it no compaction while later tests run.
	t.Cleanup(func() { dropKeyspace(t, c, ct.keyspace) })
	begin := time.Now()
	ct.api = startStack(t, t.TempDir(), "--role", "api", "--store", "cql", "--nats-url", ct.nats.URL, "--nats-creds", ct.nats.Creds,
		"--cql-hosts", strings.Join(c.Hosts, ","), "--cql-keyspace", ct.keyspace)
	t.Logf("api on %s, keyspace %s created in %v", ct.api.addr, ct.keyspace, time.Since(begin).Round(time.Millisecond))
	var owner string
	ct.owner, owner = ct.api.rest.Register(t, "owner"+randName())
	ct.ownerID, _ = guildhall.ParseSnowflake(owner)
	var g struct{ ID string }
	ct.api.rest.Must(t, http.StatusCreated, "POST", "/guilds", ct.owner, map[string]string{"name": "faults"}, &g)
	ct.guild, _ = guildhall.ParseSnowflake(g.ID)
	var chans []struct {
		ID   string `json:"id"`
		Type int    `json:"type"`
	}
	ct.api.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", ct.owner, nil, &chans)
	for _, ch := range chans {
		if ch.Type == guildhall.ChannelTypeGuildText {
			ct.channels = append(ct.channels, ch.ID)
		}
	}
	for len(ct.channels) < channels {
		var ch struct{ ID string }
		ct.api.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", ct.owner,
			map[string]any{"name": fmt.Sprintf("extra-%d", len(ct.channels)), "type": guildhall.ChannelTypeGuildText}, &ch)
		ct.channels = append(ct.channels, ch.ID)
	}
	return ct
}

func dropKeyspace(t *testing.T, c *testenv.Cassandra, keyspace string) {
	cl := c.Cluster()
	cl.Timeout = time.Minute
	s, err := cl.CreateSession()
	if err != nil {
		t.Logf("drop keyspace %s: %v", keyspace, err)
		return
	}
	defer s.Close()
	if err := s.Query(`DROP KEYSPACE IF EXISTS "` + keyspace + `"`).Exec(); err != nil {
		t.Logf("drop keyspace %s: %v", keyspace, err)
	}
}

// coldChannel creates a guild over REST and returns its channel, read from the
// store behind the api's back: the api has not served the guild since it
// created it, so its projection does not hold it.
func (ct *cqlTier) coldChannel(t *testing.T) string {
	t.Helper()
	var g struct{ ID string }
	ct.api.rest.Must(t, http.StatusCreated, "POST", "/guilds", ct.owner, map[string]string{"name": "cold"}, &g)
	id, _ := guildhall.ParseSnowflake(g.ID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cql.Open(ctx, cql.Config{Hosts: ct.cass.Hosts, Keyspace: ct.keyspace})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	chs, err := st.Channels(ctx, id)
	if err != nil || len(chs) == 0 {
		t.Fatalf("channels of the cold guild: %v, %v", chs, err)
	}
	return chs[0].ID.String()
}

// writerArgs are the flags of `guildhall serve --role writer` for this tier.
func (ct *cqlTier) writerArgs(dataDir string) []string {
	return []string{"serve", "--role", "writer", "--store", "cql", "--nats-url", ct.nats.URL, "--nats-creds", ct.nats.Creds,
		"--cql-hosts", strings.Join(ct.cass.Hosts, ","), "--cql-keyspace", ct.keyspace,
		"--addr", "127.0.0.1:0", "--data", dataDir, "--log-level", "warn"}
}

// consumer returns the writer's durable consumer info.
func (ct *cqlTier) consumer(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ct.nats.JS.Consumer(ctx, ghnats.StreamEvents, ghnats.ConsumerWriter)
	if err != nil {
		t.Fatalf("writer consumer: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("writer consumer info: %v", err)
	}
	return info
}

// waitDrained waits until the writer's consumer has nothing pending or
// unacknowledged and returns how long that took.
func (ct *cqlTier) waitDrained(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	testenv.Eventually(t, limit, func() error {
		info := ct.consumer(t)
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("writer consumer: %d pending, %d unacknowledged (ack floor %d)",
				info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	return time.Since(begin)
}

// history reads every message of a channel over REST, newest first, paging with
// before= (limit 100).
func (ct *cqlTier) history(t *testing.T, channel string) []message {
	t.Helper()
	var all []message
	before := ""
	for {
		path := "/channels/" + channel + "/messages?limit=100"
		if before != "" {
			path += "&before=" + before
		}
		var page []message
		ct.api.rest.Must(t, http.StatusOK, "GET", path, ct.owner, nil, &page)
		all = append(all, page...)
		if len(page) < 100 {
			return all
		}
		before = page[len(page)-1].ID
	}
}

// checkExactlyOnce reads every channel's history and checks that each acknowledged
// message is there exactly once with its content, that no message appears twice
// (by id, or by content: every post has a unique content), and that history holds
// nothing the test did not send. It returns how many messages history holds.
func (ct *cqlTier) checkExactlyOnce(t *testing.T, acked map[string]string) int {
	t.Helper()
	ids := map[string]int{}
	contents := map[string]string{}
	total := 0
	for _, ch := range ct.channels {
		hist := ct.history(t, ch)
		for i := 1; i < len(hist); i++ {
			a, _ := guildhall.ParseSnowflake(hist[i-1].ID)
			b, _ := guildhall.ParseSnowflake(hist[i].ID)
			if a <= b {
				t.Errorf("channel %s: history not newest first at %d: %s then %s", ch, i, hist[i-1].ID, hist[i].ID)
			}
		}
		for _, m := range hist {
			total++
			ids[m.ID]++
			if prev, dup := contents[m.Content]; dup {
				t.Errorf("content %q is in history twice: ids %s and %s", m.Content, prev, m.ID)
			}
			contents[m.Content] = m.ID
			if !strings.HasPrefix(m.Content, "fault-") {
				t.Errorf("history holds a message the test did not send: %s %q", m.ID, m.Content)
			}
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("message %s is in history %d times", id, n)
		}
	}
	missing := 0
	for id, content := range acked {
		if ids[id] != 1 {
			missing++
			if missing <= 10 {
				t.Errorf("acknowledged message %s (%q) is not in history", id, content)
			}
			continue
		}
		if contents[content] != id {
			t.Errorf("acknowledged message %s: history has content %q under id %s", id, content, contents[content])
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged messages are missing from history", missing, len(acked))
	}
	return total
}

// writerProcess is `guildhall serve --role writer` in a child process.
type writerProcess struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}

	mu    sync.Mutex
	lines []string // the last lines of its stderr
}

func startWriterProcess(t *testing.T, args []string) *writerProcess {
	t.Helper()
	cmd := exec.Command(guildhallBinary(t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &writerProcess{cmd: cmd, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "guildhall: listening on http://"); ok {
				addrCh <- strings.Fields(rest)[0]
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			if len(p.lines) > 40 {
				p.lines = p.lines[len(p.lines)-40:]
			}
			p.mu.Unlock()
		}
	}()
	go func() { <-scanned; _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			if tail := p.tail(); tail != "" {
				t.Logf("writer pid %d stderr (tail):\n%s", cmd.Process.Pid, tail)
			}
		}
	})
	select {
	case p.addr = <-addrCh:
	case <-p.done:
		t.Fatalf("writer process exited at start:\n%s", p.tail())
	case <-time.After(60 * time.Second):
		t.Fatalf("writer process did not start in 60s:\n%s", p.tail())
	}
	return p
}

func (p *writerProcess) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL to the process group and waits for the exit.
func (p *writerProcess) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *writerProcess) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// rss is the process's resident memory (VmRSS) in bytes.
func (p *writerProcess) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.pid())
}

// metric reads one unlabelled metric from the process's /metrics.
func (p *writerProcess) metric(name string) (float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s not in /metrics", name)
}

// posters send messages over REST from several goroutines and remember every
// message acknowledged with 200 and every failure. They do not use t (no FailNow
// outside the test goroutine); the test asserts on what they recorded.
type posters struct {
	base     string
	token    string
	channels []string
	client   *http.Client
	prefix   string

	seq  atomic.Int64
	mu   sync.Mutex
	ack  map[string]string // id -> content
	errs map[string]int    // status (or "transport") -> count
	// windowOK and windowFail count outcomes since the last call of window.
	windowOK, windowFail int

	stop func()
	wg   sync.WaitGroup
}

// startPosters runs workers posting in a loop, each at most perWorker posts a
// second (0: as fast as the api answers).
func startPosters(ct *cqlTier, workers int, perWorker float64) *posters {
	ctx, cancel := context.WithCancel(context.Background())
	p := &posters{
		base: "http://" + ct.api.addr + "/api/v10", token: ct.owner, channels: ct.channels,
		client: &http.Client{Timeout: 20 * time.Second}, prefix: fmt.Sprintf("fault-%d-", time.Now().UnixNano()),
		ack: map[string]string{}, errs: map[string]int{}, stop: cancel,
	}
	for w := range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var tick *time.Ticker
			if perWorker > 0 {
				tick = time.NewTicker(time.Duration(float64(time.Second) / perWorker))
				defer tick.Stop()
			}
			for i := 0; ctx.Err() == nil; i++ {
				if tick != nil {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
				p.postOne(p.channels[(w+i)%len(p.channels)])
			}
		}()
	}
	return p
}

// postOne sends one post; halt lets it finish, so every post the test made ends
// as acknowledged or failed.
func (p *posters) postOne(channel string) {
	content := p.prefix + strconv.FormatInt(p.seq.Add(1), 10)
	body, _ := json.Marshal(map[string]string{"content": content})
	req, _ := http.NewRequest("POST", p.base+"/channels/"+channel+"/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		p.fail("transport")
		return
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.fail(strconv.Itoa(resp.StatusCode))
		return
	}
	var m message
	if err := json.Unmarshal(raw, &m); err != nil || m.ID == "" || m.Content != content {
		p.fail("bad body")
		return
	}
	p.mu.Lock()
	p.ack[m.ID] = content
	p.windowOK++
	p.mu.Unlock()
}

func (p *posters) fail(why string) {
	p.mu.Lock()
	p.errs[why]++
	p.windowFail++
	p.mu.Unlock()
}

// halt stops the workers and waits for the posts in flight to be answered.
func (p *posters) halt() {
	p.stop()
	p.wg.Wait()
}

// window returns the outcomes since the last call.
func (p *posters) window() (ok, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok, failed = p.windowOK, p.windowFail
	p.windowOK, p.windowFail = 0, 0
	return ok, failed
}

func (p *posters) acked() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.ack)
}

func (p *posters) failures() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.errs)
}

// strandedCheck looks into the store behind the writer's back (no read barrier)
// while no writer runs: every guild message the stream has delivered to the
// consumer and that is not in the store must still be unacknowledged (the writer
// acks only after the write), and the unacknowledged ones that are in the store
// are batches whose write landed before the writer died and whose ack did not.
type strandedCheck struct {
	store   *cql.Store
	stream  jetstream.Stream
	scanned uint64                            // stream sequences up to this one are known
	unknown map[uint64]messaging.MessageWrite // message events not yet seen in the store
}

func newStrandedCheck(t *testing.T, ct *cqlTier) *strandedCheck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cql.Open(ctx, cql.Config{Hosts: ct.cass.Hosts, Keyspace: ct.keyspace})
	if err != nil {
		t.Fatalf("open the store of keyspace %s: %v", ct.keyspace, err)
	}
	t.Cleanup(func() { st.Close() })
	stream, err := ct.nats.JS.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return &strandedCheck{store: st, stream: stream, unknown: map[uint64]messaging.MessageWrite{}}
}

// check runs right after a kill. It returns how many delivered message events are
// not in the store, and fails the test if that is more than the consumer's
// unacknowledged count or if one of them is at or below the ack floor.
func (sc *strandedCheck) check(t *testing.T, info *jetstream.ConsumerInfo) (missing int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Messages that stayed unknown at earlier checks: one read each (they are few).
	for seq, w := range sc.unknown {
		if _, err := sc.store.Message(ctx, w.Message.ChannelID, w.Message.ID); err == nil {
			delete(sc.unknown, seq)
		} else if !errors.Is(err, messaging.ErrNotFound) {
			t.Fatalf("store read of message %v: %v", w.Message.ID, err)
		}
	}
	// Messages delivered since the last check: page each channel's history from the
	// newest (nothing newer is written: no writer runs) down past the oldest of them.
	fresh := map[guildhall.Snowflake]map[guildhall.Snowflake]uint64{} // channel -> id -> seq
	oldest := map[guildhall.Snowflake]guildhall.Snowflake{}
	for seq := sc.scanned + 1; seq <= info.Delivered.Stream; seq++ {
		raw, err := sc.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get stream message %d: %v", seq, err)
		}
		ev := ghnats.DecodeEvent(raw.Header, raw.Data)
		if ev.Type != guildhall.EventMessageCreate {
			continue
		}
		var m guildhall.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		if fresh[m.ChannelID] == nil {
			fresh[m.ChannelID] = map[guildhall.Snowflake]uint64{}
		}
		fresh[m.ChannelID][m.ID] = seq
		if o, ok := oldest[m.ChannelID]; !ok || m.ID < o {
			oldest[m.ChannelID] = m.ID
		}
		sc.unknown[seq] = messaging.MessageWrite{Seq: seq, Message: m}
	}
	sc.scanned = max(sc.scanned, info.Delivered.Stream)
	for ch, ids := range fresh {
		q := messaging.HistoryQuery{Limit: 100}
		for {
			page, err := sc.store.History(ctx, ch, q)
			if err != nil {
				t.Fatalf("store history of channel %v: %v", ch, err)
			}
			for _, m := range page {
				if seq, ok := ids[m.ID]; ok {
					delete(sc.unknown, seq)
				}
			}
			if len(page) < q.Limit || page[len(page)-1].ID <= oldest[ch] {
				break
			}
			q.Before = page[len(page)-1].ID
		}
	}
	for seq, w := range sc.unknown {
		missing++
		if seq <= info.AckFloor.Stream {
			t.Errorf("stream message %d (id %v) is acknowledged (ack floor %d) but not in the store", seq, w.Message.ID, info.AckFloor.Stream)
		}
	}
	if missing > info.NumAckPending {
		t.Errorf("%d delivered messages are not in the store but only %d are unacknowledged: the writer acked before writing", missing, info.NumAckPending)
	}
	return missing
}

// The writer process is killed with SIGKILL at random moments, 12 times, while
// messages flow over REST, and started again each time. After each kill, with no
// writer running, every delivered message that is not in the store must still be
// unacknowledged. In the end every message whose POST returned 200 is in history
// exactly once.
func TestCQLWriterSIGKILL(t *testing.T) {
	testenv.SkipShort(t, "fault test against Cassandra")
	const kills = 12
	begin := time.Now()
	ct := newCQLTier(t, 3)
	sc := newStrandedCheck(t, ct)
	args := ct.writerArgs(t.TempDir())
	w := startWriterProcess(t, args)
	p := startPosters(ct, 4, 60) // up to 240 posts/s
	defer p.halt()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	t.Logf("kill schedule seed %d", seed)
	var strandedWritten []int
	for i := range kills {
		// A random moment: from right after start (consumer lookup, first fetch) to
		// well into steady batches.
		d := time.Duration(rng.Int64N(int64(1500*time.Millisecond))) + 20*time.Millisecond
		time.Sleep(d)
		w.kill()
		info := ct.consumer(t)
		missing := sc.check(t, info)
		written := info.NumAckPending - missing
		strandedWritten = append(strandedWritten, written)
		t.Logf("kill %2d after %5v: ack floor %d, delivered up to %d, %d unacknowledged: %d not in the store, %d in it (cumulative until AckWait)",
			i+1, d.Round(time.Millisecond), info.AckFloor.Stream, info.Delivered.Stream, info.NumAckPending, missing, written)
		// Let messages pile up a little before the next writer starts.
		time.Sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
		w = startWriterProcess(t, args)
	}
	time.Sleep(time.Second) // the last writer also runs under load
	p.halt()
	acked := p.acked()
	fails := p.failures()
	t.Logf("%d posts acknowledged, failures %v; writer killed %d times", len(acked), fails, kills)
	if len(fails) > 0 {
		t.Errorf("posts failed while only the writer was killed (the api does not need it): %v", fails)
	}
	if len(acked) < 100 {
		t.Fatalf("only %d posts acknowledged; the test needs messages flowing", len(acked))
	}

	// Until then the consumer's ack floor stays behind them, and the api's read
	// barrier (it polls the ack floor when the writer is not in its process) cannot
	// pass it: recorded, not asserted.
	t0 := time.Now()
	status, _ := ct.api.rest.Do(t, "GET", "/channels/"+ct.channels[0]+"/messages?limit=50", ct.owner, nil, nil)
	t.Logf("history read right after the posts stopped: %d in %v (ack floor %d)", status, time.Since(t0).Round(time.Millisecond), ct.consumer(t).AckFloor.Stream)
	// Batches a killed writer held unacknowledged come back after AckWait (30 s).
	drain := ct.waitDrained(t, 2*time.Minute)
	info := ct.consumer(t)
	t.Logf("drained %v after the posts stopped; consumer: %d deliveries of %d stream messages, ack floor %d",
		drain.Round(time.Millisecond), info.Delivered.Consumer, info.Delivered.Stream, info.AckFloor.Stream)
	total := ct.checkExactlyOnce(t, acked)
	if total != len(acked) {
		t.Errorf("history holds %d messages; want the %d acknowledged posts (no post failed)", total, len(acked))
	}
	t.Logf("history holds %d messages, each acknowledged post once; unacknowledged but already written after each kill %v; test took %v",
		total, strandedWritten, time.Since(begin).Round(time.Second))
}

// directPublisher publishes MESSAGE_CREATE events straight to the stream, exactly as
// the api does after it has authorized a post (same subject, headers, body shape
// and Nats-Msg-Id), with snowflakes from a node it leases. A message is
// acknowledged when JetStream acknowledged the publish, which is when the api
// answers 200. It adds load beyond what REST posting through one api gives.
type directPublisher struct {
	mu   sync.Mutex
	ack  map[string]string
	errs int
	stop func()
	wg   sync.WaitGroup
}

func startDirectPublisher(t *testing.T, ct *cqlTier, perSecond float64, prefix string) *directPublisher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	lease, err := ghnats.AcquireNode(lctx, ct.nats.JS, "fault-test-direct-publisher")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ids := guildhall.NewSnowflakeGeneratorForNode(lease.Node)
	d := &directPublisher{ack: map[string]string{}, stop: cancel}
	author := guildhall.User{ID: ct.ownerID, Username: "owner", Discriminator: "0"}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer lease.Release(context.Background())
		tick := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ch, _ := guildhall.ParseSnowflake(ct.channels[i%len(ct.channels)])
			id := ids.Next()
			m := guildhall.Message{ID: id, ChannelID: ch, GuildID: ct.guild, Author: author,
				Content: prefix + strconv.Itoa(i), Timestamp: id.Time(), Member: &guildhall.Member{Roles: []guildhall.Snowflake{}}}
			data, _ := json.Marshal(m)
			ev := guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: ct.guild, ChannelID: ch, UserID: ct.ownerID, Data: data}
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := ct.nats.JS.PublishMsg(pctx, ghnats.EventMsg(ev, id.String()), jetstream.WithExpectStream(ghnats.StreamEvents))
			pcancel()
			d.mu.Lock()
			if err == nil {
				d.ack[id.String()] = m.Content
			} else if ctx.Err() == nil {
				d.errs++
			}
			d.mu.Unlock()
		}
	}()
	return d
}

func (d *directPublisher) halt() {
	d.stop()
	d.wg.Wait()
}

func (d *directPublisher) acked() (map[string]string, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.ack), d.errs
}

// Cassandra stops (SIGTERM, as an operator would) for at least 30 s while messages
// are published, then starts again on the same data and port. While it is down the
// writer holds its one batch, retries with backoff and acknowledges nothing; the
// stream keeps the backlog and the writer's memory stays flat. When it is back the
// backlog drains and every acknowledged message is in history exactly once. The
// writer's lag gauge shows the backlog while the database is down and 0 after.
//
// Load: REST posts, which the api authorizes from its projection of the event
// stream and so keep succeeding for the whole outage (the guild is warm: the
// api has served it before), and direct publishes to the stream, shaped as the
// api's. Meanwhile history answers 503 saying it is unavailable, and so does a
// post in a guild the api has not served (it must read the store to know it);
// once the database is back history has every acknowledged post.
func TestCQLOutageWriterBacklog(t *testing.T) {
	testenv.SkipShort(t, "fault test against Cassandra")
	const downAtLeast = 30 * time.Second
	const rssLimit = 500 << 20
	begin := time.Now()
	ct := newCQLTier(t, 3)
	if ct.cass.External {
		testenv.Unavailable(t, "Cassandra comes from "+testenv.EnvCQLHosts+"; the test must stop and start it")
	}
	w := startWriterProcess(t, ct.writerArgs(t.TempDir()))
	cold := ct.coldChannel(t)
	p := startPosters(ct, 2, 20) // up to 40 posts/s
	defer p.halt()
	dp := startDirectPublisher(t, ct, 200, fmt.Sprintf("fault-direct-%d-", time.Now().UnixNano()))
	defer dp.halt()

	time.Sleep(3 * time.Second)
	rssBefore, err := w.rss()
	if err != nil {
		t.Fatal(err)
	}
	info := ct.consumer(t)
	t.Logf("before the outage: writer RSS %d MiB, consumer %d pending, %d unacknowledged", rssBefore>>20, info.NumPending, info.NumAckPending)

	stopping := time.Now()
	if err := ct.cass.Stop(); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now() // the JVM has exited
	t.Logf("cassandra stopped (SIGTERM; it drains, then exits) in %v", stopAt.Sub(stopping).Round(time.Millisecond))
	p.window()
	var rssDown, rssBack int64
	var lagMax uint64
	var gaugeDown float64 // the writer's own lag gauge while the database is down
	var okDown, failedDown int
	sample := func(phase string) {
		rss, err := w.rss()
		if err != nil {
			t.Fatalf("writer RSS: %v", err)
		}
		if phase == "down" {
			rssDown = max(rssDown, rss)
		} else {
			rssBack = max(rssBack, rss)
		}
		info := ct.consumer(t)
		lag := info.NumPending + uint64(info.NumAckPending)
		lagMax = max(lagMax, lag)
		gauge, _ := w.metric("guildhall_writer_lag_messages")
		if phase == "down" {
			gaugeDown = max(gaugeDown, gauge)
		}
		ok, failed := p.window()
		if phase == "down" {
			okDown, failedDown = okDown+ok, failedDown+failed
		}
		t.Logf("%-4s %5.1fs: writer RSS %3d MiB, consumer %6d pending %3d unacknowledged (lag gauge %v), REST posts %d ok %d failed",
			phase, time.Since(stopAt).Seconds(), rss>>20, info.NumPending, info.NumAckPending, gauge, ok, failed)
	}
	for time.Since(stopAt) < downAtLeast {
		time.Sleep(2 * time.Second)
		sample("down")
		// History cannot be read: 503, saying so.
		begin := time.Now()
		status, raw := ct.api.rest.Do(t, "GET", "/channels/"+ct.channels[0]+"/messages?limit=10", ct.owner, nil, nil)
		if status != http.StatusServiceUnavailable || !strings.Contains(string(raw), "history") || !strings.Contains(string(raw), `"code":0`) {
			t.Errorf("history while cassandra is down = %d %s; want 503 {code 0} saying history is unavailable", status, raw)
		} else {
			t.Logf("history while cassandra is down: %d in %v", status, time.Since(begin).Round(time.Millisecond))
		}
	}
	// A guild the api has not served: it would need the store to authorize.
	status, raw := ct.api.rest.Do(t, "POST", "/channels/"+cold+"/messages", ct.owner, map[string]string{"content": "fault-cold"}, nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(raw), `"code":0`) {
		t.Errorf("post in a guild the api does not hold while cassandra is down = %d %s; want 503 {code 0}", status, raw)
	}
	// Start blocks until CQL answers; the writer keeps retrying meanwhile.
	startAt := time.Now()
	started := make(chan error, 1)
	go func() { started <- ct.cass.Start() }()
	for waiting := true; waiting; {
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("cassandra did not start again: %v", err)
			}
			waiting = false
		case <-time.After(5 * time.Second):
			sample("down")
		}
	}
	downFor := time.Since(stopAt)
	t.Logf("cassandra back after %v down (from the exit of the JVM; start took %v)", downFor.Round(time.Millisecond), time.Since(startAt).Round(time.Millisecond))

	// Load goes on: the backlog drains until the lag is what the load alone makes.
	backAt := time.Now()
	drained := time.Duration(0)
	deadline := time.Now().Add(3 * time.Minute)
	for drained == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("writer lag did not drain within 3 minutes of cassandra's return:\n%s", w.tail())
		}
		time.Sleep(time.Second)
		sample("back")
		if info := ct.consumer(t); info.NumPending+uint64(info.NumAckPending) < 100 {
			drained = time.Since(backAt)
		}
	}
	dp.halt()
	p.halt()
	final := ct.waitDrained(t, time.Minute)
	testenv.Eventually(t, 30*time.Second, func() error {
		if g, err := w.metric("guildhall_writer_lag_messages"); err != nil || g != 0 {
			return fmt.Errorf("writer_lag_messages = %v, %v", g, err)
		}
		return nil
	})
	rssAfter, _ := w.rss()

	acked := p.acked()
	direct, directErrs := dp.acked()
	fails := p.failures()
	t.Logf("lag drained %v after cassandra returned (to < 100 under load; 0 %v after the load stopped); peak lag %d", drained.Round(time.Millisecond), final.Round(time.Millisecond), lagMax)
	t.Logf("writer RSS: %d MiB before, peak %d MiB while cassandra was down, peak %d MiB while the backlog drained, %d MiB after (limit %d MiB)",
		rssBefore>>20, rssDown>>20, rssBack>>20, rssAfter>>20, rssLimit>>20)
	t.Logf("acknowledged: %d REST posts (failures %v; %d ok and %d failed while cassandra was down), %d direct publishes (%d failed)",
		len(acked), fails, okDown, failedDown, len(direct), directErrs)
	if len(fails) > 0 {
		t.Errorf("REST posts failed: %v; want every post to succeed through the outage (the guild is in the api's projection)", fails)
	}
	if okDown < 100 {
		t.Errorf("%d REST posts succeeded while cassandra was down; want them flowing the whole time", okDown)
	}
	if rssDown > rssLimit || rssBack > rssLimit {
		t.Errorf("writer RSS peaked at %d MiB while cassandra was down and %d MiB while the backlog drained; want < %d MiB", rssDown>>20, rssBack>>20, rssLimit>>20)
	}
	if directErrs > 0 {
		t.Errorf("%d direct publishes failed; JetStream alone should take them while cassandra is down", directErrs)
	}
	if lagMax < 1000 {
		t.Errorf("peak lag %d: the outage should have left a backlog of thousands", lagMax)
	}
	if gaugeDown < 1000 {
		t.Errorf("the writer's guildhall_writer_lag_messages peaked at %v while cassandra was down (backlog up to %d); want it to show the backlog", gaugeDown, lagMax)
	}
	maps.Copy(acked, direct)
	total := ct.checkExactlyOnce(t, acked)
	t.Logf("history holds %d messages; test took %v", total, time.Since(begin).Round(time.Second))
}

// Two api processes on one keyspace, as a scale-out deployment runs them (the
// second one in a child process): a member banned, and one denied
// SEND_MESSAGES, through the first are refused by the second once the
// projection's freshness bound (2 s by default) has passed since the change
// returned; the first refuses them at once.
func TestCQLTwoAPIsFreshness(t *testing.T) {
	testenv.SkipShort(t, "two api processes against Cassandra")
	const bound = 2 * time.Second
	ct := newCQLTier(t, 1)
	other := startWriterProcess(t, []string{"serve", "--role", "api", "--store", "cql", "--nats-url", ct.nats.URL, "--nats-creds", ct.nats.Creds,
		"--cql-hosts", strings.Join(ct.cass.Hosts, ","), "--cql-keyspace", ct.keyspace,
		"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "warn", "--rate-limits", "off", "--bcrypt-cost", "4"})
	a, b := ct.api.rest, testenv.NewREST("http://"+other.addr+"/api/v10")
	general := ct.channels[0]
	var inv struct{ Code string }
	a.Must(t, http.StatusOK, "POST", "/channels/"+general+"/invites", ct.owner, map[string]any{}, &inv)
	alice, aliceID := a.Register(t, "alice"+randName())
	bob, bobID := a.Register(t, "bob"+randName())
	for _, tok := range []string{alice, bob} {
		a.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, tok, nil, nil)
		b.Must(t, http.StatusOK, "POST", "/channels/"+general+"/messages", tok, map[string]string{"content": "fault-hello"}, nil)
	}

	a.Must(t, http.StatusNoContent, "PUT", "/guilds/"+ct.guild.String()+"/bans/"+aliceID, ct.owner, map[string]any{}, nil)
	a.Must(t, http.StatusNoContent, "PUT", "/channels/"+general+"/permissions/"+bobID, ct.owner,
		map[string]any{"type": guildhall.OverwriteMember, "deny": guildhall.PermSendMessages}, nil)
	changed := time.Now()
	refused := func(api *testenv.REST, where, token, who string, code int) {
		t.Helper()
		status, raw := api.Do(t, "POST", "/channels/"+general+"/messages", token, map[string]string{"content": "fault-refused"}, nil)
		var body struct{ Code int }
		_ = json.Unmarshal(raw, &body)
		if status != http.StatusForbidden || body.Code != code {
			t.Errorf("%s posts through the %s api process = %d %s; want 403 (code %d)", who, where, status, raw, code)
		}
	}
	refused(a, "banning", alice, "banned alice", 50001)
	refused(a, "denying", bob, "denied bob", 50013)
	time.Sleep(bound - time.Since(changed))
	refused(b, "other", alice, "banned alice", 50001)
	refused(b, "other", bob, "denied bob", 50013)
	b.Must(t, http.StatusOK, "POST", "/channels/"+general+"/messages", ct.owner, map[string]string{"content": "fault-owner"}, nil)
}
