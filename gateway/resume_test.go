package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	"github.com/guildhall/guildhall/testenv"
)

// resumeReplays reads guildhall_gateway_resume_replays_total{path}: every gateway
// of a stack counts into the stack's registry.
func resumeReplays(t testing.TB, st *presenceStack, path string) float64 {
	return counterValue(t, st, "guildhall_gateway_resume_replays_total", "path", path)
}

// counterValue reads a counter of the stack's gateways (with label name=value, if
// name is not empty).
func counterValue(t testing.TB, st *presenceStack, metric, name, value string) float64 {
	t.Helper()
	mfs, err := st.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			if name == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == name && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func postMessage(t testing.TB, st *presenceStack, token string, channel guildhall.Snowflake, content string) string {
	t.Helper()
	var m struct{ ID string }
	st.api.Must(t, http.StatusOK, "POST", "/channels/"+channel.String()+"/messages", token, map[string]string{"content": content}, &m)
	return m.ID
}

func sessionID(t testing.TB, c *testenv.GatewayClient) string {
	t.Helper()
	var r struct {
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal(c.Dispatches("READY")[0].D, &r); err != nil {
		t.Fatal(err)
	}
	return r.SessionID
}

// resumeOn resumes a session on a new connection and returns the connection and
// what came before RESUMED (the replay), checked to be dispatches after seq with s
// rising strictly: nothing twice, nothing out of order.
func resumeOn(t testing.TB, url, token, session string, seq uint64) (*testenv.GatewayClient, []testenv.Payload) {
	t.Helper()
	c := testenv.DialGateway(t, url)
	c.WaitFor(t, "op:10", 10*time.Second)
	if err := c.Resume(token, session, seq); err != nil {
		t.Fatal(err)
	}
	var replay []testenv.Payload
	for {
		p, err := c.Next(30 * time.Second)
		if err != nil {
			t.Fatalf("waiting for RESUMED: %v (got %d payloads)", err, len(replay))
		}
		if p.T == "RESUMED" {
			break
		}
		if p.Op != 0 {
			t.Fatalf("op %d %s before RESUMED", p.Op, p.D)
		}
		if last := seq; len(replay) > 0 {
			last = replay[len(replay)-1].Seq()
			if p.Seq() <= last {
				t.Fatalf("replayed %s with s=%d after s=%d", p.T, p.Seq(), last)
			}
		} else if p.Seq() <= last {
			t.Fatalf("replayed %s with s=%d, not after the resume's seq %d", p.T, p.Seq(), last)
		}
		replay = append(replay, p)
	}
	return c, replay
}

// messageIDs lists the MESSAGE_CREATE ids of payloads, and fails on any other dispatch.
func messageIDs(t testing.TB, ps []testenv.Payload) []string {
	t.Helper()
	var ids []string
	for _, p := range ps {
		if p.T != guildhall.EventMessageCreate {
			t.Fatalf("replayed %s %s; want only MESSAGE_CREATE", p.T, p.D)
		}
		var m struct{ ID string }
		_ = json.Unmarshal(p.D, &m)
		ids = append(ids, m.ID)
	}
	return ids
}

// replayFixture: alice and bob in two guilds; bob (the owner) stays connected on
// the one gateway, so its rooms keep their recent events while alice is away.
type replayFixture struct {
	st         *presenceStack
	alice, bob seedUser
	b          *testenv.GatewayClient
	a          *testenv.GatewayClient
	hidden     guildhall.Snowflake // in smallGuild; alice may not view it
	session    string
}

func startReplayFixture(t *testing.T, inbox int, extra ...seedGuild) *replayFixture {
	users := newSeedUsers(3_000_000, "rp", 2)
	f := &replayFixture{bob: users[0], alice: users[1]}
	f.st = startPresenceStack(t, stackOptions{gateways: 1, inbox: inbox, presence: fastPresence, seed: func(path string) {
		guilds := append([]seedGuild{
			{ID: smallGuild, ChannelID: smallChannel, Users: users},
			{ID: otherGuild, ChannelID: otherChannel, Users: users},
		}, extra...)
		seedBolt(t, path, guilds...)
	}})
	url := f.st.gws[0].url
	var err error
	if f.b, err = connect(t, url, f.bob.Token, nil); err != nil {
		t.Fatal(err)
	}
	if f.a, err = connect(t, url, f.alice.Token, nil); err != nil {
		t.Fatal(err)
	}
	f.session = sessionID(t, f.a)
	var ch struct{ ID guildhall.Snowflake }
	f.st.api.Must(t, http.StatusCreated, "POST", "/guilds/"+smallGuild.String()+"/channels", f.bob.Token, map[string]any{
		"name": "staff", "type": 0,
		"permission_overwrites": []map[string]any{{"id": smallGuild.String(), "type": 0, "allow": "0", "deny": "1024"}},
	}, &ch)
	f.hidden = ch.ID
	// alice's seq is after the hidden channel's creation.
	postMessage(t, f.st, f.bob.Token, smallChannel, "hello")
	f.a.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)
	return f
}

// A session that drops, misses messages in both guilds and one in a channel it may
// not view, and resumes on the same gateway gets exactly the visible ones, in
// order, once, from memory; then live events after RESUMED.
func TestResumeReplaysFromMemory(t *testing.T) {
	// Each stack counts into its own registry: the counts below are this test's.
	t.Parallel()
	f := startReplayFixture(t, 0)
	memory, stream := resumeReplays(t, f.st, "memory"), resumeReplays(t, f.st, "stream")
	seq := f.a.LastSeq()
	f.a.Drop()

	var want []string
	for i := range 3 {
		want = append(want, postMessage(t, f.st, f.bob.Token, smallChannel, fmt.Sprintf("a%d", i)))
		postMessage(t, f.st, f.bob.Token, f.hidden, fmt.Sprintf("secret %d", i))
		want = append(want, postMessage(t, f.st, f.bob.Token, otherChannel, fmt.Sprintf("b%d", i)))
	}
	c, replay := resumeOn(t, f.st.gws[0].url, f.alice.Token, f.session, seq)
	if got := messageIDs(t, replay); !slices.Equal(got, want) {
		t.Fatalf("replayed %v\nwant %v", got, want)
	}
	if m, s := resumeReplays(t, f.st, "memory")-memory, resumeReplays(t, f.st, "stream")-stream; m != 1 || s != 0 {
		t.Fatalf("resume replays: memory +%v, stream +%v; want memory +1", m, s)
	}
	live := postMessage(t, f.st, f.bob.Token, otherChannel, "live")
	p := c.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)
	if got := messageIDs(t, []testenv.Payload{p}); got[0] != live {
		t.Fatalf("after RESUMED got %v; want the live %s", got, live)
	}
}

