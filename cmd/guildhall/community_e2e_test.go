package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/testenv"
)

// Item 5 of running a community, end to end on two gateway processes: a member
// who loses VIEW_CHANNEL gets nothing more of the channel from the next event on,
// on every gateway; kicked and banned members' sessions get GUILD_DELETE and
// nothing more of the guild; a deleted guild leaves every session; a resume after
// any of these replays nothing the member may no longer see.

// liveUser is a member with one session on each gateway.
type liveUser struct {
	name, token, id string
	conns           []*testenv.GatewayClient
}

// messages is the content of every MESSAGE_CREATE a connection received.
func messages(c *testenv.GatewayClient) []string {
	var out []string
	for _, p := range c.Dispatches("MESSAGE_CREATE") {
		var m message
		_ = jsonUnmarshal(p.D, &m)
		out = append(out, m.Content)
	}
	return out
}

// waitMessage waits until c has received a message with content.
func waitMessage(t *testing.T, who string, c *testenv.GatewayClient, content string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		if !slices.Contains(messages(c), content) {
			return fmt.Errorf("%s has not received %q (has %v)", who, content, messages(c))
		}
		return nil
	})
}

// guildDeletes counts the GUILD_DELETE dispatches of guild c received.
func guildDeletes(c *testenv.GatewayClient, guild string) int {
	n := 0
	for _, p := range c.Dispatches("GUILD_DELETE") {
		var d struct {
			ID          string `json:"id"`
			Unavailable bool   `json:"unavailable"`
		}
		if jsonUnmarshal(p.D, &d) == nil && d.ID == guild && !d.Unavailable {
			n++
		}
	}
	return n
}

// communityTier is a tier (3 NATS nodes, api and writer in the test process, two
// gateway processes) with a guild "main" that has a channel "secret" only role
// "inner" may view, and a guild "sync" every user is in, where the test posts to
// know that a session has seen everything before.
type communityTier struct {
	*tierFixture
	gws                []*gatewayProcess
	main, sync         guildChan
	secret, inner      string
	invite, syncInvite string
	n                  int
}

func newCommunityTier(t *testing.T) *communityTier {
	t.Helper()
	tf := newTier(t, 0)
	ct := &communityTier{tierFixture: tf}
	ct.gws = []*gatewayProcess{startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds), startGatewayProcess(t, tf.cluster.URLs[2], tf.cluster.Creds)}
	ct.main, ct.sync = tf.g1, tf.g2
	var ch struct{ ID string }
	tf.api.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+ct.main.guild+"/channels", tf.owner, map[string]any{"name": "secret"}, &ch)
	ct.secret = ch.ID
	var role struct{ ID string }
	tf.api.rest.Must(t, http.StatusOK, "POST", "/guilds/"+ct.main.guild+"/roles", tf.owner, map[string]any{"name": "inner"}, &role)
	ct.inner = role.ID
	ct.overwrite(t, ct.main.guild, 0, guildhall.PermViewChannel)
	ct.overwrite(t, ct.inner, guildhall.PermViewChannel, 0)
	for _, g := range []guildChan{ct.main, ct.sync} {
		var inv struct{ Code string }
		tf.api.rest.Must(t, http.StatusOK, "POST", "/channels/"+g.channel+"/invites", tf.owner, map[string]any{"max_age": 0}, &inv)
		if g == ct.main {
			ct.invite = inv.Code
		} else {
			ct.syncInvite = inv.Code
		}
	}
	return ct
}

func (ct *communityTier) overwrite(t *testing.T, id string, allow, deny guildhall.Permissions) {
	t.Helper()
	ct.api.rest.Must(t, http.StatusNoContent, "PUT", "/channels/"+ct.secret+"/permissions/"+id, ct.owner,
		map[string]any{"type": 0, "allow": allow, "deny": deny}, nil)
}

