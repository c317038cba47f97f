package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestParseUpdate(t *testing.T) {
	for _, c := range []struct {
		in     string
		status presence.Status
		err    bool
	}{
		{`{"status":"online","activities":[],"since":null,"afk":false}`, presence.Online, false},
		{`{"status":"idle","since":91879201,"afk":true}`, presence.Idle, false},
		{`{"status":"dnd","activities":[{"name":"Chess","type":0}]}`, presence.DND, false},
		{`{"status":"invisible"}`, presence.Invisible, false},
		{`{"status":"offline"}`, presence.Invisible, false},
		{`{}`, presence.Online, false},
		{`{"status":"away"}`, "", true},
		{`{"status":"online","activities":{"name":"x"}}`, "", true},
		{`{"status":"online","activities":[1]}`, presence.Online, false}, // the invalid activity is dropped
		{`[]`, "", true},
	} {
		u, err := presence.ParseUpdate([]byte(c.in))
		if (err != nil) != c.err || (err == nil && u.Status != c.status) {
			t.Errorf("ParseUpdate(%s) = %q, %v; want %q, error %v", c.in, u.Status, err, c.status, c.err)
		}
	}
}

func TestEntryVisible(t *testing.T) {
	live := presence.Nodes{"a": "1", "b": "1"}
	fresh := presence.Node{Sessions: 1, Inc: "1"}
	stale := presence.Node{Sessions: 2, Inc: "0"} // a's incarnation before a restart
	for _, c := range []struct {
		e    presence.Entry
		want presence.Status
	}{
		{presence.Entry{Status: presence.DND, Gateways: map[string]presence.Node{"a": fresh}}, presence.DND},
		{presence.Entry{Status: presence.Invisible, Gateways: map[string]presence.Node{"a": fresh}}, presence.Offline},
		{presence.Entry{Status: presence.Online, Gateways: map[string]presence.Node{"a": stale}}, presence.Offline},
		{presence.Entry{Status: presence.Idle, Gateways: map[string]presence.Node{"a": stale, "b": fresh}}, presence.Idle},
		{presence.Entry{Status: presence.Online}, presence.Offline},
	} {
		if got := c.e.Visible(live); got != c.want {
			t.Errorf("Visible(%+v) = %q; want %q", c.e, got, c.want)
		}
	}
}

func bucket(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), ghnats.BucketPresence)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func entry(t *testing.T, kv jetstream.KeyValue, uid guildhall.Snowflake) (presence.Entry, bool) {
	t.Helper()
	e, err := kv.Get(context.Background(), presence.Key(uid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return presence.Entry{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var en presence.Entry
	if err := json.Unmarshal(e.Value(), &en); err != nil {
		t.Fatal(err)
	}
	return en, true
}

// A user with sessions on two gateways stays online until the last one leaves.
func TestTrackerTwoGateways(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20})
	ctx := context.Background()
	kv := bucket(t, n.JS)
	a, b := presence.NewTracker(n.JS, "a"), presence.NewTracker(n.JS, "b")
	const uid = guildhall.Snowflake(42)
	dnd := &presence.Update{Status: presence.DND}

	ka, err := a.Sync(ctx, uid, presence.State{Sessions: 1, Update: dnd, Guilds: []guildhall.Snowflake{7}, GuildsKnown: true}, presence.Known{})
	if err != nil {
		t.Fatal(err)
	}
	// b believes the key absent: its create fails, it reads and updates.
	kb, err := b.Sync(ctx, uid, presence.State{Sessions: 2}, presence.Known{})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := entry(t, kv, uid)
	if !ok || e.Status != presence.DND || e.Gateways["a"].Sessions != 1 || e.Gateways["b"].Sessions != 2 || len(e.Guilds) != 1 {
		t.Fatalf("entry after two gateways = %+v, %v", e, ok)
	}
	// a's knowledge is stale now (b wrote after it): its write still lands.
	if _, err = a.Sync(ctx, uid, presence.State{Sessions: 0}, ka); err != nil {
		t.Fatal(err)
	}
	e, ok = entry(t, kv, uid)
	if _, hasA := e.Gateways["a"]; !ok || hasA || e.Gateways["b"].Sessions != 2 || e.Status != presence.DND {
		t.Fatalf("entry after a left = %+v, %v", e, ok)
	}
	if _, err = b.Sync(ctx, uid, presence.State{Sessions: 0}, kb); err != nil {
		t.Fatal(err)
	}
	if e, ok := entry(t, kv, uid); ok {
		t.Fatalf("entry after both left = %+v; want none", e)
	}
}

// Concurrent writers on one key all land (compare-and-set retries).
func TestTrackerConcurrent(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20})
	ctx := context.Background()
	const uid = guildhall.Snowflake(9)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := presence.NewTracker(n.JS, fmt.Sprintf("gw%d", i))
			if _, err := tr.Sync(ctx, uid, presence.State{Sessions: i + 1}, presence.Known{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	e, _ := entry(t, bucket(t, n.JS), uid)
	if len(e.Gateways) != 8 {
		t.Fatalf("gateways = %v; want 8 of them", e.Gateways)
	}
}

// guildEvents collects the ephemeral events of a guild.
type guildEvents struct {
	mu  sync.Mutex
	got []presence.Presence
}

func subscribeGuild(t *testing.T, nc *natsgo.Conn, guild guildhall.Snowflake) *guildEvents {
	t.Helper()
	ev := &guildEvents{}
	sub, err := nc.Subscribe(ghnats.EphemeralGuildSubject(uint64(guild)), func(m *natsgo.Msg) {
		if m.Header.Get(ghnats.HeaderType) != guildhall.EventPresenceUpdate {
			return
		}
		var p presence.Presence
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Errorf("PRESENCE_UPDATE %s: %v", m.Data, err)
		}
		ev.mu.Lock()
		ev.got = append(ev.got, p)
		ev.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (e *guildEvents) statuses() []presence.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]presence.Status, len(e.got))
	for i, p := range e.got {
		out[i] = p.Status
	}
	return out
}