// When the rooms cannot cover what the session missed (more than they keep), or
// the user had an event of its own (joining a guild), the resume replays the
// stream, and is just as exact; the next short absence is served from memory again.
func TestResumeFallsBackToStream(t *testing.T) {
	// Each stack counts into its own registry: the counts below are this test's.
	t.Parallel()
	joined := seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: newSeedUsers(3_000_000, "rp", 1)} // bob's alone
	f := startReplayFixture(t, 0, joined)
	url := f.st.gws[0].url

	// More missed events than a room keeps (256), posted a few at a time: the
	// order to expect is the stream's, as bob sees it live.
	memory, stream := resumeReplays(t, f.st, "memory"), resumeReplays(t, f.st, "stream")
	seq := f.a.LastSeq()
	f.a.Drop()
	const missed = 300
	ids := make(chan string, missed)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < missed; i += 6 {
				ids <- postMessage(t, f.st, f.bob.Token, smallChannel, fmt.Sprintf("m%d", i))
			}
		}()
	}
	wg.Wait()
	close(ids)
	posted := map[string]bool{}
	for id := range ids {
		posted[id] = true
	}
	var want []string
	testenv.Eventually(t, 30*time.Second, func() error {
		want = want[:0]
		for _, id := range messageIDs(t, f.b.Dispatches(guildhall.EventMessageCreate)) {
			if posted[id] {
				want = append(want, id)
			}
		}
		if len(want) != missed {
			return fmt.Errorf("bob has %d of %d", len(want), missed)
		}
		return nil
	})
	c, replay := resumeOn(t, url, f.alice.Token, f.session, seq)
	if got := messageIDs(t, replay); !slices.Equal(got, want) {
		t.Fatalf("replayed %d messages, want %d in bob's order:\n%v\n%v", len(got), len(want), got, want)
	}
	if m, s := resumeReplays(t, f.st, "memory")-memory, resumeReplays(t, f.st, "stream")-stream; m != 0 || s != 1 {
		t.Fatalf("resume replays: memory +%v, stream +%v; want stream +1", m, s)
	}

	// alice joins bob's third guild while away: her GUILD_CREATE is on her own
	// subject, in no room, even though every room here covers the absence.
	seq = c.LastSeq()
	c.Drop()
	var inv struct{ Code string }
	f.st.api.Must(t, http.StatusOK, "POST", "/channels/"+largeChannel.String()+"/invites", f.bob.Token, map[string]any{}, &inv)
	f.st.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.alice.Token, nil, nil)
	after := postMessage(t, f.st, f.bob.Token, largeChannel, "welcome")
	c, replay = resumeOn(t, url, f.alice.Token, f.session, seq)
	var types []string
	for _, p := range replay {
		types = append(types, p.T)
	}
	slices.Sort(types)
	if got := strings.Join(types, ","); got != "GUILD_CREATE,GUILD_MEMBER_ADD,MESSAGE_CREATE" {
		t.Fatalf("replayed %s; want her GUILD_CREATE, the GUILD_MEMBER_ADD and the message", got)
	}
	if got := messageIDs(t, replay[len(replay)-1:]); got[0] != after {
		t.Fatalf("last replayed message %v; want %s", got, after)
	}
	if m, s := resumeReplays(t, f.st, "memory")-memory, resumeReplays(t, f.st, "stream")-stream; m != 0 || s != 2 {
		t.Fatalf("resume replays: memory +%v, stream +%v; want stream +2", m, s)
	}

	// A short absence again, now in three guilds: memory.
	seq = c.LastSeq()
	c.Drop()
	want = []string{
		postMessage(t, f.st, f.bob.Token, largeChannel, "c"),
		postMessage(t, f.st, f.bob.Token, smallChannel, "a"),
	}
	_, replay = resumeOn(t, url, f.alice.Token, f.session, seq)
	if got := messageIDs(t, replay); !slices.Equal(got, want) {
		t.Fatalf("replayed %v; want %v", got, want)
	}
	if m := resumeReplays(t, f.st, "memory") - memory; m != 1 {
		t.Fatalf("resume replays: memory +%v; want +1", m)
	}
}

