package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// Two members each with a session; one posts over REST; both sessions get the
// MESSAGE_CREATE exactly once; a non-member gets nothing and cannot read the channel.
func TestMessageReachesMembersExactlyOnce(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)

	owner := testenv.DialGateway(t, s.gatewayURL())
	member := testenv.DialGateway(t, s.gatewayURL())
	outsider := testenv.DialGateway(t, s.gatewayURL())
	for _, c := range []struct {
		c     *testenv.GatewayClient
		token string
	}{{owner, f.ownerToken}, {member, f.memberToken}, {outsider, f.outsiderToken}} {
		c.c.WaitFor(t, "op:10", 5*time.Second)
		ready := c.c.Identify(c.token)
		if c.token != f.outsiderToken {
			c.c.WaitFor(t, "GUILD_CREATE", 5*time.Second)
		} else if gs := decode[struct{ Guilds []any }](t, ready.D).Guilds; len(gs) != 0 {
			t.Fatalf("outsider READY has guilds %v", gs)
		}
	}

	first := s.post(t, f.ownerToken, f.channelID, "hello")
	last := s.post(t, f.memberToken, f.channelID, "second")
	for name, c := range map[string]*testenv.GatewayClient{"owner": owner, "member": member} {
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, p := range c.Dispatches("MESSAGE_CREATE") {
				if decode[message](t, p.D).ID == last.ID {
					return nil
				}
			}
			return fmt.Errorf("%s has not received %s", name, last.ID)
		})
		n := 0
		for _, p := range c.Dispatches("MESSAGE_CREATE") {
			m := decode[message](t, p.D)
			if m.ID == first.ID {
				n++
				if m.Content != "hello" || m.GuildID != f.guildID || m.ChannelID != f.channelID {
					t.Errorf("%s got %+v", name, m)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s received MESSAGE_CREATE %s %d times; want 1", name, first.ID, n)
		}
	}
	// The outsider's session saw no message at all, and REST refuses it the channel.
	time.Sleep(200 * time.Millisecond) // let any wrongly routed frame arrive before looking
	if got := outsider.Dispatches("MESSAGE_CREATE"); len(got) != 0 {
		t.Errorf("outsider received %d MESSAGE_CREATE", len(got))
	}
	for _, path := range []string{"/channels/" + f.channelID, "/channels/" + f.channelID + "/messages", "/guilds/" + f.guildID} {
		if st, _ := s.rest.Do(t, "GET", path, f.outsiderToken, nil, nil); st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("outsider GET %s = %d; want 403 or 404", path, st)
		}
	}
	if st, _ := s.rest.Do(t, "POST", "/channels/"+f.channelID+"/messages", f.outsiderToken, map[string]string{"content": "x"}, nil); st != http.StatusForbidden && st != http.StatusNotFound {
		t.Errorf("outsider POST message = %d; want 403 or 404", st)
	}
}

// Edits and deletes reach sessions and history.
func TestEditAndDeleteReachSessionsAndHistory(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	c := testenv.DialGateway(t, s.gatewayURL())
	c.Identify(f.memberToken)
	c.WaitFor(t, "GUILD_CREATE", 5*time.Second)

	m := s.post(t, f.ownerToken, f.channelID, "draft")
	var edited message
	s.rest.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channelID+"/messages/"+m.ID, f.ownerToken, map[string]string{"content": "final"}, &edited)
	if edited.Content != "final" || edited.Edited == nil {
		t.Fatalf("PATCH = %+v; want content final with edited_timestamp", edited)
	}
	upd := c.WaitFor(t, "MESSAGE_UPDATE", 5*time.Second)
	if got := decode[message](t, upd.D); got.ID != m.ID || got.Content != "final" {
		t.Fatalf("MESSAGE_UPDATE = %+v", got)
	}
	var hist []message
	s.rest.Must(t, http.StatusOK, "GET", "/channels/"+f.channelID+"/messages", f.memberToken, nil, &hist)
	if len(hist) != 1 || hist[0].Content != "final" {
		t.Fatalf("history after edit = %+v", hist)
	}
	// The member may not edit the owner's message; nothing changes.
	s.rest.Must(t, http.StatusForbidden, "PATCH", "/channels/"+f.channelID+"/messages/"+m.ID, f.memberToken, map[string]string{"content": "hijack"}, nil)

	s.rest.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channelID+"/messages/"+m.ID, f.ownerToken, nil, nil)
	del := c.WaitFor(t, "MESSAGE_DELETE", 5*time.Second)
	if got := decode[message](t, del.D); got.ID != m.ID {
		t.Fatalf("MESSAGE_DELETE = %+v", got)
	}
	s.rest.Must(t, http.StatusOK, "GET", "/channels/"+f.channelID+"/messages", f.memberToken, nil, &hist)
	if len(hist) != 0 {
		t.Fatalf("history after delete = %+v; want empty", hist)
	}
	s.rest.Must(t, http.StatusNotFound, "GET", "/channels/"+f.channelID+"/messages/"+m.ID, f.memberToken, nil, nil)
}

