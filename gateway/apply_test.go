package gateway

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// recordConn keeps what is written to it, for tests that look at which frames a
// session got.
type recordConn struct {
	sinkConn
	mu  sync.Mutex
	got strings.Builder
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got.Write(b)
	return len(b), nil
}

// count is how many dispatches of type t (and containing marker, if given) the
// session got.
func (c *recordConn) count(t, marker string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, part := range strings.Split(c.got.String(), `"t":"`+t+`"`)[1:] {
		if marker == "" || strings.Contains(strings.SplitN(part, `"t":"`, 2)[0], marker) {
			n++
		}
	}
	return n
}

const (
	tGuild   = guildhall.Snowflake(1)
	tGeneral = guildhall.Snowflake(2)
	tSecret  = guildhall.Snowflake(3)
	tInner   = guildhall.Snowflake(4) // the role that may view secret
	tOwner   = guildhall.Snowflake(10)
	tAlice   = guildhall.Snowflake(11) // inner
	tBob     = guildhall.Snowflake(12)
)

func secretChannel(private bool) guildhall.Channel {
	ch := guildhall.Channel{ID: tSecret, GuildID: tGuild, Name: "secret", PermissionOverwrites: []guildhall.PermissionOverwrite{
		{ID: tInner, Type: guildhall.OverwriteRole, Allow: guildhall.PermViewChannel},
	}}
	if private {
		ch.PermissionOverwrites = append(ch.PermissionOverwrites, guildhall.PermissionOverwrite{ID: tGuild, Type: guildhall.OverwriteRole, Deny: guildhall.PermViewChannel})
	}
	return ch
}

// testRoom is a pump with one room (owner, alice with role inner, bob) and no
// NATS: events are applied directly.
func testRoom(t *testing.T) (*pump, *room, map[guildhall.Snowflake]*recordConn, map[guildhall.Snowflake]*Session) {
	cfg := Config{}.withDefaults()
	p := &pump{rooms: map[guildhall.Snowflake]*room{}, users: map[guildhall.Snowflake]*userRoom{}, metrics: cfg.Metrics, log: cfg.Logger}
	state := guildhall.GuildState{
		Guild:    guildhall.Guild{ID: tGuild, OwnerID: tOwner},
		Channels: []guildhall.Channel{{ID: tGeneral, GuildID: tGuild, Name: "general"}, secretChannel(true)},
		Roles: []guildhall.Role{{ID: tGuild, Name: "@everyone", Permissions: guildhall.DefaultEveryonePermissions},
			{ID: tInner, Name: "inner", Position: 1}},
	}
	r := &room{id: tGuild, state: state}
	p.rooms[r.id] = r
	conns := map[guildhall.Snowflake]*recordConn{}
	sessions := map[guildhall.Snowflake]*Session{}
	for _, uid := range []guildhall.Snowflake{tOwner, tAlice, tBob} {
		c := &recordConn{}
		s := newSession(net.Conn(c), wireFormat{}, cfg.outbox())
		s.user = guildhall.User{ID: uid}
		s.intents = guildhall.IntentsAll
		var roles []guildhall.Snowflake
		if uid == tAlice {
			roles = []guildhall.Snowflake{tInner}
		}
		m := &membership{roles: roles, roleKey: roleKey(roles)}
		s.guilds = map[guildhall.Snowflake]*membership{r.id: m}
		r.add(s, m, 0)
		conns[uid], sessions[uid] = c, s
		t.Cleanup(func() { s.close(CloseUnknownError, "test over") })
	}
	return p, r, conns, sessions
}

func event(t *testing.T, typ string, ch guildhall.Snowflake, v any) guildhall.Event {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return guildhall.Event{Type: typ, GuildID: tGuild, ChannelID: ch, Data: b}
}

func message(t *testing.T, ch guildhall.Snowflake, content string) guildhall.Event {
	return event(t, guildhall.EventMessageCreate, ch, guildhall.Message{ID: 99, ChannelID: ch, Content: content})
}

// TestApplyLosingAccess applies a guild's events to a room and checks which
// session gets which, as access changes.
//
// alone: each event delivered on its own, as the pump does when nothing else
// waits; batched: the events between two checks planned together, as the pump
// does when it is behind. Both give every session the same events.
func TestApplyLosingAccess(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "batched"}[batched], func(t *testing.T) { testApplyLosingAccess(t, batched) })
	}
}

