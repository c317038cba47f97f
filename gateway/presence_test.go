package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	smallGuild   = guildhall.Snowflake(1_000_000)
	smallChannel = guildhall.Snowflake(1_000_001)
	largeGuild   = guildhall.Snowflake(1_100_000)
	largeChannel = guildhall.Snowflake(1_100_001)
	otherGuild   = guildhall.Snowflake(1_200_000)
	otherChannel = guildhall.Snowflake(1_200_001)
)

// fastPresence makes a test's presence quick to observe.
var fastPresence = gateway.PresenceConfig{MinUpdateInterval: 50 * time.Millisecond, CountInterval: 200 * time.Millisecond}

func presenceCount(t testing.TB, st *presenceStack, token string, guild guildhall.Snowflake) (int, error) {
	var g struct {
		Count *int `json:"approximate_presence_count"`
	}
	st.api.Must(t, http.StatusOK, "GET", "/guilds/"+guild.String()+"?with_counts=true", token, nil, &g)
	if g.Count == nil {
		return 0, errors.New("no approximate_presence_count")
	}
	return *g.Count, nil
}

func waitCount(t testing.TB, st *presenceStack, token string, guild guildhall.Snowflake, want int) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		n, err := presenceCount(t, st, token, guild)
		if err == nil && n != want {
			err = fmt.Errorf("approximate_presence_count = %d; want %d", n, want)
		}
		return err
	})
}

func presenceEntry(t testing.TB, st *presenceStack, user guildhall.Snowflake) (presence.Entry, bool) {
	t.Helper()
	kv, err := st.nats.JS.KeyValue(context.Background(), ghnats.BucketPresence)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), presence.Key(user))
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

// A member of a small guild sees another member's presence change: IDENTIFY's
// presence, op 3 (idle, invisible shown as offline, online), a second session that
// keeps the user online when the first closes, and offline when the last closes.
func TestPresenceTransitionsSeenByOtherMember(t *testing.T) {
	users := newSeedUsers(2_000_000, "pt", 2)
	alice, bob := users[0], users[1]
	st := startPresenceStack(t, stackOptions{gateways: 2, presence: fastPresence, seed: func(path string) {
		seedBolt(t, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users})
	}})
	b, err := connect(t, st.gws[1].url, bob.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, bob.ID, 20*time.Second, "online") // bob sees himself

	a1, err := connect(t, st.gws[0].url, alice.Token, map[string]any{"status": "dnd", "since": nil, "activities": []any{}, "afk": false})
	if err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "dnd")
	waitCount(t, st, bob.Token, smallGuild, 2)

	if err := a1.Send(3, map[string]any{"status": "idle", "since": 1700000000000, "afk": true, "activities": []any{map[string]any{"name": "Chess", "type": 0}}}); err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "dnd", "idle")
	var idle presence.Presence
	for _, p := range b.Dispatches(guildhall.EventPresenceUpdate) {
		if json.Unmarshal(p.D, &idle) == nil && idle.User.ID == alice.ID && idle.Status == presence.Idle {
			break
		}
	}
	if idle.GuildID != smallGuild || !strings.HasPrefix(string(idle.Activities), `[{"name":"Chess","type":0,"created_at":`) || idle.ClientStatus["desktop"] != presence.Idle {
		t.Errorf("PRESENCE_UPDATE idle = %+v", idle)
	}

	// Invisible is offline to others, and leaves the online count.
	if err := a1.Send(3, map[string]any{"status": "invisible", "since": nil, "afk": false, "activities": []any{}}); err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "dnd", "idle", "offline")
	waitCount(t, st, bob.Token, smallGuild, 1)
	if err := a1.Send(3, map[string]any{"status": "online", "since": nil, "afk": false, "activities": nil}); err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "dnd", "idle", "offline", "online")

	// A second session on the other gateway; the first one leaves: still online.
	a2, err := connect(t, st.gws[1].url, alice.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if e, _ := presenceEntry(t, st, alice.ID); len(e.Gateways) != 2 {
			return fmt.Errorf("alice's entry %+v; want two gateways", e)
		}
		return nil
	})
	a1.Close(1000)
	testenv.Eventually(t, 20*time.Second, func() error {
		if e, _ := presenceEntry(t, st, alice.ID); len(e.Gateways) != 1 || e.Gateways["gw1"].Sessions != 1 {
			return fmt.Errorf("alice's entry %+v; want gw1 alone", e)
		}
		return nil
	})
	// Nothing was announced for that: the next change comes right after "online".
	if err := a2.Send(3, map[string]any{"status": "dnd", "since": nil, "afk": false, "activities": []any{}}); err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "dnd", "idle", "offline", "online", "dnd")
	a2.Close(1000)
	waitPresences(t, b, alice.ID, 20*time.Second, "dnd", "idle", "offline", "online", "dnd", "offline")
	if e, ok := presenceEntry(t, st, alice.ID); ok {
		t.Errorf("alice's entry after her last session = %+v; want none", e)
	}
	waitCount(t, st, bob.Token, smallGuild, 1)
}