// Restarting serve on the same data dir keeps users, guilds, channels and history.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	f := newGuildFixture(t, s)
	var sent []string
	for i := range 30 {
		sent = append(sent, s.post(t, f.ownerToken, f.channelID, fmt.Sprintf("m%d", i)).ID)
	}
	s.stop(t)

	s2 := startStack(t, dir)
	var me struct {
		ID string `json:"id"`
	}
	s2.rest.Must(t, http.StatusOK, "GET", "/users/@me", f.memberToken, nil, &me)
	if me.ID != f.memberID {
		t.Fatalf("GET /users/@me after restart = %s; want %s", me.ID, f.memberID)
	}
	var g struct {
		ID, Name string
	}
	s2.rest.Must(t, http.StatusOK, "GET", "/guilds/"+f.guildID, f.memberToken, nil, &g)
	if g.Name != "Test Guild" {
		t.Fatalf("guild after restart = %+v", g)
	}
	var hist []message
	s2.rest.Must(t, http.StatusOK, "GET", "/channels/"+f.channelID+"/messages?limit=100", f.memberToken, nil, &hist)
	if len(hist) != len(sent) {
		t.Fatalf("history after restart has %d messages; want %d", len(hist), len(sent))
	}
	for i, m := range hist {
		if want := sent[len(sent)-1-i]; m.ID != want {
			t.Fatalf("history[%d] = %s; want %s", i, m.ID, want)
		}
	}
	// And the restarted server still delivers in realtime.
	c := testenv.DialGateway(t, s2.gatewayURL())
	c.Identify(f.memberToken)
	m := s2.post(t, f.ownerToken, f.channelID, "after restart")
	got := c.WaitFor(t, "MESSAGE_CREATE", 10*time.Second)
	if decode[message](t, got.D).ID != m.ID {
		t.Fatalf("MESSAGE_CREATE after restart = %s", got.D)
	}
}

// Bad gateway input gets Discord's close codes.
func TestGatewayCloseCodes(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	cases := []struct {
		name string
		send func(c *testenv.GatewayClient) error
		want int
	}{
		{"not json", func(c *testenv.GatewayClient) error { return c.SendRaw([]byte("{nope")) }, 4002},
		{"no op", func(c *testenv.GatewayClient) error { return c.SendRaw([]byte(`{"d":1}`)) }, 4002},
		{"over 4096 bytes", func(c *testenv.GatewayClient) error {
			return c.SendRaw([]byte(`{"op":1,"d":"` + strings.Repeat("x", 4100) + `"}`))
		}, 4002},
		{"unknown opcode", func(c *testenv.GatewayClient) error { return c.Send(42, nil) }, 4001},
		{"presence before identify", func(c *testenv.GatewayClient) error { return c.Send(3, map[string]any{"status": "online"}) }, 4003},
		{"bad token", func(c *testenv.GatewayClient) error {
			return c.Send(2, map[string]any{"token": "nope", "properties": map[string]string{}})
		}, 4004},
		{"identify twice", func(c *testenv.GatewayClient) error {
			c.Identify(f.memberToken)
			return c.Send(2, map[string]any{"token": f.memberToken, "properties": map[string]string{}})
		}, 4005},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.DialGateway(t, s.gatewayURL())
			c.WaitFor(t, "op:10", 5*time.Second)
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			code, err := c.WaitClose(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("close code = %d; want %d", code, tc.want)
			}
		})
	}
	// A bad API version is refused with 4012.
	c := testenv.DialGateway(t, "ws://"+s.addr+"/?v=3&encoding=json")
	if code, _ := c.WaitClose(10 * time.Second); code != 4012 {
		t.Fatalf("v=3 close code = %d; want 4012", code)
	}
	// Heartbeats are acknowledged.
	hb := testenv.DialGateway(t, s.gatewayURL())
	hb.WaitFor(t, "op:10", 5*time.Second)
	_ = hb.Send(1, nil)
	hb.WaitFor(t, "op:11", 5*time.Second)
}

