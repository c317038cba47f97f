package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	"github.com/guildhall/guildhall/gateway/etf"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
)

// What Discord's libraries ask of the gateway beyond JSON: the encodings and
// compressions a connection may choose, Bot-prefixed tokens, and shards.

// Guilds on different shards of two: (id >> 22) % 2 is 0 for evenGuild and 1 for
// oddGuild.
const (
	evenGuild   = guildhall.Snowflake(10 << 22)
	evenChannel = evenGuild + 1
	oddGuild    = guildhall.Snowflake(11 << 22)
	oddChannel  = oddGuild + 1
)

func startCompatStack(t *testing.T) (*presenceStack, []seedUser) {
	users := newSeedUsers(4_000_000, "cp", 2)
	st := startPresenceStack(t, stackOptions{gateways: 1, presence: fastPresence, limits: registry.StartLimits{MaxConcurrency: 64}, seed: func(path string) {
		seedBolt(t, path,
			seedGuild{ID: evenGuild, ChannelID: evenChannel, Users: users},
			seedGuild{ID: oddGuild, ChannelID: oddChannel, Users: users})
	}})
	return st, users
}

// identifyOn sends IDENTIFY with d's fields added to a minimal one and returns
// READY.
func identifyOn(t *testing.T, c *testenv.GatewayClient, token string, extra map[string]any) testenv.Payload {
	t.Helper()
	c.WaitFor(t, "op:10", 10*time.Second)
	d := map[string]any{"token": token, "intents": guildhall.IntentsAll, "properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}}
	for k, v := range extra {
		d[k] = v
	}
	if err := c.Send(gateway.OpIdentify, d); err != nil {
		t.Fatal(err)
	}
	return c.WaitFor(t, guildhall.EventReady, 20*time.Second)
}

type messageData struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	GuildID string `json:"guild_id"`
}

// Every way a client may ask for its payloads gets the same events: JSON plain,
// with zlib-stream or zstd-stream transport compression, with payload
// compression, and ETF plain; an ETF client's own payloads (heartbeats, op 3) are
// read.
func TestEncodingsAndCompressions(t *testing.T) {
	t.Parallel()
	st, users := startCompatStack(t)
	base := st.gws[0].url
	etfURL := strings.Replace(base, "encoding=json", "encoding=etf", 1)
	clients := map[string]*testenv.GatewayClient{
		"json":           testenv.DialGateway(t, base),
		"zlib-stream":    testenv.DialGatewayZlibStream(t, base),
		"zstd-stream":    testenv.DialGatewayZstdStream(t, base),
		"payload (zlib)": testenv.DialGateway(t, base),
		"etf":            testenv.DialGatewayETF(t, etfURL),
	}
	for name, c := range clients {
		extra := map[string]any{}
		if name == "payload (zlib)" {
			extra["compress"] = true
		}
		ready := identifyOn(t, c, users[1].Token, extra)
		var r struct {
			User struct {
				ID string `json:"id"`
			} `json:"user"`
			Guilds []struct {
				ID string `json:"id"`
			} `json:"guilds"`
		}
		if err := json.Unmarshal(ready.D, &r); err != nil || r.User.ID != users[1].ID.String() || len(r.Guilds) != 2 {
			t.Fatalf("%s: READY = %s (%v)", name, ready.D, err)
		}
		c.WaitFor(t, guildhall.EventGuildCreate, 10*time.Second)
	}
	// Heartbeats and op 3 from an ETF client are understood.
	e := clients["etf"]
	if err := e.Send(gateway.OpHeartbeat, e.LastSeq()); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(t, "op:11", 10*time.Second)
	if err := e.Send(gateway.OpPresenceUpdate, map[string]any{"status": "idle", "since": nil, "afk": false, "activities": []any{map[string]any{"name": "chess", "type": 0}}}); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		content := fmt.Sprintf("to every encoding %d: <é> \"quoted\"", i)
		id := postMessage(t, st, users[0].Token, evenChannel, content)
		for name, c := range clients {
			p := c.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)
			var m messageData
			if err := json.Unmarshal(p.D, &m); err != nil || m.ID != id || m.Content != content || m.GuildID != evenGuild.String() || p.Seq() == 0 {
				t.Fatalf("%s: MESSAGE_CREATE = %s, s %d (%v); want id %s content %q", name, p.D, p.Seq(), err, id, content)
			}
		}
	}
	// The idle presence, set over ETF, reached every session of the guilds in
	// every encoding, its activity in Discord's shape.
	for name, c := range clients {
		testenv.Eventually(t, 20*time.Second, func() error {
			for _, p := range c.Dispatches(guildhall.EventPresenceUpdate) {
				var pu struct {
					Status     string `json:"status"`
					Activities []struct {
						Name      string `json:"name"`
						Type      *int   `json:"type"`
						CreatedAt int64  `json:"created_at"`
					} `json:"activities"`
				}
				if json.Unmarshal(p.D, &pu) == nil && pu.Status == "idle" && len(pu.Activities) == 1 &&
					pu.Activities[0].Name == "chess" && pu.Activities[0].Type != nil && pu.Activities[0].CreatedAt > 0 {
					return nil
				}
			}
			return fmt.Errorf("%s: no idle PRESENCE_UPDATE with the activity", name)
		})
	}
	for name, c := range clients {
		for _, p := range c.All() {
			if p.Op < 0 {
				t.Errorf("%s: a payload the client could not read: %s", name, p.D)
			}
		}
	}
}

