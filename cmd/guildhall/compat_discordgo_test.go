package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
)

// discordgo v0.29.0, unchanged but for its base URL, against a running
// Guildhall: a bot made as discordgo's README makes one (discordgo.New("Bot " +
// token)), its handlers, sharded sessions, and its resume after the server closes
// the connection.

// joinGuild makes the token's user a member through a fresh invite of channel.
func joinGuild(t *testing.T, s *stack, ownerToken, channel, token string) {
	t.Helper()
	var inv struct{ Code string }
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+channel+"/invites", ownerToken, map[string]any{}, &inv)
	s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, token, nil, nil)
}

// events collects what discordgo's handlers saw, for assertions.
type events struct {
	mu      sync.Mutex
	byType  map[string][]any
	changed chan struct{}
}

func newEvents() *events { return &events{byType: map[string][]any{}, changed: make(chan struct{}, 1)} }

func (e *events) add(kind string, v any) {
	e.mu.Lock()
	e.byType[kind] = append(e.byType[kind], v)
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *events) list(kind string) []any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.byType[kind])
}

// waitFor waits until ok holds for what was seen.
func (e *events) waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !ok() {
		select {
		case <-e.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("discordgo: no %s within %v", what, timeout)
		}
	}
}

// What the handlers keep of discordgo's structs.
type (
	seenReady struct {
		SessionID, UserID string
		Bot               bool
		Guilds            int
		Shard             *[2]int
	}
	seenMessage struct {
		ID, Content, AuthorID, GuildID string
		Edited                         bool
	}
	seenPresence struct {
		GuildID, UserID string
		Status          discordgo.Status
		Activities      []seenActivity
		State           *seenPresence // discordgo's state after the update
	}
	seenActivity struct {
		Name      string
		Type      discordgo.ActivityType
		CreatedAt time.Time
	}
	seenChunk struct {
		GuildID, Nonce string
		Members        int
		Presences      []seenPresence
	}
)

func seeMessage(m *discordgo.Message) seenMessage {
	c := seenMessage{ID: m.ID, Content: m.Content, GuildID: m.GuildID, Edited: m.EditedTimestamp != nil}
	if m.Author != nil {
		c.AuthorID = m.Author.ID
	}
	return c
}

func seePresence(p *discordgo.Presence) seenPresence {
	c := seenPresence{Status: p.Status}
	if p.User != nil {
		c.UserID = p.User.ID
	}
	for _, a := range p.Activities {
		c.Activities = append(c.Activities, seenActivity{Name: a.Name, Type: a.Type, CreatedAt: a.CreatedAt})
	}
	return c
}

// botSession is a discordgo session as a bot's README makes it, with every
// intent and handlers that record what they see.
func botSession(t *testing.T, tok string, shard, shards int) (*discordgo.Session, *events) {
	t.Helper()
	dg, err := discordgo.New("Bot " + tok)
	if err != nil {
		t.Fatal(err)
	}
	dg.Identify.Intents = discordgo.IntentsAll
	dg.ShardID, dg.ShardCount = shard, shards
	dg.LogLevel = discordgo.LogError
	// Handlers run on discordgo's reading goroutine and keep copies: discordgo's
	// state goes on changing the structs it hands them.
	dg.SyncEvents = true
	ev := newEvents()
	dg.AddHandler(func(_ *discordgo.Session, r *discordgo.Ready) {
		c := seenReady{SessionID: r.SessionID, Guilds: len(r.Guilds), Shard: r.Shard}
		if r.User != nil {
			c.UserID, c.Bot = r.User.ID, r.User.Bot
		}
		ev.add("ready", c)
	})
	dg.AddHandler(func(_ *discordgo.Session, _ *discordgo.Resumed) { ev.add("resumed", true) })
	dg.AddHandler(func(_ *discordgo.Session, g *discordgo.GuildCreate) { ev.add("guild", g.ID) })
	dg.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { ev.add("message", seeMessage(m.Message)) })
	dg.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageUpdate) { ev.add("edit", seeMessage(m.Message)) })
	dg.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageDelete) { ev.add("delete", m.ID) })
	dg.AddHandler(func(s *discordgo.Session, p *discordgo.PresenceUpdate) {
		c := seePresence(&p.Presence)
		c.GuildID = p.GuildID
		// What discordgo's state holds of the user now.
		if st, err := s.State.Presence(p.GuildID, c.UserID); err == nil {
			sc := seePresence(st)
			c.State = &sc
		}
		ev.add("presence", c)
	})
	dg.AddHandler(func(_ *discordgo.Session, c *discordgo.GuildMembersChunk) {
		sc := seenChunk{GuildID: c.GuildID, Nonce: c.Nonce, Members: len(c.Members)}
		for _, p := range c.Presences {
			sc.Presences = append(sc.Presences, seePresence(p))
		}
		ev.add("chunk", sc)
	})
	dg.AddHandler(func(_ *discordgo.Session, ty *discordgo.TypingStart) { ev.add("typing", *ty) })
	t.Cleanup(func() { _ = dg.Close() })
	return dg, ev
}