// user registers a member of both guilds (with role inner if asked) and opens a
// session on each gateway, each with its GUILD_CREATEs.
func (ct *communityTier) user(t *testing.T, name string, inner bool, sessions int) *liveUser {
	t.Helper()
	u := &liveUser{name: name}
	u.token, u.id = ct.api.rest.Register(t, name+randName())
	for _, code := range []string{ct.invite, ct.syncInvite} {
		ct.api.rest.Must(t, http.StatusOK, "POST", "/invites/"+code, u.token, nil, nil)
	}
	if inner {
		ct.give(t, u, true)
	}
	for i := range sessions {
		c := testenv.DialGateway(t, ct.gws[i%len(ct.gws)].url())
		c.Identify(u.token)
		testenv.Eventually(t, 15*time.Second, func() error {
			if n := len(c.Dispatches("GUILD_CREATE")); n < 2 {
				return fmt.Errorf("%s: %d GUILD_CREATE", name, n)
			}
			return nil
		})
		u.conns = append(u.conns, c)
	}
	return u
}

func (ct *communityTier) give(t *testing.T, u *liveUser, add bool) {
	t.Helper()
	method := "PUT"
	if !add {
		method = "DELETE"
	}
	ct.api.rest.Must(t, http.StatusNoContent, method, "/guilds/"+ct.main.guild+"/members/"+u.id+"/roles/"+ct.inner, ct.owner, nil, nil)
}

func (ct *communityTier) post(t *testing.T, channel, content string) {
	t.Helper()
	ct.api.post(t, ct.owner, channel, content)
}

// barrier posts in the sync guild and waits until every connection of users has
// it: from then on, each has received everything published before.
func (ct *communityTier) barrier(t *testing.T, users ...*liveUser) {
	t.Helper()
	ct.n++
	mark := fmt.Sprint("sync-", ct.n)
	ct.post(t, ct.sync.channel, mark)
	for _, u := range users {
		for i, c := range u.conns {
			if !c.Closed() {
				waitMessage(t, fmt.Sprintf("%s on connection %d", u.name, i), c, mark)
			}
		}
	}
}

// none checks that no connection of u received content.
func none(t *testing.T, u *liveUser, content, why string) {
	t.Helper()
	for i, c := range u.conns {
		if slices.Contains(messages(c), content) {
			t.Errorf("%s on gateway %d received %q %s", u.name, i, content, why)
		}
	}
}

// all checks that every connection of u received content.
func all(t *testing.T, u *liveUser, content string) {
	t.Helper()
	for i, c := range u.conns {
		waitMessage(t, fmt.Sprintf("%s on gateway %d", u.name, i), c, content)
	}
}