// A session that drops its connection and resumes gets every event it missed, in
// order, then RESUMED, then live events.
func TestResumeReplaysMissedEvents(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	f := newGuildFixture(t, s)
	c := testenv.DialGateway(t, s.gatewayURL())
	ready := c.Identify(f.memberToken)
	sessionID := decode[struct {
		SessionID string `json:"session_id"`
	}](t, ready.D).SessionID
	c.WaitFor(t, "GUILD_CREATE", 5*time.Second)
	before := s.post(t, f.ownerToken, f.channelID, "before")
	c.WaitFor(t, "MESSAGE_CREATE", 5*time.Second)
	seq := c.LastSeq()
	c.Drop()

	var missed []string
	for i := range 20 {
		missed = append(missed, s.post(t, f.ownerToken, f.channelID, fmt.Sprintf("missed %d", i)).ID)
	}
	c2 := testenv.DialGateway(t, s.gatewayURL())
	c2.WaitFor(t, "op:10", 5*time.Second)
	if err := c2.Resume(f.memberToken, sessionID, seq); err != nil {
		t.Fatal(err)
	}
	c2.WaitFor(t, "RESUMED", 10*time.Second)
	live := s.post(t, f.ownerToken, f.channelID, "live")
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := len(c2.Dispatches("MESSAGE_CREATE")); n < len(missed)+1 {
			return fmt.Errorf("%d MESSAGE_CREATE so far", n)
		}
		return nil
	})
	var got []string
	resumedAt := -1
	for i, p := range c2.All() {
		if p.T == "RESUMED" {
			resumedAt = i
		}
		if p.T == "MESSAGE_CREATE" {
			got = append(got, decode[message](t, p.D).ID)
			if id := got[len(got)-1]; id == live.ID && resumedAt < 0 {
				t.Errorf("live message arrived before RESUMED")
			}
		}
	}
	want := append(missed, live.ID)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after resume got %v\nwant %v (and not %s again)", got, want, before.ID)
	}

	// The replay's consumer is gone once the resume is done: a storm of resumes
	// must not pile consumers up on the stream.
	url, err := os.ReadFile(filepath.Join(dir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	// The operator's identity from the data directory: it may read the stream.
	nc, js, err := ghnats.ConnectAs(strings.TrimSpace(string(url)), "test", ghnats.RoleOperator, ghnats.ClientAuth{Dir: filepath.Join(dir, "creds")})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	testenv.Eventually(t, 10*time.Second, func() error {
		st, err := js.Stream(context.Background(), ghnats.StreamEvents)
		if err != nil {
			return err
		}
		// Besides the writer's, the api's revocation watcher (an ordered
		// consumer, not a replay) lives on the stream.
		names := st.ConsumerNames(context.Background())
		var others []string
		for name := range names.Name() {
			if name != ghnats.ConsumerWriter && !strings.HasPrefix(name, ghnats.RevocationWatcherPrefix+"_") {
				others = append(others, name)
			}
		}
		if err := names.Err(); err != nil {
			return err
		}
		if len(others) > 0 {
			return fmt.Errorf("EVENTS has consumers %v besides the writer's and the revocation watcher; want none", others)
		}
		return nil
	})

	// Resuming an unknown session is refused with INVALID_SESSION d=false.
	c3 := testenv.DialGateway(t, s.gatewayURL())
	c3.WaitFor(t, "op:10", 5*time.Second)
	_ = c3.Resume(f.memberToken, "no-such-session", seq)
	inv := c3.WaitFor(t, "op:9", 10*time.Second)
	if string(inv.D) != "false" {
		t.Fatalf("INVALID_SESSION d = %s; want false", inv.D)
	}
}

// IDENTIFY is limited per user as Discord's session_start_limit says, and GET
// /gateway/bot reports what is left.
func TestIdentifyStartLimits(t *testing.T) {
	s := startStack(t, t.TempDir(), "--identify-concurrency", "1", "--identify-total", "5")
	tok, _ := s.rest.Register(t, "limited"+randName())
	var bot struct {
		URL   string `json:"url"`
		Limit struct {
			Total, Remaining, MaxConcurrency int
		} `json:"session_start_limit"`
	}
	s.rest.Must(t, http.StatusOK, "GET", "/gateway/bot", tok, nil, &bot)
	if bot.Limit.Total != 5 || bot.Limit.Remaining != 5 || bot.URL == "" {
		t.Fatalf("GET /gateway/bot = %+v; want 5 of 5 remaining and a url", bot)
	}
	first := testenv.DialGateway(t, s.gatewayURL())
	first.Identify(tok)
	second := testenv.DialGateway(t, s.gatewayURL())
	second.WaitFor(t, "op:10", 5*time.Second)
	_ = second.Send(2, map[string]any{"token": tok, "properties": map[string]string{}})
	if code, _ := second.WaitClose(10 * time.Second); code != 4008 {
		t.Fatalf("second IDENTIFY within the window closed with %d; want 4008", code)
	}
	s.rest.Must(t, http.StatusOK, "GET", "/gateway/bot", tok, nil, &bot)
	if bot.Limit.Remaining != 4 {
		t.Fatalf("remaining after one start = %d; want 4", bot.Limit.Remaining)
	}
}

// Joining, new channels and typing reach sessions as Discord's dispatches, and a
// channel hidden from @everyone stays hidden from members' sessions.
func TestGuildEventsAndChannelVisibility(t *testing.T) {
	s := startStack(t, t.TempDir())
	var f guildFixture
	f.ownerToken, f.ownerID = s.rest.Register(t, "owner"+randName())
	f.memberToken, f.memberID = s.rest.Register(t, "member"+randName())
	var g struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds", f.ownerToken, map[string]string{"name": "Visible"}, &g)
	var chans []struct{ ID string }
	s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", f.ownerToken, nil, &chans)
	general := chans[0].ID

	owner := testenv.DialGateway(t, s.gatewayURL())
	owner.Identify(f.ownerToken)
	owner.WaitFor(t, "GUILD_CREATE", 5*time.Second)
	member := testenv.DialGateway(t, s.gatewayURL())
	member.Identify(f.memberToken) // not a member yet: no guilds

	var inv struct{ Code string }
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+general+"/invites", f.ownerToken, map[string]any{}, &inv)
	s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.memberToken, nil, nil)
	gc := member.WaitFor(t, "GUILD_CREATE", 10*time.Second)
	if got := decode[struct{ ID string }](t, gc.D); got.ID != g.ID {
		t.Fatalf("joiner's GUILD_CREATE is for %s; want %s", got.ID, g.ID)
	}
	add := owner.WaitFor(t, "GUILD_MEMBER_ADD", 10*time.Second)
	if got := decode[struct {
		GuildID string `json:"guild_id"`
		User    struct{ ID string }
	}](t, add.D); got.GuildID != g.ID || got.User.ID != f.memberID {
		t.Fatalf("GUILD_MEMBER_ADD = %s", add.D)
	}

	// A staff channel: @everyone (the role with the guild's id) may not view it.
	var staff struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", f.ownerToken, map[string]any{
		"name": "staff", "type": 0,
		"permission_overwrites": []map[string]any{{"id": g.ID, "type": 0, "allow": "0", "deny": "1024"}},
	}, &staff)
	var open struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", f.ownerToken, map[string]any{"name": "open", "type": 0}, &open)
	owner.WaitFor(t, "CHANNEL_CREATE", 10*time.Second)
	cc := member.WaitFor(t, "CHANNEL_CREATE", 10*time.Second)
	if got := decode[struct{ ID string }](t, cc.D); got.ID != open.ID {
		t.Fatalf("member's first CHANNEL_CREATE is %s; want only the open channel %s", got.ID, open.ID)
	}

	secret := s.post(t, f.ownerToken, staff.ID, "staff only")
	public := s.post(t, f.ownerToken, open.ID, "for all")
	ownerGot := func() map[string]bool {
		m := map[string]bool{}
		for _, p := range owner.Dispatches("MESSAGE_CREATE") {
			m[decode[message](t, p.D).ID] = true
		}
		return m
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := ownerGot(); !got[secret.ID] || !got[public.ID] {
			return fmt.Errorf("owner has %v", got)
		}
		return nil
	})
	member.WaitFor(t, "MESSAGE_CREATE", 10*time.Second)
	for _, p := range member.Dispatches("MESSAGE_CREATE") {
		if decode[message](t, p.D).ID == secret.ID {
			t.Fatal("member received a message of a channel it may not view")
		}
	}
	if st, _ := s.rest.Do(t, "GET", "/channels/"+staff.ID+"/messages", f.memberToken, nil, nil); st != http.StatusForbidden && st != http.StatusNotFound {
		t.Fatalf("member GET staff history = %d; want 403 or 404", st)
	}

	// Typing reaches the other member's session.
	s.rest.Must(t, http.StatusNoContent, "POST", "/channels/"+open.ID+"/typing", f.memberToken, nil, nil)
	ts := owner.WaitFor(t, "TYPING_START", 10*time.Second)
	if got := decode[struct {
		UserID    string `json:"user_id"`
		ChannelID string `json:"channel_id"`
	}](t, ts.D); got.UserID != f.memberID || got.ChannelID != open.ID {
		t.Fatalf("TYPING_START = %s", ts.D)
	}
}