// A gateway that dies without goodbye (its NATS connection gone, then its
// sockets) takes its users offline within the presence TTL: its heartbeat key
// expires, the notifier sees the limit marker, announces its users offline and
// removes their keys. Its online counts drop out too. Users of the live gateway
// stay online all along, though their keys were written only once.
func TestPresenceGatewayKilledWithoutGoodbye(t *testing.T) {
	users := newSeedUsers(2_100_000, "pk", 2)
	alice, bob := users[0], users[1]
	st := startPresenceStack(t, stackOptions{
		gateways: 2, presence: fastPresence,
		topo: ghnats.Topology{PresenceTTL: 3 * time.Second},
		seed: func(path string) { seedBolt(t, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users}) },
	})
	b, err := connect(t, st.gws[1].url, bob.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, st.gws[0].url, alice.Token, nil); err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "online")
	waitCount(t, st, bob.Token, smallGuild, 2)

	st.gws[0].kill()
	waitPresences(t, b, alice.ID, 30*time.Second, "online", "offline")
	if e, ok := presenceEntry(t, st, alice.ID); ok {
		t.Errorf("alice's entry after her gateway died = %+v; want none", e)
	}
	waitCount(t, st, bob.Token, smallGuild, 1)
	// Bob's key was written once; his gateway's heartbeat keeps him online.
	if e, ok := presenceEntry(t, st, bob.ID); !ok || e.Status != presence.Online || e.Gateways["gw1"].Sessions != 1 {
		t.Errorf("bob's entry = %+v, %v; want online", e, ok)
	}
	if got := presencesOf(b, bob.ID); !slices.Equal(got, []string{"online"}) {
		t.Errorf("bob saw himself %v; want [online]", got)
	}
}

// A user with sessions on two gateways stays online when one of them dies
// without goodbye: only the dead gateway's part goes, and nothing is announced.
// Her last session leaving then takes her offline.
func TestPresenceTwoGatewaysOneKilled(t *testing.T) {
	users := newSeedUsers(2_150_000, "p2", 2)
	alice, bob := users[0], users[1]
	st := startPresenceStack(t, stackOptions{
		gateways: 2, presence: fastPresence,
		topo: ghnats.Topology{PresenceTTL: 3 * time.Second},
		seed: func(path string) { seedBolt(t, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users}) },
	})
	b, err := connect(t, st.gws[1].url, bob.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, st.gws[0].url, alice.Token, nil); err != nil {
		t.Fatal(err)
	}
	a1, err := connect(t, st.gws[1].url, alice.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitPresences(t, b, alice.ID, 20*time.Second, "online")
	testenv.Eventually(t, 20*time.Second, func() error {
		if e, _ := presenceEntry(t, st, alice.ID); len(e.Gateways) != 2 {
			return fmt.Errorf("alice's entry %+v; want two gateways", e)
		}
		return nil
	})

	st.gws[0].kill()
	// The notifier removes gw0's part once its heartbeat expired.
	testenv.Eventually(t, 30*time.Second, func() error {
		if e, _ := presenceEntry(t, st, alice.ID); len(e.Gateways) != 1 || e.Gateways["gw1"].Sessions != 1 {
			return fmt.Errorf("alice's entry %+v; want gw1 alone", e)
		}
		return nil
	})
	if got := presencesOf(b, alice.ID); !slices.Equal(got, []string{"online"}) {
		t.Errorf("bob saw alice %v; want [online]", got)
	}
	a1.Close(1000)
	waitPresences(t, b, alice.ID, 20*time.Second, "online", "offline")
}