func TestLiveSessionsLoseAccess(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	ct := newCommunityTier(t)
	alice := ct.user(t, "alice", true, 2)
	bob := ct.user(t, "bob", true, 2)
	carol := ct.user(t, "carol", false, 2)
	dave := ct.user(t, "dave", false, 2)
	everyone := []*liveUser{alice, bob, carol, dave}

	ct.post(t, ct.secret, "s1")
	ct.barrier(t, everyone...)
	all(t, alice, "s1")
	all(t, bob, "s1")
	none(t, carol, "s1", "from a channel only inner may view")

	// A role removed: from the next event on, nothing of the channel.
	ct.give(t, alice, false)
	ct.post(t, ct.secret, "s2")
	ct.barrier(t, everyone...)
	all(t, bob, "s2")
	none(t, alice, "s2", "after losing the role that let her view the channel")
	// And given back: visible again.
	ct.give(t, alice, true)
	ct.post(t, ct.secret, "s3")
	ct.barrier(t, everyone...)
	all(t, alice, "s3")

	// An overwrite changed: the channel hidden from inner too. Who loses it gets
	// the CHANNEL_UPDATE that says so, then nothing more of it.
	updates := func(u *liveUser) []int {
		var n []int
		for _, c := range u.conns {
			k := 0
			for _, p := range c.Dispatches("CHANNEL_UPDATE") {
				var ch struct{ ID string }
				if jsonUnmarshal(p.D, &ch) == nil && ch.ID == ct.secret {
					k++
				}
			}
			n = append(n, k)
		}
		return n
	}
	aliceBefore, carolBefore := updates(alice), updates(carol)
	ct.overwrite(t, ct.inner, 0, guildhall.PermViewChannel)
	ct.post(t, ct.secret, "s4")
	ct.post(t, ct.main.channel, "g4")
	ct.barrier(t, everyone...)
	for _, u := range []*liveUser{alice, bob} {
		all(t, u, "g4")
		none(t, u, "s4", "after the channel's overwrite hid it")
	}
	for i, n := range updates(alice) {
		if n != aliceBefore[i]+1 {
			t.Errorf("alice on gateway %d: %d CHANNEL_UPDATE of the channel she lost; want %d", i, n, aliceBefore[i]+1)
		}
	}
	if got := updates(carol); !slices.Equal(got, carolBefore) {
		t.Errorf("carol got CHANNEL_UPDATE of a channel she never could view: %v, before %v", got, carolBefore)
	}
	ct.overwrite(t, ct.inner, guildhall.PermViewChannel, 0)

	// Invites' events go only to who may manage the channel (the owner here).
	owner := &liveUser{name: "owner", token: ct.owner}
	for _, gw := range ct.gws {
		c := testenv.DialGateway(t, gw.url())
		c.Identify(ct.owner)
		owner.conns = append(owner.conns, c)
	}
	ct.api.rest.Must(t, http.StatusOK, "POST", "/channels/"+ct.main.channel+"/invites", ct.owner, map[string]any{}, nil)
	ct.barrier(t, append(everyone, owner)...)
	for _, u := range []*liveUser{owner, alice, carol} {
		for i, c := range u.conns {
			want := 0
			if u == owner {
				want = 1
			}
			if n := len(c.Dispatches("INVITE_CREATE")); n != want {
				t.Errorf("%s on gateway %d: %d INVITE_CREATE; want %d", u.name, i, n, want)
			}
		}
	}

	// Kicked and banned: GUILD_DELETE on every session, then nothing more of the guild.
	ct.api.rest.Must(t, http.StatusNoContent, "DELETE", "/guilds/"+ct.main.guild+"/members/"+carol.id, ct.owner, nil, nil)
	ct.api.rest.Must(t, http.StatusNoContent, "PUT", "/guilds/"+ct.main.guild+"/bans/"+dave.id, ct.owner, map[string]any{}, nil)
	ct.post(t, ct.main.channel, "g5")
	ct.post(t, ct.secret, "s5")
	ct.barrier(t, everyone...)
	for _, u := range []*liveUser{carol, dave} {
		for i, c := range u.conns {
			if n := guildDeletes(c, ct.main.guild); n != 1 {
				t.Errorf("%s on gateway %d: %d GUILD_DELETE of the guild; want 1", u.name, i, n)
			}
		}
		none(t, u, "g5", "after leaving the guild")
		st, raw := ct.api.rest.Do(t, "GET", "/channels/"+ct.main.channel+"/messages", u.token, nil, nil)
		if st != http.StatusForbidden {
			t.Errorf("%s reads history after leaving: %d %s", u.name, st, raw)
		}
	}
	all(t, alice, "s5")
	all(t, bob, "g5")
	st, raw := ct.api.rest.Do(t, "POST", "/invites/"+ct.invite, dave.token, nil, nil)
	if st != http.StatusForbidden {
		t.Errorf("a banned user rejoins: %d %s", st, raw)
	}

	// A deleted guild leaves every session.
	third := ct.createGuild(t, "third")
	var inv struct{ Code string }
	ct.api.rest.Must(t, http.StatusOK, "POST", "/channels/"+third.channel+"/invites", ct.owner, map[string]any{}, &inv)
	ct.api.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, bob.token, nil, nil)
	for i, c := range bob.conns {
		testenv.Eventually(t, 15*time.Second, func() error {
			if n := len(c.Dispatches("GUILD_CREATE")); n < 3 {
				return fmt.Errorf("bob on gateway %d: %d GUILD_CREATE", i, n)
			}
			return nil
		})
	}
	ct.api.rest.Must(t, http.StatusNoContent, "DELETE", "/guilds/"+third.guild, ct.owner, nil, nil)
	ct.barrier(t, bob)
	for i, c := range bob.conns {
		if n := guildDeletes(c, third.guild); n != 1 {
			t.Errorf("bob on gateway %d: %d GUILD_DELETE of the deleted guild; want 1", i, n)
		}
	}
}