// A message's mentioned users get its content without MESSAGE_CONTENT, and the
// others get it emptied, in every variant of the frame: ETF and payload
// compression are built from the frame the session was given (full or without
// content), not from the event.
func TestMentionedSessionsInEveryEncoding(t *testing.T) {
	t.Parallel()
	users := newSeedUsers(5_000_000, "mt", 3)
	st := startPresenceStack(t, stackOptions{gateways: 1, presence: fastPresence, limits: registry.StartLimits{MaxConcurrency: 64}, seed: func(path string) {
		seedBolt(t, path, seedGuild{ID: evenGuild, ChannelID: evenChannel, Users: users})
	}})
	base := st.gws[0].url
	etfURL := strings.Replace(base, "encoding=json", "encoding=etf", 1)
	mentioned, other := users[0], users[2]
	type session struct {
		name      string
		mentioned bool
		c         *testenv.GatewayClient
	}
	var sessions []session
	for _, u := range []seedUser{mentioned, other} {
		for _, enc := range []string{"etf", "payload (zlib)", "json"} {
			c := testenv.DialGateway(t, base)
			extra := map[string]any{"intents": guildhall.IntentsAll &^ guildhall.IntentMessageContent}
			switch enc {
			case "etf":
				c = testenv.DialGatewayETF(t, etfURL)
			case "payload (zlib)":
				extra["compress"] = true
			}
			identifyOn(t, c, u.Token, extra)
			c.WaitFor(t, guildhall.EventGuildCreate, 10*time.Second)
			sessions = append(sessions, session{enc + " " + u.Name, u == mentioned, c})
		}
	}
	withMention := "for you <@" + mentioned.ID.String() + ">"
	for _, m := range []struct {
		content      string
		forMentioned string // what the mentioned user's sessions see
	}{
		{withMention, withMention},
		{"for nobody", ""},
	} {
		id := postMessage(t, st, users[1].Token, evenChannel, m.content)
		for _, s := range sessions {
			p := s.c.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)
			var got messageData
			if err := json.Unmarshal(p.D, &got); err != nil || got.ID != id {
				t.Fatalf("%s: MESSAGE_CREATE = %s (%v); want message %s", s.name, p.D, err, id)
			}
			want := ""
			if s.mentioned {
				want = m.forMentioned
			}
			if got.Content != want {
				t.Errorf("%s: content of %q = %q; want %q", s.name, m.content, got.Content, want)
			}
		}
	}
	for _, s := range sessions {
		for _, p := range s.c.All() {
			if p.Op < 0 {
				t.Errorf("%s: a payload the client could not read: %s", s.name, p.D)
			}
		}
	}
}