func (e *guildEvents) waitFor(t *testing.T, want ...presence.Status) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		got := e.statuses()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("statuses %v; want %v", got, want)
		}
		return nil
	})
}

func startNotifier(t *testing.T, n *testenv.NATS, name string) *presence.Notifier {
	t.Helper()
	nf := presence.NewNotifier(n.Conn, n.JS, presence.NotifierConfig{Name: name})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = nf.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return nf
}

func waitReady(t *testing.T, nf *presence.Notifier) {
	t.Helper()
	select {
	case <-nf.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("notifier not ready after 30s")
	}
}

// The notifier announces each visible change once per small guild, offline when
// the last session leaves and when a key expires because its gateway died.
func TestNotifierAnnouncesChanges(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20, PresenceTTL: 2 * time.Second})
	ctx := context.Background()
	const g1, g2 = guildhall.Snowflake(100), guildhall.Snowflake(200)
	ev1, ev2 := subscribeGuild(t, n.Conn, g1), subscribeGuild(t, n.Conn, g2)
	waitReady(t, startNotifier(t, n, "one"))
	tr := startTracker(t, n, "gw")
	const uid = guildhall.Snowflake(5)
	both := presence.State{Sessions: 1, Guilds: []guildhall.Snowflake{g1, g2}, GuildsKnown: true}

	k, err := tr.Sync(ctx, uid, both, presence.Known{})
	if err != nil {
		t.Fatal(err)
	}
	ev1.waitFor(t, presence.Online)
	st := both
	st.Update = &presence.Update{Status: presence.Idle, Activities: json.RawMessage(`[{"name":"Chess","type":0}]`)}
	if k, err = tr.Sync(ctx, uid, st, k); err != nil {
		t.Fatal(err)
	}
	ev1.waitFor(t, presence.Online, presence.Idle)
	// A refresh (same state, no update) announces nothing.
	if k, err = tr.Sync(ctx, uid, both, k); err != nil {
		t.Fatal(err)
	}
	st.Update = &presence.Update{Status: presence.Invisible}
	if k, err = tr.Sync(ctx, uid, st, k); err != nil {
		t.Fatal(err)
	}
	ev1.waitFor(t, presence.Online, presence.Idle, presence.Offline)
	st.Update = &presence.Update{Status: presence.Online}
	if k, err = tr.Sync(ctx, uid, st, k); err != nil {
		t.Fatal(err)
	}
	ev1.waitFor(t, presence.Online, presence.Idle, presence.Offline, presence.Online)
	if _, err = tr.Sync(ctx, uid, presence.State{}, k); err != nil {
		t.Fatal(err)
	}
	want := []presence.Status{presence.Online, presence.Idle, presence.Offline, presence.Online, presence.Offline}
	ev1.waitFor(t, want...)
	ev2.waitFor(t, want...)
	ev1.mu.Lock()
	if p := ev1.got[1]; p.User.ID != uid || p.GuildID != g1 || string(p.Activities) != `[{"name":"Chess","type":0}]` || p.ClientStatus["desktop"] != presence.Idle {
		t.Errorf("idle presence = %+v", p)
	}
	ev1.mu.Unlock()

	// A gateway that dies stops its heartbeat: when it expires its user goes
	// offline, and a user it shares with a live gateway stays online.
	const dead, shared = guildhall.Snowflake(6), guildhall.Snowflake(7)
	inG2 := presence.State{Sessions: 1, Guilds: []guildhall.Snowflake{g2}, GuildsKnown: true}
	gone := presence.NewTracker(n.JS, "dead") // never beats again
	if _, err := gone.Sync(ctx, dead, inG2, presence.Known{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Sync(ctx, shared, inG2, presence.Known{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Sync(ctx, shared, inG2, presence.Known{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		ev2.mu.Lock()
		defer ev2.mu.Unlock()
		if l := ev2.got[len(ev2.got)-1]; l.User.ID != dead || l.Status != presence.Offline {
			return fmt.Errorf("last presence in g2 %+v; want %d offline", l, dead)
		}
		return nil
	})
	kv := bucket(t, n.JS)
	testenv.Eventually(t, 30*time.Second, func() error {
		if e, ok := entry(t, kv, dead); ok {
			return fmt.Errorf("dead user's entry %+v; want none", e)
		}
		if e, _ := entry(t, kv, shared); len(e.Gateways) != 1 || e.Gateways["gw"].Sessions != 1 {
			return fmt.Errorf("shared user's entry %+v; want gw alone", e)
		}
		return nil
	})
	ev2.mu.Lock()
	defer ev2.mu.Unlock()
	for _, p := range ev2.got {
		if p.User.ID == shared && p.Status != presence.Online {
			t.Errorf("shared user announced %s; want online only", p.Status)
		}
	}
}

// startTracker runs a Tracker's heartbeat for the test.
func startTracker(t *testing.T, n *testenv.NATS, node string) *presence.Tracker {
	t.Helper()
	tr := presence.NewTracker(n.JS, node)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx, func() {}) }()
	t.Cleanup(func() { cancel(); <-done })
	return tr
}

// A gateway that restarts under the same name takes a new incarnation: the
// users of the old process go offline at once, without waiting for any TTL,
// and the new process's users are online.
func TestTrackerRestart(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20})
	ctx := context.Background()
	const g = guildhall.Snowflake(400)
	ev := subscribeGuild(t, n.Conn, g)
	waitReady(t, startNotifier(t, n, "one"))
	st := presence.State{Sessions: 1, Guilds: []guildhall.Snowflake{g}, GuildsKnown: true}
	if _, err := presence.NewTracker(n.JS, "gw").Sync(ctx, 1, st, presence.Known{}); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, presence.Online)
	if _, err := presence.NewTracker(n.JS, "gw").Sync(ctx, 2, st, presence.Known{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		want := map[guildhall.Snowflake]presence.Status{1: presence.Offline, 2: presence.Online}
		for _, p := range ev.got {
			if want[p.User.ID] == p.Status {
				delete(want, p.User.ID)
			}
		}
		if len(want) > 0 {
			return fmt.Errorf("still waiting for %v", want)
		}
		return nil
	})
	r, err := presence.NewReader(ctx, n.Conn, n.JS)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := r.Presences(ctx, []guildhall.Snowflake{1, 2})
	if err != nil || len(ps) != 1 || ps[0].User.ID != 2 {
		t.Fatalf("presences = %+v, %v; want user 2 alone", ps, err)
	}
}