// The bot made as discordgo's README makes it: it identifies with the Bot
// prefix, sees its guild, messages, edits, deletes and typing, and decodes a
// member's presence with an activity both in PRESENCE_UPDATE and in
// GUILD_MEMBERS_CHUNK's presences.
func TestDiscordgoBot(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	pointDiscordgo(t, "http://"+s.addr)
	f := newGuildFixture(t, s)
	tok := createBot(t, dir, "gobot"+randName())
	joinGuild(t, s, f.ownerToken, f.channelID, tok)

	bot, ev := botSession(t, tok, 0, 1)
	if err := bot.Open(); err != nil {
		t.Fatalf("discordgo Open with a Bot token: %v", err)
	}
	ev.waitFor(t, "GUILD_CREATE", 15*time.Second, func() bool { return slices.Contains(ev.list("guild"), any(f.guildID)) })
	r := ev.list("ready")[0].(seenReady)
	if r.UserID == "" || !r.Bot || r.SessionID == "" {
		t.Fatalf("READY = %+v; want the bot's user and a session", r)
	}
	// REST through discordgo, with the same Bot token.
	if g, err := bot.Guild(f.guildID); err != nil || g.ID != f.guildID {
		t.Fatalf("bot.Guild = %+v, %v", g, err)
	}

	// Messages, an edit, a delete and typing, from the member.
	m := s.post(t, f.memberToken, f.channelID, "hello bot")
	ev.waitFor(t, "MESSAGE_CREATE", 10*time.Second, func() bool {
		for _, v := range ev.list("message") {
			if msg := v.(seenMessage); msg.ID == m.ID && msg.Content == "hello bot" && msg.AuthorID == f.memberID {
				return true
			}
		}
		return false
	})
	s.rest.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channelID+"/messages/"+m.ID, f.memberToken, map[string]string{"content": "edited"}, nil)
	ev.waitFor(t, "MESSAGE_UPDATE", 10*time.Second, func() bool {
		for _, v := range ev.list("edit") {
			if msg := v.(seenMessage); msg.ID == m.ID && msg.Content == "edited" && msg.Edited {
				return true
			}
		}
		return false
	})
	s.rest.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channelID+"/messages/"+m.ID, f.memberToken, nil, nil)
	ev.waitFor(t, "MESSAGE_DELETE", 10*time.Second, func() bool { return slices.Contains(ev.list("delete"), any(m.ID)) })
	s.rest.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channelID+"/typing", f.memberToken, nil, nil)
	ev.waitFor(t, "TYPING_START", 10*time.Second, func() bool {
		for _, v := range ev.list("typing") {
			if ty := v.(discordgo.TypingStart); ty.UserID == f.memberID && ty.ChannelID == f.channelID {
				return true
			}
		}
		return false
	})
	// The bot posts through discordgo and sees its own message.
	sent, err := bot.ChannelMessageSend(f.channelID, "from the bot")
	if err != nil || sent.Content != "from the bot" {
		t.Fatalf("ChannelMessageSend = %+v, %v", sent, err)
	}

	// The member, on discordgo too (a user token, no prefix), plays chess.
	member, err := discordgo.New(f.memberToken)
	if err != nil {
		t.Fatal(err)
	}
	member.Identify.Intents = discordgo.IntentsAll
	member.LogLevel = discordgo.LogError
	if err := member.Open(); err != nil {
		t.Fatalf("member Open: %v", err)
	}
	t.Cleanup(func() { _ = member.Close() })
	if err := member.UpdateGameStatus(0, "chess"); err != nil {
		t.Fatal(err)
	}
	playing := func(p *seenPresence) bool {
		return p != nil && p.UserID == f.memberID && p.Status == discordgo.StatusOnline &&
			len(p.Activities) == 1 && p.Activities[0].Name == "chess" && p.Activities[0].Type == discordgo.ActivityTypeGame &&
			time.Since(p.Activities[0].CreatedAt) < time.Minute
	}
	ev.waitFor(t, "PRESENCE_UPDATE with the game", 20*time.Second, func() bool {
		for _, v := range ev.list("presence") {
			// discordgo's state took it too.
			if p := v.(seenPresence); p.GuildID == f.guildID && playing(&p) && playing(p.State) {
				return true
			}
		}
		return false
	})
	if err := bot.RequestGuildMembers(f.guildID, "", 0, "chunk-1", true); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "GUILD_MEMBERS_CHUNK with presences", 15*time.Second, func() bool {
		for _, v := range ev.list("chunk") {
			c := v.(seenChunk)
			if c.Nonce != "chunk-1" || c.GuildID != f.guildID || c.Members != 3 {
				continue
			}
			for _, p := range c.Presences {
				if playing(&p) {
					return true
				}
			}
		}
		return false
	})
}