// An ETF connection takes only what Discord takes: binary frames holding a term
// with string keys. Anything else closes it with 4002, as does an encoding that
// is neither json nor etf.
func TestETFRefusals(t *testing.T) {
	t.Parallel()
	st, users := startCompatStack(t)
	etfURL := strings.Replace(st.gws[0].url, "encoding=json", "encoding=etf", 1)
	atomKeys, err := etf.Encode(nil, []byte(`{"op":2,"d":{"token":"`+users[0].Token+`","intents":0,"properties":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		send func(c *testenv.GatewayClient) error
	}{
		{"atom keys", func(c *testenv.GatewayClient) error { return c.SendBinary(atomKeys) }},
		{"JSON text", func(c *testenv.GatewayClient) error { return c.SendRaw([]byte(`{"op":1,"d":null}`)) }},
		{"not a term", func(c *testenv.GatewayClient) error { return c.SendBinary([]byte{131, 0xff}) }},
		{"an improper list", func(c *testenv.GatewayClient) error {
			return c.SendBinary([]byte{131, 108, 0, 0, 0, 1, 97, 1, 97, 1})
		}},
	} {
		cl := testenv.DialGatewayETF(t, etfURL)
		cl.WaitFor(t, "op:10", 10*time.Second)
		if err := c.send(cl); err != nil {
			t.Fatal(err)
		}
		if code, err := cl.WaitClose(10 * time.Second); code != gateway.CloseDecodeError {
			t.Errorf("%s: closed with %d (%v); want %d", c.name, code, err, gateway.CloseDecodeError)
		}
	}
	bad := testenv.DialGateway(t, strings.Replace(st.gws[0].url, "encoding=json", "encoding=xml", 1))
	if code, err := bad.WaitClose(10 * time.Second); code != gateway.CloseDecodeError {
		t.Errorf("encoding=xml: closed with %d (%v); want %d", code, err, gateway.CloseDecodeError)
	}
}

// discordgo.New("Bot " + token) sends the prefix at IDENTIFY and RESUME: both
// accept it, as REST does.
func TestBotPrefixedToken(t *testing.T) {
	t.Parallel()
	st, users := startCompatStack(t)
	c := testenv.DialGateway(t, st.gws[0].url)
	ready := identifyOn(t, c, "Bot "+users[0].Token, nil)
	var r struct {
		SessionID string `json:"session_id"`
	}
	_ = json.Unmarshal(ready.D, &r)
	c.WaitFor(t, guildhall.EventGuildCreate, 10*time.Second)
	seq := c.LastSeq()
	c.Drop()
	id := postMessage(t, st, users[1].Token, oddChannel, "while away")
	r2, replay := resumeOn(t, st.gws[0].url, "Bot "+users[0].Token, r.SessionID, seq)
	if got := messageIDs(t, replay); !slices.Equal(got, []string{id}) {
		t.Fatalf("resumed with a Bot-prefixed token: replayed %v; want [%s]", got, id)
	}
	_ = r2
	// A wrong token with the prefix is still wrong.
	bad := testenv.DialGateway(t, st.gws[0].url)
	bad.WaitFor(t, "op:10", 10*time.Second)
	if err := bad.Send(gateway.OpIdentify, map[string]any{"token": "Bot nope", "properties": map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if code, _ := bad.WaitClose(10 * time.Second); code != gateway.CloseAuthenticationFailed {
		t.Fatalf("IDENTIFY with Bot nope closed with %d; want %d", code, gateway.CloseAuthenticationFailed)
	}
}

// Shards as Discord's: [i, n] receives the guilds with (id >> 22) % n == i, in
// READY, GUILD_CREATE and every event after, and keeps them across a resume; a
// shard array that is not one closes with 4010.
func TestShards(t *testing.T) {
	t.Parallel()
	st, users := startCompatStack(t)
	url := st.gws[0].url
	shard := map[int]*testenv.GatewayClient{}
	sessions := map[int]string{}
	for i := range 2 {
		c := testenv.DialGateway(t, url)
		ready := identifyOn(t, c, users[0].Token, map[string]any{"shard": []int{i, 2}})
		var r struct {
			SessionID string `json:"session_id"`
			Shard     []int  `json:"shard"`
			Guilds    []struct {
				ID string `json:"id"`
			} `json:"guilds"`
		}
		_ = json.Unmarshal(ready.D, &r)
		want := []guildhall.Snowflake{evenGuild, oddGuild}[i]
		if len(r.Guilds) != 1 || r.Guilds[0].ID != want.String() || !slices.Equal(r.Shard, []int{i, 2}) {
			t.Fatalf("shard [%d,2]: READY = %s; want guild %s alone", i, ready.D, want)
		}
		gc := c.WaitFor(t, guildhall.EventGuildCreate, 10*time.Second)
		var g struct{ ID string }
		_ = json.Unmarshal(gc.D, &g)
		if g.ID != want.String() {
			t.Fatalf("shard [%d,2]: GUILD_CREATE of %s; want %s", i, g.ID, want)
		}
		shard[i], sessions[i] = c, r.SessionID
	}
	even := postMessage(t, st, users[1].Token, evenChannel, "even")
	odd := postMessage(t, st, users[1].Token, oddChannel, "odd")
	for i, want := range []string{even, odd} {
		p := shard[i].WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)
		if got := messageIDs(t, []testenv.Payload{p}); got[0] != want {
			t.Fatalf("shard %d got message %s; want %s", i, got[0], want)
		}
	}
	// The odd shard resumes and still gets only its guild.
	seq := shard[1].LastSeq()
	shard[1].Drop()
	missedEven := postMessage(t, st, users[1].Token, evenChannel, "even while away")
	missedOdd := postMessage(t, st, users[1].Token, oddChannel, "odd while away")
	c, replay := resumeOn(t, url, users[0].Token, sessions[1], seq)
	if got := messageIDs(t, replay); !slices.Equal(got, []string{missedOdd}) {
		t.Fatalf("resumed shard 1 replayed %v; want [%s] (not %s)", got, missedOdd, missedEven)
	}
	postMessage(t, st, users[1].Token, evenChannel, "even after")
	last := postMessage(t, st, users[1].Token, oddChannel, "odd after")
	p := c.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)
	if got := messageIDs(t, []testenv.Payload{p}); got[0] != last {
		t.Fatalf("resumed shard 1 got %s; want only %s", got[0], last)
	}
	// Only shard 0 missed nothing of its own: even and "even while away" and "even after".
	if n := len(shard[0].Dispatches(guildhall.EventMessageCreate)); n < 1 {
		t.Fatalf("shard 0 got %d messages", n)
	}

	// A DM belongs to no guild: its channel, messages and typing reach shard 0
	// alone, live, in READY's private_channels and in a resume's replay.
	var dm struct{ ID string }
	st.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", users[1].Token, map[string]any{"recipient_id": users[0].ID.String()}, &dm)
	dmID := guildhall.Snowflake(mustID(t, dm.ID))
	shard[0].WaitFor(t, guildhall.EventChannelCreate, 10*time.Second)
	dmMsg := postMessage(t, st, users[1].Token, dmID, "a DM")
	for got := ""; got != dmMsg; { // after its guild's messages of above
		got = messageIDs(t, []testenv.Payload{shard[0].WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)})[0]
	}
	st.api.Must(t, http.StatusNoContent, "POST", "/channels/"+dm.ID+"/typing", users[1].Token, nil, nil)
	shard[0].WaitFor(t, guildhall.EventTypingStart, 10*time.Second) // the pump handled it for both shards' sessions
	oddMark := postMessage(t, st, users[1].Token, oddChannel, "odd after the DM")
	if got := messageIDs(t, []testenv.Payload{c.WaitFor(t, guildhall.EventMessageCreate, 10*time.Second)}); got[0] != oddMark {
		t.Fatalf("shard 1 got message %s after the DM; want only %s of its guild", got[0], oddMark)
	}
	for _, p := range c.All() {
		if p.Op == 0 && strings.Contains(string(p.D), dm.ID) {
			t.Fatalf("shard 1 got %s of the DM: %s", p.T, p.D)
		}
	}
	for i, want := range []int{1, 0} {
		cl := testenv.DialGateway(t, url)
		var r struct {
			PrivateChannels []struct{ ID string } `json:"private_channels"`
		}
		// The DM's other participant: users[0]'s shard buckets are taken for 5 s.
		_ = json.Unmarshal(identifyOn(t, cl, users[1].Token, map[string]any{"shard": []int{i, 2}}).D, &r)
		if len(r.PrivateChannels) != want || (want == 1 && r.PrivateChannels[0].ID != dm.ID) {
			t.Errorf("shard [%d,2]: READY's private_channels = %+v; want %d (the DM on shard 0 only)", i, r.PrivateChannels, want)
		}
		cl.Close(1000)
	}
	seq = c.LastSeq()
	c.Drop()
	postMessage(t, st, users[1].Token, dmID, "a DM while shard 1 is away")
	missedOdd = postMessage(t, st, users[1].Token, oddChannel, "odd while away again")
	c, replay = resumeOn(t, url, users[0].Token, sessions[1], seq)
	if got := messageIDs(t, replay); !slices.Equal(got, []string{missedOdd}) {
		t.Fatalf("resumed shard 1 replayed %v; want [%s] and no DM", got, missedOdd)
	}

	// Joining guilds while connected: each GUILD_CREATE goes to the guild's shard
	// alone.
	for range 3 {
		var g struct{ ID guildhall.Snowflake }
		st.api.Must(t, http.StatusCreated, "POST", "/guilds", users[1].Token, map[string]string{"name": "joined"}, &g)
		var chs []struct{ ID string }
		st.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID.String()+"/channels", users[1].Token, nil, &chs)
		var inv struct{ Code string }
		st.api.Must(t, http.StatusOK, "POST", "/channels/"+chs[0].ID+"/invites", users[1].Token, map[string]any{}, &inv)
		st.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, users[0].Token, nil, nil)
		mine := int((uint64(g.ID) >> 22) % 2)
		owner := map[int]*testenv.GatewayClient{0: shard[0], 1: c}[mine]
		other := map[int]*testenv.GatewayClient{0: c, 1: shard[0]}[mine]
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, p := range owner.Dispatches(guildhall.EventGuildCreate) {
				var gc struct{ ID guildhall.Snowflake }
				if json.Unmarshal(p.D, &gc) == nil && gc.ID == g.ID {
					return nil
				}
			}
			return fmt.Errorf("shard %d has no GUILD_CREATE of the guild %s it joined", mine, g.ID)
		})
		// Its messages too, and not the other shard.
		id := postMessage(t, st, users[1].Token, guildhall.Snowflake(mustID(t, chs[0].ID)), "in the joined guild")
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, p := range owner.Dispatches(guildhall.EventMessageCreate) {
				if messageIDs(t, []testenv.Payload{p})[0] == id {
					return nil
				}
			}
			return fmt.Errorf("shard %d did not get the joined guild's message", mine)
		})
		for _, p := range other.Dispatches(guildhall.EventGuildCreate) {
			var gc struct{ ID guildhall.Snowflake }
			if json.Unmarshal(p.D, &gc) == nil && gc.ID == g.ID {
				t.Fatalf("shard %d got the GUILD_CREATE of %s, a guild of shard %d", 1-mine, g.ID, mine)
			}
		}
		for _, p := range other.Dispatches(guildhall.EventMessageCreate) {
			if messageIDs(t, []testenv.Payload{p})[0] == id {
				t.Fatalf("shard %d got a message of guild %s, of shard %d", 1-mine, g.ID, mine)
			}
		}
	}

	for _, bad := range [][]int{{7, 2}, {2, 2}, {-1, 2}, {0, 0}, {0}, {1, 2, 3}} {
		cl := testenv.DialGateway(t, url)
		cl.WaitFor(t, "op:10", 10*time.Second)
		if err := cl.Send(gateway.OpIdentify, map[string]any{"token": users[0].Token, "shard": bad, "properties": map[string]string{}}); err != nil {
			t.Fatal(err)
		}
		if code, _ := cl.WaitClose(10 * time.Second); code != gateway.CloseInvalidShard {
			t.Errorf("shard %v: closed with %d; want %d", bad, code, gateway.CloseInvalidShard)
		}
	}
}

// READY is one sequence before its GUILD_CREATEs (every dispatch's s above the
// one before, as on Discord), and resuming from READY's s replays nothing twice.
func TestReadyBeforeGuildCreatesInSequence(t *testing.T) {
	t.Parallel()
	st, users := startCompatStack(t)
	c := testenv.DialGateway(t, st.gws[0].url)
	ready := identifyOn(t, c, users[0].Token, nil)
	g1 := c.WaitFor(t, guildhall.EventGuildCreate, 10*time.Second)
	g2 := c.WaitFor(t, guildhall.EventGuildCreate, 10*time.Second)
	if ready.S == nil || g1.Seq() != ready.Seq()+1 || g2.Seq() != g1.Seq() {
		t.Fatalf("READY s=%d, GUILD_CREATEs s=%d, %d; want READY one below", ready.Seq(), g1.Seq(), g2.Seq())
	}
	var r struct {
		SessionID string `json:"session_id"`
	}
	_ = json.Unmarshal(ready.D, &r)
	c.Drop()
	id := postMessage(t, st, users[1].Token, evenChannel, "after READY")
	_, replay := resumeOn(t, st.gws[0].url, users[0].Token, r.SessionID, ready.Seq())
	if got := messageIDs(t, replay); !slices.Equal(got, []string{id}) {
		t.Fatalf("resumed from READY's s: replayed %v; want [%s]", got, id)
	}
}

func mustID(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	if _, err := fmt.Sscan(s, &v); err != nil {
		t.Fatalf("snowflake %q: %v", s, err)
	}
	return v
}