// Two notifiers: one is active, so each change is announced once; when it stops
// the other takes over.
func TestNotifierOneActive(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20, LeaseTTL: 2 * time.Second})
	ctx := context.Background()
	const g = guildhall.Snowflake(300)
	ev := subscribeGuild(t, n.Conn, g)
	a := presence.NewNotifier(n.Conn, n.JS, presence.NotifierConfig{Name: "a"})
	actx, stopA := context.WithCancel(ctx)
	aDone := make(chan struct{})
	go func() { defer close(aDone); _ = a.Run(actx) }()
	waitReady(t, a)
	b := startNotifier(t, n, "b")
	tr := presence.NewTracker(n.JS, "gw")
	st := presence.State{Sessions: 1, Guilds: []guildhall.Snowflake{g}, GuildsKnown: true}
	k, err := tr.Sync(ctx, 1, st, presence.Known{})
	if err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, presence.Online)
	stopA()
	<-aDone
	waitReady(t, b)
	st.Update = &presence.Update{Status: presence.DND}
	if _, err := tr.Sync(ctx, 1, st, k); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, presence.Online, presence.DND)
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive by now
	ev.waitFor(t, presence.Online, presence.DND)
}

func TestAggregator(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20})
	ctx := context.Background()
	agg, err := presence.NewAggregator(n.Conn, presence.AggregatorConfig{SweepEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer agg.Close()
	count := func(g guildhall.Snowflake) int {
		c, err := agg.ApproximatePresenceCount(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	want := func(g guildhall.Snowflake, n int) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, func() error {
			if c := count(g); c != n {
				return fmt.Errorf("count(%d) = %d; want %d", g, c, n)
			}
			return nil
		})
	}
	// Gateway a reports 2500 guilds (three messages); b reports one of them.
	var counts []presence.GuildCount
	for i := range 2500 {
		counts = append(counts, presence.GuildCount{Guild: guildhall.Snowflake(i + 1), Online: i + 1})
	}
	reply := n.Conn.NewInbox()
	totals, err := n.Conn.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	if err := presence.PublishReport(n.Conn, "a", "", time.Minute, counts); err != nil {
		t.Fatal(err)
	}
	want(2500, 2500)
	if err := presence.PublishReport(n.Conn, "b", reply, 2*time.Second, []presence.GuildCount{{Guild: 2500, Online: 10}}); err != nil {
		t.Fatal(err)
	}
	want(2500, 2510)
	m, err := totals.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var tot presence.CountTotals
	if err := json.Unmarshal(m.Data, &tot); err != nil || len(tot.Counts) != 1 || tot.Counts[0].Online != 2510 {
		t.Fatalf("totals %s (%v); want guild 2500 at 2510", m.Data, err)
	}
	// b stops reporting: its count expires.
	want(2500, 2500)
	// a withdraws a guild with a zero.
	if err := presence.PublishReport(n.Conn, "a", "", time.Minute, []presence.GuildCount{{Guild: 1}}); err != nil {
		t.Fatal(err)
	}
	want(1, 0)
	if c := count(2); c != 2 {
		t.Fatalf("count(2) = %d; want 2", c)
	}
}

func TestReader(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{MemoryStorage: true, EventMaxBytes: 64 << 20})
	ctx := context.Background()
	tr := presence.NewTracker(n.JS, "gw")
	var ids []guildhall.Snowflake
	for i := range 1500 {
		uid := guildhall.Snowflake(1000 + i)
		ids = append(ids, uid)
		if i%3 != 0 {
			continue // offline
		}
		st := presence.State{Sessions: 1}
		if i%2 == 0 {
			st.Update = &presence.Update{Status: presence.Invisible}
		}
		if _, err := tr.Sync(ctx, uid, st, presence.Known{}); err != nil {
			t.Fatal(err)
		}
	}
	// One user went offline by delete: its delete marker is not a presence.
	k, err := tr.Sync(ctx, 5000, presence.State{Sessions: 1}, presence.Known{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Sync(ctx, 5000, presence.State{}, k); err != nil {
		t.Fatal(err)
	}
	r, err := presence.NewReader(ctx, n.Conn, n.JS)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := r.Presences(ctx, append(ids, 5000))
	if err != nil {
		t.Fatal(err)
	}
	// i%3 == 0 and odd i: online.
	if len(ps) != 250 {
		t.Fatalf("%d presences; want 250", len(ps))
	}
	for _, p := range ps {
		if i := int(p.User.ID) - 1000; i%3 != 0 || i%2 == 0 || p.Status != presence.Online {
			t.Errorf("presence %+v should not be there", p)
		}
	}
	if ps, err := r.Presences(ctx, []guildhall.Snowflake{1, 2}); err != nil || len(ps) != 0 {
		t.Fatalf("presences of unknown users = %v, %v; want none", ps, err)
	}
}