// A large guild (10,000 members, 1,000 sessions on two gateways): no per-member
// presence at all, and approximate_presence_count converges to the sessions
// online, as sessions leave and as a gateway dies.
func TestPresenceCountsConvergeInLargeGuild(t *testing.T) {
	testenv.SkipShort(t, "1,000 sessions")
	users := newSeedUsers(3_000_000, "lg", 1000)
	st := startPresenceStack(t, stackOptions{
		gateways: 2, presence: gateway.PresenceConfig{CountInterval: 500 * time.Millisecond},
		topo: ghnats.Topology{PresenceTTL: 5 * time.Second},
		seed: func(path string) {
			seedBolt(t, path, seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: users, Extra: 9000, ExtraBase: 5_000_000})
		},
	})
	owner := users[0].Token
	clients := connectMany(t, []string{st.gws[0].url, st.gws[1].url}, users)
	waitCount(t, st, owner, largeGuild, 1000)

	// Half of the sessions on gw0 leave (users 0, 2, 4, ... are on gw0).
	left := 0
	for i := 2; i < len(clients); i += 4 {
		clients[i].Close(1000)
		left++
	}
	waitCount(t, st, owner, largeGuild, 1000-left)
	// gw1 dies: only gw0's remaining sessions count.
	st.gws[1].kill()
	waitCount(t, st, owner, largeGuild, 500-left)

	for i, c := range clients {
		if n := len(c.Dispatches(guildhall.EventPresenceUpdate)); n != 0 {
			t.Fatalf("session %d of a 10,000-member guild received %d PRESENCE_UPDATE; want none", i, n)
		}
	}
}