// Two sessions of one bot with shards [0, 2] and [1, 2] see disjoint sets of its
// guilds, (id >> 22) % 2 deciding, whose union is all of them; each receives
// only its guilds' messages.
func TestDiscordgoShards(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	pointDiscordgo(t, "http://"+s.addr)
	owner, _ := s.rest.Register(t, "shardowner"+randName())
	tok := createBot(t, dir, "shardbot"+randName())
	// Guilds until both shards have some: a guild id's shard is its creation
	// millisecond's parity.
	channels := map[string]string{}
	count := [2]int{}
	for len(channels) < 4 || count[0] == 0 || count[1] == 0 {
		if len(channels) == 16 {
			t.Fatal("16 guilds, all on one shard")
		}
		var g struct{ ID string }
		s.rest.Must(t, http.StatusCreated, "POST", "/guilds", owner, map[string]string{"name": "shard guild"}, &g)
		var chs []struct{ ID string }
		s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", owner, nil, &chs)
		channels[g.ID] = chs[0].ID
		joinGuild(t, s, owner, chs[0].ID, tok)
		count[shardOf(t, g.ID, 2)]++
		time.Sleep(2 * time.Millisecond)
	}
	var gw struct{ Shards int }
	s.rest.Must(t, http.StatusOK, "GET", "/gateway/bot", tok, nil, &gw)
	if gw.Shards != 1 {
		t.Errorf("GET /gateway/bot shards = %d for %d guilds; want 1", gw.Shards, len(channels))
	}

	var evs [2]*events
	for i := range 2 {
		dg, ev := botSession(t, tok, i, 2)
		if err := dg.Open(); err != nil {
			t.Fatalf("shard %d: Open: %v", i, err)
		}
		ev.waitFor(t, fmt.Sprintf("shard %d's guilds", i), 15*time.Second, func() bool { return len(ev.list("guild")) >= count[i] })
		evs[i] = ev
	}
	time.Sleep(200 * time.Millisecond) // a GUILD_CREATE too many would come now
	seen := map[string]int{}
	for i, ev := range evs {
		r := ev.list("ready")[0].(seenReady)
		if r.Guilds != count[i] || r.Shard == nil || *r.Shard != [2]int{i, 2} {
			t.Errorf("shard %d: READY has %d guilds, shard %v; want %d, [%d 2]", i, r.Guilds, r.Shard, count[i], i)
		}
		for _, v := range ev.list("guild") {
			id := v.(string)
			if shardOf(t, id, 2) != i {
				t.Errorf("shard %d got guild %s of shard %d", i, id, shardOf(t, id, 2))
			}
			seen[id]++
		}
	}
	if len(seen) != len(channels) {
		t.Errorf("the shards saw %d guilds together; want all %d", len(seen), len(channels))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("guild %s seen by %d shards", id, n)
		}
	}
	// A message in each guild reaches its shard alone.
	for id, ch := range channels {
		m := s.post(t, owner, ch, "to "+id)
		mine := evs[shardOf(t, id, 2)]
		mine.waitFor(t, "the message of guild "+id, 10*time.Second, func() bool {
			return slices.ContainsFunc(mine.list("message"), func(v any) bool { return v.(seenMessage).ID == m.ID })
		})
	}
	time.Sleep(200 * time.Millisecond)
	for i, ev := range evs {
		for _, v := range ev.list("message") {
			if msg := v.(seenMessage); shardOf(t, msg.GuildID, 2) != i {
				t.Errorf("shard %d got a message of guild %s", i, msg.GuildID)
			}
		}
	}
}