// With an inbox of two, NATS drops events for the gateway during a burst: the pump
// fills the gaps it notices, and a resume must not trust a room that may have lost
// events it has not noticed yet (the burst's last ones). Whichever path each
// resume takes, it replays exactly what was missed.
func TestResumeExactWhenNATSDropsEvents(t *testing.T) {
	// Each stack counts into its own registry: the counts below are this test's.
	t.Parallel()
	f := startReplayFixture(t, 2)
	fills := counterValue(t, f.st, "guildhall_gateway_gap_fills_total", "", "")
	memory, stream := resumeReplays(t, f.st, "memory"), resumeReplays(t, f.st, "stream")
	c := f.a
	for round := range 4 {
		seq := c.LastSeq()
		c.Drop()
		var mu sync.Mutex
		posted := map[string]bool{}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					ch := smallChannel
					if (w+i)%2 == 1 {
						ch = otherChannel
					}
					id := postMessage(t, f.st, f.bob.Token, ch, fmt.Sprintf("r%d w%d i%d", round, w, i))
					mu.Lock()
					posted[id] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		var replay []testenv.Payload
		c, replay = resumeOn(t, f.st.gws[0].url, f.alice.Token, f.session, seq)
		got := messageIDs(t, replay)
		for _, id := range got {
			if !posted[id] {
				t.Fatalf("round %d: replayed %s, which was not missed", round, id)
			}
		}
		if len(got) != len(posted) {
			t.Fatalf("round %d: replayed %d of the %d missed messages", round, len(got), len(posted))
		}
	}
	t.Logf("gap fills %v; resumes from memory %v, from the stream %v",
		counterValue(t, f.st, "guildhall_gateway_gap_fills_total", "", "")-fills,
		resumeReplays(t, f.st, "memory")-memory, resumeReplays(t, f.st, "stream")-stream)
}