func testApplyLosingAccess(t *testing.T, batched bool) {
	p, r, conns, _ := testRoom(t)
	seq := uint64(100)
	apply := func(ev guildhall.Event) {
		seq++
		p.apply(r, seq, ev)
		if !batched {
			p.flush()
		}
	}
	// Frames leave by the sessions' direct writes or writer goroutines: wait a
	// moment for them. No assertion below waits on time, only for frames.
	want := func(who guildhall.Snowflake, typ, marker string, n int) {
		t.Helper()
		p.flush()
		deadline := time.Now().Add(5 * time.Second)
		for conns[who].count(typ, marker) < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := conns[who].count(typ, marker); got != n {
			t.Errorf("user %v: %d %s %s; want %d", who, got, typ, marker, n)
		}
	}

	apply(message(t, tSecret, "m1"))
	apply(message(t, tGeneral, "sync1"))
	want(tAlice, "MESSAGE_CREATE", "sync1", 1)
	want(tBob, "MESSAGE_CREATE", "sync1", 1)
	want(tAlice, "MESSAGE_CREATE", "m1", 1)
	want(tBob, "MESSAGE_CREATE", "m1", 0)

	// Alice loses the role: nothing more of secret.
	apply(event(t, guildhall.EventGuildMemberUpdate, 0, guildhall.Member{GuildID: tGuild, User: guildhall.User{ID: tAlice}, Roles: []guildhall.Snowflake{}}))
	apply(message(t, tSecret, "m2"))
	apply(message(t, tGeneral, "sync2"))
	want(tAlice, "MESSAGE_CREATE", "sync2", 1)
	want(tAlice, "MESSAGE_CREATE", "m2", 0)
	want(tOwner, "MESSAGE_CREATE", "m2", 1)

	// Secret made public: everyone gets its update and what follows; made
	// private again: those who lose it get the update, then nothing.
	pub, priv := secretChannel(false), secretChannel(true)
	pub.Topic, priv.Topic = ptr("public"), ptr("private")
	apply(event(t, guildhall.EventChannelUpdate, tSecret, pub))
	apply(message(t, tSecret, "m3"))
	apply(event(t, guildhall.EventChannelUpdate, tSecret, priv))
	apply(message(t, tSecret, "m4"))
	apply(message(t, tGeneral, "sync3"))
	want(tBob, "MESSAGE_CREATE", "sync3", 1)
	for _, u := range []guildhall.Snowflake{tAlice, tBob} {
		want(u, "CHANNEL_UPDATE", "public", 1)
		want(u, "CHANNEL_UPDATE", "private", 1)
		want(u, "MESSAGE_CREATE", "m3", 1)
		want(u, "MESSAGE_CREATE", "m4", 0)
	}

	// An invite's events go to whoever may manage the channel: the owner.
	inv := event(t, guildhall.EventInviteCreate, tGeneral, guildhall.InviteCreate{ChannelID: tGeneral, Code: "abc", GuildID: tGuild})
	inv.Requires = guildhall.PermManageChannels
	apply(inv)
	apply(message(t, tGeneral, "sync4"))
	want(tBob, "MESSAGE_CREATE", "sync4", 1)
	want(tOwner, "INVITE_CREATE", "", 1)
	want(tBob, "INVITE_CREATE", "", 0)
	want(tAlice, "INVITE_CREATE", "", 0)

	// Bob is removed: he gets the removal, then nothing; he leaves the room.
	apply(event(t, guildhall.EventGuildMemberRemove, 0, guildhall.GuildMemberRemove{GuildID: tGuild, User: guildhall.User{ID: tBob}}))
	apply(message(t, tGeneral, "m5"))
	want(tOwner, "MESSAGE_CREATE", "m5", 1)
	want(tBob, "GUILD_MEMBER_REMOVE", "", 1)
	want(tBob, "MESSAGE_CREATE", "m5", 0)
	if len(r.members) != 2 {
		t.Errorf("room has %d sessions after a removal; want 2", len(r.members))
	}
	// The guild is deleted: everyone gets GUILD_DELETE and the room is gone.
	apply(event(t, guildhall.EventGuildDelete, 0, guildhall.GuildDelete{ID: tGuild}))
	want(tOwner, "GUILD_DELETE", "", 1)
	want(tAlice, "GUILD_DELETE", "", 1)
	if _, ok := p.rooms[tGuild]; ok || len(r.members) != 0 {
		t.Errorf("room of a deleted guild kept: %v, %d sessions", ok, len(r.members))
	}
}