func shardOf(t *testing.T, id string, n uint64) int {
	t.Helper()
	var v uint64
	if _, err := fmt.Sscan(id, &v); err != nil {
		t.Fatalf("snowflake %q: %v", id, err)
	}
	return int((v >> 22) % n)
}

// The server closes the bot's connection with 4000 (as when its gateway drains
// or another takes the session over); discordgo reconnects and resumes, and a
// message posted while it was away arrives once, then live ones again.
func TestDiscordgoResumeAfterServerClose(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	pointDiscordgo(t, "http://"+s.addr)
	f := newGuildFixture(t, s)
	tok := createBot(t, dir, "resumebot"+randName())
	joinGuild(t, s, f.ownerToken, f.channelID, tok)

	bot, ev := botSession(t, tok, 0, 1)
	// Reconnects wait at the dialer until the test lets them through, so that the
	// message is surely posted while the bot is away.
	gate := make(chan struct{})
	var gateOnce sync.Once
	var dials int
	var dialMu sync.Mutex
	bot.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		dialMu.Lock()
		dials++
		first := dials == 1
		dialMu.Unlock()
		if !first {
			select {
			case <-gate:
			case <-time.After(30 * time.Second):
			}
		}
		return net.Dial(network, addr)
	}}
	t.Cleanup(func() { gateOnce.Do(func() { close(gate) }) })
	if err := bot.Open(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "GUILD_CREATE", 15*time.Second, func() bool { return len(ev.list("guild")) == 1 })
	before := s.post(t, f.memberToken, f.channelID, "before")
	ev.waitFor(t, "the first message", 10*time.Second, func() bool { return len(ev.list("message")) == 1 })
	sessionID := ev.list("ready")[0].(seenReady).SessionID

	// Close the session from the server, as a gateway does for a session that
	// resumed elsewhere: close 4000.
	nc, js := connectNATS(t, dir, ghnats.RoleGateway)
	defer nc.Close()
	kv, err := js.KeyValue(context.Background(), ghnats.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), sessionID)
	if err != nil {
		t.Fatalf("the bot's session in the registry: %v", err)
	}
	var reg registry.Session
	if err := json.Unmarshal(e.Value(), &reg); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(ghnats.KickSubject(reg.Node), []byte(sessionID)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		dialMu.Lock()
		defer dialMu.Unlock()
		if dials < 2 {
			return fmt.Errorf("discordgo has not tried to reconnect")
		}
		return nil
	})
	away := s.post(t, f.memberToken, f.channelID, "while away")
	gateOnce.Do(func() { close(gate) })

	ev.waitFor(t, "RESUMED", 20*time.Second, func() bool { return len(ev.list("resumed")) == 1 })
	ev.waitFor(t, "the message posted while away", 10*time.Second, func() bool {
		return slices.ContainsFunc(ev.list("message"), func(v any) bool { return v.(seenMessage).ID == away.ID })
	})
	after := s.post(t, f.memberToken, f.channelID, "after")
	ev.waitFor(t, "a live message after the resume", 10*time.Second, func() bool {
		return slices.ContainsFunc(ev.list("message"), func(v any) bool { return v.(seenMessage).ID == after.ID })
	})
	var got []string
	for _, v := range ev.list("message") {
		got = append(got, v.(seenMessage).ID)
	}
	if want := []string{before.ID, away.ID, after.ID}; !slices.Equal(got, want) {
		t.Fatalf("discordgo saw messages %v; want %v, each once", got, want)
	}
	if n := len(ev.list("ready")); n != 1 {
		t.Fatalf("discordgo identified %d times; want 1 (it resumed)", n)
	}
}