// guildhall token create --bot mints a bot token against the running server.
func TestTokenCreateBot(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	if err := token([]string{"create", "--bot", "helper", "--data", dir}); err != nil {
		t.Fatal(err)
	}
	// The token is printed; mint another through the same path and read it back.
	out := captureStdout(t, func() {
		if err := token([]string{"create", "--bot", "helper2", "--data", dir}); err != nil {
			t.Fatal(err)
		}
	})
	var tok string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			tok = v
		}
	}
	if tok == "" {
		t.Fatalf("no token in %q", out)
	}
	var me struct {
		Username string `json:"username"`
		Bot      bool   `json:"bot"`
	}
	s.rest.Must(t, http.StatusOK, "GET", "/users/@me", "Bot "+tok, nil, &me)
	if !me.Bot || me.Username != "helper2" {
		t.Fatalf("GET /users/@me with the bot token = %+v", me)
	}
	c := testenv.DialGateway(t, s.gatewayURL())
	c.Identify(tok)
}

// Transport compression (compress=zlib-stream) and payload compression
// (IDENTIFY compress: true) deliver the same dispatches as plain JSON.
func TestGatewayCompression(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	stream := testenv.DialGatewayZlibStream(t, s.gatewayURL())
	stream.WaitFor(t, "op:10", 5*time.Second)
	stream.Identify(f.memberToken)
	stream.WaitFor(t, "GUILD_CREATE", 5*time.Second)

	payload := testenv.DialGateway(t, s.gatewayURL())
	payload.WaitFor(t, "op:10", 5*time.Second)
	_ = payload.Send(2, map[string]any{"token": f.ownerToken, "compress": true, "properties": map[string]string{}})
	payload.WaitFor(t, "READY", 5*time.Second)
	payload.WaitFor(t, "GUILD_CREATE", 5*time.Second)

	for i := range 3 {
		m := s.post(t, f.ownerToken, f.channelID, fmt.Sprintf("compressed %d %s", i, strings.Repeat("x", 300)))
		for name, c := range map[string]*testenv.GatewayClient{"zlib-stream": stream, "payload": payload} {
			got := c.WaitFor(t, "MESSAGE_CREATE", 5*time.Second)
			if decode[message](t, got.D).ID != m.ID {
				t.Fatalf("%s: MESSAGE_CREATE %s; want %s", name, got.D, m.ID)
			}
		}
	}
	_ = stream.Send(1, nil)
	stream.WaitFor(t, "op:11", 5*time.Second)
}