// A member who joined a guild after its events, and identified after that,
// cannot have them replayed: a RESUME from before the session's start (0, or
// just below READY's s) is answered INVALID_SESSION (d=false), and a RESUME from
// its start replays nothing of the guild's past (not a message, not a deleted
// one, not an edit's original).
func TestResumeNeverReachesBeforeTheSessionStart(t *testing.T) {
	t.Parallel()
	users := newSeedUsers(3_200_000, "fl", 2)
	bob, alice := users[0], users[1]
	st := startPresenceStack(t, stackOptions{presence: fastPresence, writer: true, seed: func(path string) {
		seedBolt(t, path,
			seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: []seedUser{bob}},
			seedGuild{ID: otherGuild, ChannelID: otherChannel, Users: []seedUser{alice}})
	}})
	url := st.gws[0].url
	postMessage(t, st, bob.Token, smallChannel, "kept")
	edited := postMessage(t, st, bob.Token, smallChannel, "the original")
	st.api.Must(t, http.StatusOK, "PATCH", "/channels/"+smallChannel.String()+"/messages/"+edited, bob.Token, map[string]string{"content": "edited"}, nil)
	deleted := postMessage(t, st, bob.Token, smallChannel, "deleted")
	st.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+smallChannel.String()+"/messages/"+deleted, bob.Token, nil, nil)
	var inv struct{ Code string }
	st.api.Must(t, http.StatusOK, "POST", "/channels/"+smallChannel.String()+"/invites", bob.Token, map[string]any{}, &inv)
	st.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, alice.Token, nil, nil)

	a, err := connect(t, url, alice.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	session, start := sessionID(t, a), a.Dispatches("READY")[0].Seq()
	for _, seq := range []uint64{0, 1, start - 1} {
		c := testenv.DialGateway(t, url)
		c.WaitFor(t, "op:10", 10*time.Second)
		if err := c.Resume(alice.Token, session, seq); err != nil {
			t.Fatal(err)
		}
		p, err := c.Next(30 * time.Second)
		if err != nil {
			t.Fatalf("RESUME from %d (the session started at %d): %v", seq, start, err)
		}
		if p.Op != gateway.OpInvalidSession || string(p.D) != "false" {
			t.Fatalf("RESUME from %d (the session started at %d) answered op %d %s %s; want INVALID_SESSION false", seq, start, p.Op, p.T, p.D)
		}
		c.Close(1000)
	}
	c, replay := resumeOn(t, url, alice.Token, session, start)
	if len(replay) != 0 {
		t.Fatalf("RESUME from the session's start replayed %s", describe(replay))
	}
	after := postMessage(t, st, bob.Token, smallChannel, "after")
	if got := messageIDs(t, []testenv.Payload{c.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)}); got[0] != after {
		t.Fatalf("after RESUMED got %v; want %s", got, after)
	}
	for _, p := range c.All() {
		if strings.HasPrefix(p.T, "MESSAGE_") && p.Seq() <= start {
			t.Fatalf("the resumed session got %s with s=%d, before its start %d", p.T, p.Seq(), start)
		}
	}
}

// Resumes are limited per user: past the burst a RESUME is closed with 4008
// before anything is replayed, and once the bucket has refilled the session
// resumes again.
func TestResumeRateLimited(t *testing.T) {
	t.Parallel()
	users := newSeedUsers(3_300_000, "rl", 1)
	st := startPresenceStack(t, stackOptions{presence: fastPresence,
		// A slow refill: the two resumes must not earn a third in the time they take.
		limits: gateway.LimitsConfig{ResumeBurst: 2, ResumeEvery: 15 * time.Second},
		seed:   func(path string) { seedBolt(t, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users}) }})
	url, token := st.gws[0].url, users[0].Token
	c, err := connect(t, url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	session, seq := sessionID(t, c), c.LastSeq()
	for range 2 {
		resumeOn(t, url, token, session, seq)
	}
	limited := testenv.DialGateway(t, url)
	limited.WaitFor(t, "op:10", 10*time.Second)
	if err := limited.Resume(token, session, seq); err != nil {
		t.Fatal(err)
	}
	if code, _ := limited.WaitClose(30 * time.Second); code != gateway.CloseRateLimited {
		t.Fatalf("the third RESUME in a row closed with %d (payloads %s); want %d", code, describe(limited.All()), gateway.CloseRateLimited)
	}
	if n := len(limited.Dispatches("RESUMED")); n != 0 {
		t.Fatal("a rate-limited RESUME was answered RESUMED")
	}
	testenv.Eventually(t, 60*time.Second, func() error {
		c := testenv.DialGateway(t, url)
		defer c.Close(1000)
		if _, err := waitPayload(c, "op:10", 10*time.Second); err != nil {
			return err
		}
		if err := c.Resume(token, session, seq); err != nil {
			return err
		}
		_, err := waitPayload(c, "RESUMED", 10*time.Second)
		return err
	})
}