// TestResumeAfterLosingAccess: sessions away while their access changes resume
// on the other gateway and are replayed nothing they may no longer see.
func TestResumeAfterLosingAccess(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	ct := newCommunityTier(t)
	erin := ct.user(t, "erin", true, 1)    // loses the role while away
	frank := ct.user(t, "frank", false, 1) // kicked while away
	bob := ct.user(t, "bob", true, 1)
	ct.post(t, ct.secret, "s0")
	ct.barrier(t, erin, frank, bob)

	type away struct {
		u       *liveUser
		session string
		seq     uint64
	}
	var gone []away
	for _, u := range []*liveUser{erin, frank} {
		c := u.conns[0]
		var r struct {
			SessionID string `json:"session_id"`
		}
		_ = jsonUnmarshal(c.Dispatches("READY")[0].D, &r)
		gone = append(gone, away{u, r.SessionID, c.LastSeq()})
		c.Drop()
	}
	ct.post(t, ct.secret, "s1-before")
	ct.post(t, ct.main.channel, "g1-before")
	ct.give(t, erin, false)
	ct.post(t, ct.secret, "s2-after")
	ct.post(t, ct.main.channel, "g2")
	ct.api.rest.Must(t, http.StatusNoContent, "DELETE", "/guilds/"+ct.main.guild+"/members/"+frank.id, ct.owner, nil, nil)
	ct.post(t, ct.main.channel, "g3-after-kick")
	ct.post(t, ct.sync.channel, "sync-after")
	ct.barrier(t, bob)

	for _, a := range gone {
		c := testenv.DialGateway(t, ct.gws[1].url())
		c.WaitFor(t, "op:10", 10*time.Second)
		if err := c.Resume(a.u.token, a.session, a.seq); err != nil {
			t.Fatal(err)
		}
		c.WaitFor(t, "RESUMED", 30*time.Second)
		a.u.conns = append(a.u.conns, c)
	}
	got := func(u *liveUser) []string { return messages(u.conns[1]) }
	// Erin: the general channel's messages and the other guild's, none of the
	// secret channel she may no longer view, not even those from before she
	// lost it.
	if g := got(erin); !slices.Contains(g, "g2") || !slices.Contains(g, "g3-after-kick") || !slices.Contains(g, "sync-after") {
		t.Errorf("erin's replay = %v; want g2, g3-after-kick, sync-after", g)
	}
	for _, s := range []string{"s1-before", "s2-after"} {
		if slices.Contains(got(erin), s) {
			t.Errorf("erin's replay has %q of a channel she may no longer view", s)
		}
	}
	// Frank: nothing more of the guild he was kicked from, and its GUILD_DELETE;
	// the other guild's messages.
	if g := got(frank); !slices.Contains(g, "sync-after") {
		t.Errorf("frank's replay = %v; want sync-after", g)
	}
	for _, s := range []string{"g1-before", "g2", "g3-after-kick"} {
		if slices.Contains(got(frank), s) {
			t.Errorf("frank's replay has %q of a guild he was kicked from", s)
		}
	}
	if n := guildDeletes(frank.conns[1], ct.main.guild); n != 1 {
		t.Errorf("frank's resume: %d GUILD_DELETE of the guild he was kicked from; want 1", n)
	}
	// And live after the resume, the same.
	ct.post(t, ct.secret, "s4-live")
	ct.post(t, ct.main.channel, "g4-live")
	ct.barrier(t, erin, frank, bob)
	all(t, bob, "s4-live")
	if g := got(erin); slices.Contains(g, "s4-live") || !slices.Contains(g, "g4-live") {
		t.Errorf("erin live after resuming: %v; want g4-live and not s4-live", g)
	}
	if slices.Contains(got(frank), "g4-live") {
		t.Errorf("frank live after resuming received g4-live")
	}
}