// Presence through the whole binary: a status change reaches the other member of a
// small guild, and GET /guilds/{id}?with_counts=true counts members and online users.
func TestPresenceAndCounts(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	owner := testenv.DialGateway(t, s.gatewayURL())
	owner.Identify(f.ownerToken)
	owner.WaitFor(t, "GUILD_CREATE", 5*time.Second)
	member := testenv.DialGateway(t, s.gatewayURL())
	member.Identify(f.memberToken)
	member.WaitFor(t, "GUILD_CREATE", 5*time.Second)

	_ = member.Send(3, map[string]any{"status": "dnd", "since": nil, "activities": []any{}, "afk": false})
	testenv.Eventually(t, 15*time.Second, func() error {
		for _, p := range owner.Dispatches("PRESENCE_UPDATE") {
			var u struct {
				User   struct{ ID string }
				Status string `json:"status"`
			}
			_ = json.Unmarshal(p.D, &u)
			if u.User.ID == f.memberID && u.Status == "dnd" {
				return nil
			}
		}
		return fmt.Errorf("no PRESENCE_UPDATE dnd for the member yet")
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		var g struct {
			Members  int `json:"approximate_member_count"`
			Presence int `json:"approximate_presence_count"`
		}
		s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+f.guildID+"?with_counts=true", f.ownerToken, nil, &g)
		if g.Members != 2 || g.Presence != 2 {
			return fmt.Errorf("counts = %+v; want 2 members, 2 online", g)
		}
		return nil
	})
}