// Typing is pub/sub only: it reaches the other member and leaves nothing in any
// stream or KV bucket.
func TestTypingLeavesNothingStored(t *testing.T) {
	users := newSeedUsers(2_200_000, "ty", 2)
	alice, bob := users[0], users[1]
	// TTLs far beyond the test, so no refresh writes while it looks.
	long := 10 * time.Minute
	st := startPresenceStack(t, stackOptions{
		gateways: 2, presence: fastPresence,
		topo: ghnats.Topology{PresenceTTL: long, SessionTTL: long, LeaseTTL: long},
		seed: func(path string) { seedBolt(t, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users}) },
	})
	a, err := connect(t, st.gws[0].url, alice.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := connect(t, st.gws[1].url, bob.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitPresences(t, a, bob.ID, 20*time.Second, "online")

	ctx := context.Background()
	type state struct{ msgs, last uint64 }
	snapshot := func() map[string]state {
		out := map[string]state{}
		names := st.nats.JS.StreamNames(ctx)
		for name := range names.Name() {
			s, err := st.nats.JS.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = state{info.State.Msgs, info.State.LastSeq}
		}
		if err := names.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := snapshot()
	for _, name := range []string{ghnats.StreamEvents, "KV_" + ghnats.BucketPresence, "KV_" + ghnats.BucketSessions} {
		if _, ok := before[name]; !ok {
			t.Fatalf("stream %s missing from %v", name, before)
		}
	}
	st.api.Must(t, http.StatusNoContent, "POST", "/channels/"+smallChannel.String()+"/typing", alice.Token, nil, nil)
	st.api.Must(t, http.StatusNoContent, "POST", "/channels/"+smallChannel.String()+"/typing", bob.Token, nil, nil)
	// Rate limited: accepted, not published again.
	st.api.Must(t, http.StatusNoContent, "POST", "/channels/"+smallChannel.String()+"/typing", alice.Token, nil, nil)
	for _, c := range []struct {
		c    *testenv.GatewayClient
		from guildhall.Snowflake
	}{{b, alice.ID}, {a, bob.ID}} {
		testenv.Eventually(t, 20*time.Second, func() error {
			for _, p := range c.c.Dispatches(guildhall.EventTypingStart) {
				var d guildhall.TypingStart
				if json.Unmarshal(p.D, &d) == nil && d.UserID == c.from && d.ChannelID == smallChannel {
					return nil
				}
			}
			return fmt.Errorf("no TYPING_START from %d", c.from)
		})
	}
	fromAlice := 0
	for _, p := range b.Dispatches(guildhall.EventTypingStart) {
		var d guildhall.TypingStart
		if json.Unmarshal(p.D, &d) == nil && d.UserID == alice.ID {
			fromAlice++
		}
	}
	if fromAlice != 1 {
		t.Errorf("bob received %d TYPING_START from alice; want 1 (her second one is rate limited)", fromAlice)
	}
	after := snapshot()
	for name, s := range after {
		if s == before[name] {
			continue
		}
		// Something was written meanwhile: only a key expiring on its own (a limit
		// marker) may be; a message from typing may not.
		str, err := st.nats.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for seq := before[name].last + 1; seq <= s.last; seq++ {
			m, err := str.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.Get(jetstream.MarkerReasonHeader) == "" {
				t.Errorf("stream %s got message %d on %s (%s) while users typed; want nothing", name, seq, m.Subject, m.Data)
			}
		}
	}
}

type chunk struct {
	GuildID    guildhall.Snowflake   `json:"guild_id"`
	Members    []guildhall.Member    `json:"members"`
	ChunkIndex int                   `json:"chunk_index"`
	ChunkCount int                   `json:"chunk_count"`
	NotFound   []guildhall.Snowflake `json:"not_found"`
	Presences  []presence.Presence   `json:"presences"`
	Nonce      string                `json:"nonce"`
}

// chunkReader decodes each GUILD_MEMBERS_CHUNK a client received once, however
// often a test looks (a 100,000-member answer is 15 MB of JSON).
type chunkReader struct {
	c       *testenv.GatewayClient
	read    int
	byNonce map[string][]chunk
}

func newChunkReader(c *testenv.GatewayClient) *chunkReader {
	return &chunkReader{c: c, byNonce: map[string][]chunk{}}
}

func (r *chunkReader) chunks(nonce string) []chunk {
	all := r.c.All()
	for _, p := range all[r.read:] {
		if p.Op != 0 || p.T != guildhall.EventGuildMembersChunk {
			continue
		}
		var ch chunk
		if json.Unmarshal(p.D, &ch) == nil {
			r.byNonce[ch.Nonce] = append(r.byNonce[ch.Nonce], ch)
		}
	}
	r.read = len(all)
	return r.byNonce[nonce]
}

func (r *chunkReader) wait(t testing.TB, nonce string, n int) []chunk {
	t.Helper()
	var got []chunk
	testenv.Eventually(t, 60*time.Second, func() error {
		if got = r.chunks(nonce); len(got) < n {
			return fmt.Errorf("%d chunks for %q; want %d", len(got), nonce, n)
		}
		return nil
	})
	return got
}

// Op 8 on a guild of 100,000 members (20,000 under -race): all of them in chunks
// of 1000 (100 of them), a query
// by username prefix, user ids with one unknown, presences; and nothing for a
// guild the session is not in.
func TestRequestGuildMembers100k(t *testing.T) {
	testenv.SkipShort(t, "100,000 members")
	members := 100_000
	if raceEnabled {
		members = 20_000
	}
	users := newSeedUsers(2_300_000, "rm", 2)
	alice, bob := users[0], users[1]
	st := startPresenceStack(t, stackOptions{gateways: 1, presence: fastPresence, seed: func(path string) {
		seedBolt(t, path,
			seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: users, Extra: members - 2, ExtraBase: 6_000_000},
			seedGuild{ID: otherGuild, ChannelID: otherChannel, Users: []seedUser{bob}})
	}})
	a, err := connect(t, st.gws[0].url, alice.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	cr := newChunkReader(a)
	send := func(d map[string]any) {
		t.Helper()
		if err := a.Send(8, d); err != nil {
			t.Fatal(err)
		}
	}

	send(map[string]any{"guild_id": largeGuild.String(), "query": "", "limit": 0, "nonce": "all"})
	all := cr.wait(t, "all", members/1000)
	seen := map[guildhall.Snowflake]bool{}
	for i, ch := range all {
		if ch.ChunkIndex != i || ch.ChunkCount != members/1000 || ch.GuildID != largeGuild || len(ch.Members) > 1000 {
			t.Fatalf("chunk %d: index %d count %d guild %d with %d members", i, ch.ChunkIndex, ch.ChunkCount, ch.GuildID, len(ch.Members))
		}
		for _, m := range ch.Members {
			if seen[m.User.ID] || m.GuildID != 0 || m.Roles == nil {
				t.Fatalf("member %+v repeated or malformed", m)
			}
			seen[m.User.ID] = true
		}
	}
	if len(seen) != members {
		t.Fatalf("%d distinct members in the chunks; want %d", len(seen), members)
	}

	// A prefix query, case-insensitive: member000120..member000129, limit 5.
	send(map[string]any{"guild_id": largeGuild.String(), "query": "MEMBER00012", "limit": 5, "nonce": "q"})
	q := cr.wait(t, "q", 1)[0]
	if q.ChunkCount != 1 || len(q.Members) != 5 {
		t.Fatalf("query chunk: count %d, %d members; want 1 and 5", q.ChunkCount, len(q.Members))
	}
	for _, m := range q.Members {
		if m.User.Username < "member000120" || m.User.Username > "member000129" {
			t.Errorf("query returned %s", m.User.Username)
		}
	}
	// No match: the whole guild is read (bounded) and the answer is empty.
	send(map[string]any{"guild_id": largeGuild.String(), "query": "nobody", "limit": 10, "nonce": "none"})
	if none := cr.wait(t, "none", 1)[0]; len(none.Members) != 0 || none.ChunkCount != 1 {
		t.Errorf("query without match = %+v", none)
	}

	// User ids, one unknown, with presences: alice is online, bob is not.
	send(map[string]any{"guild_id": largeGuild.String(), "user_ids": []string{alice.ID.String(), bob.ID.String(), "6000005", "42"}, "presences": true, "nonce": "ids"})
	ids := cr.wait(t, "ids", 1)[0]
	if len(ids.Members) != 3 || !slices.Equal(ids.NotFound, []guildhall.Snowflake{42}) {
		t.Errorf("user_ids chunk: %d members, not_found %v; want 3 and [42]", len(ids.Members), ids.NotFound)
	}
	try := 0
	testenv.Eventually(t, 20*time.Second, func() error {
		try++
		nonce := fmt.Sprintf("p%d", try)
		send(map[string]any{"guild_id": largeGuild.String(), "user_ids": []string{alice.ID.String(), bob.ID.String()}, "presences": true, "nonce": nonce})
		ps := cr.wait(t, nonce, 1)[0].Presences
		if len(ps) != 1 || ps[0].User.ID != alice.ID || ps[0].Status != presence.Online {
			return fmt.Errorf("presences %+v; want alice online", ps)
		}
		return nil
	})

	// Not a member: nothing comes back. The next request's answer shows the first
	// one was handled (they are served in order).
	send(map[string]any{"guild_id": otherGuild.String(), "query": "", "limit": 0, "nonce": "foreign"})
	send(map[string]any{"guild_id": largeGuild.String(), "user_ids": alice.ID.String(), "nonce": "after"})
	cr.wait(t, "after", 1)
	if got := cr.chunks("foreign"); len(got) != 0 {
		t.Errorf("a non-member got %d chunks of another guild", len(got))
	}

	// A malformed request closes the session with 4002.
	send(map[string]any{"guild_id": largeGuild.String(), "nonce": "bad"})
	if code, err := a.WaitClose(10 * time.Second); err != nil || code != gateway.CloseDecodeError {
		t.Errorf("bad op 8: close %d, %v; want %d", code, err, gateway.CloseDecodeError)
	}
}