// TestAttachAppliesNotes: a session attaching at a cut with a membership the
// api read before a change gets the change; one removed in between does not join.
func TestAttachAppliesNotes(t *testing.T) {
	p, r, _, sessions := testRoom(t)
	p.apply(r, 5, event(t, guildhall.EventGuildMemberUpdate, 0, guildhall.Member{GuildID: tGuild, User: guildhall.User{ID: 50}, Roles: []guildhall.Snowflake{tInner}}))
	p.apply(r, 6, event(t, guildhall.EventGuildMemberRemove, 0, guildhall.GuildMemberRemove{GuildID: tGuild, User: guildhall.User{ID: 51}}))
	cfg := Config{}.withDefaults()
	newcomer := func(uid guildhall.Snowflake) *Session {
		s := newSession(net.Conn(&recordConn{}), wireFormat{}, cfg.outbox())
		s.user = guildhall.User{ID: uid}
		p.users[uid] = &userRoom{} // no NATS subscription in this test
		t.Cleanup(func() { s.close(CloseUnknownError, "test over") })
		return s
	}
	for _, c := range []struct {
		uid      guildhall.Snowflake
		since    uint64
		kept     bool
		wantRole bool
	}{
		{50, 4, true, true},   // read before the role was given: gets it
		{50, 5, true, false},  // read after it: the api's answer stands
		{51, 5, false, false}, // removed after the read: does not join
		{51, 6, true, false},
	} {
		s := newcomer(c.uid)
		r.pending++
		members := []guildhall.Member{{GuildID: tGuild, User: s.user, Roles: []guildhall.Snowflake{}}}
		kept, ok := p.attach(s, []*room{r}, members, c.since)
		if !ok || kept[0] != c.kept {
			t.Errorf("user %v since %d: kept %v, ok %v; want kept %v", c.uid, c.since, kept, ok, c.kept)
			continue
		}
		m, in := s.guilds[tGuild]
		if in != c.kept || (in && (len(m.roles) == 1) != c.wantRole) {
			t.Errorf("user %v since %d: in room %v, roles %v; want in %v, role %v", c.uid, c.since, in, m, c.kept, c.wantRole)
		}
		p.leave(s)
	}
	// Notes that started over after the read cannot vouch: the session joins nothing.
	r.notesCleared = 10
	s := newcomer(52)
	r.pending++
	if _, ok := p.attach(s, []*room{r}, []guildhall.Member{{User: s.user}}, 9); ok || len(s.guilds) != 0 {
		t.Errorf("attach with notes cleared after the read: ok %v, guilds %v; want refused", ok, s.guilds)
	}
	if r.pending != 0 || len(r.members) != len(sessions) {
		t.Errorf("room after the attaches: pending %d, %d sessions; want 0, %d", r.pending, len(r.members), len(sessions))
	}
}

// TestReconcile: the api's second answer for a membership in a new room
// corrects it, unless an event of the membership came after the question.
func TestReconcile(t *testing.T) {
	p, r, conns, sessions := testRoom(t)
	alice, bob := sessions[tAlice], sessions[tBob]
	p.w = 20
	// Alice's roles as the api answers now; bob is no member any more.
	p.reconcile(alice, tGuild, &guildhall.Member{User: alice.user, Roles: []guildhall.Snowflake{}}, 20)
	if m := alice.guilds[tGuild]; m == nil || len(m.roles) != 0 {
		t.Errorf("alice after reconcile: %+v; want in the room without roles", m)
	}
	p.reconcile(bob, tGuild, nil, 20)
	if _, in := bob.guilds[tGuild]; in || len(r.members) != 2 {
		t.Errorf("bob after reconcile with no membership: in %v, room of %d; want out", in, len(r.members))
	}
	deadline := time.Now().Add(5 * time.Second)
	for conns[tBob].count("GUILD_DELETE", "") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := conns[tBob].count("GUILD_DELETE", ""); n != 1 {
		t.Errorf("bob got %d GUILD_DELETE; want 1", n)
	}
	// A change noted after the question wins over the answer.
	p.apply(r, 21, event(t, guildhall.EventGuildMemberUpdate, 0, guildhall.Member{GuildID: tGuild, User: alice.user, Roles: []guildhall.Snowflake{tInner}}))
	p.reconcile(alice, tGuild, &guildhall.Member{User: alice.user, Roles: []guildhall.Snowflake{}}, 20)
	if m := alice.guilds[tGuild]; len(m.roles) != 1 {
		t.Errorf("an answer older than a noted change replaced it: roles %v", m.roles)
	}
}

func ptr[T any](v T) *T { return &v }
