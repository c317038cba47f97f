package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clock is a settable clock for the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// streamEvent is one event as the EVENTS stream holds it.
type streamEvent struct {
	seq uint64
	ev  guildhall.Event
}

// lastSeq is the stream's last sequence.
func (e *env) lastSeq() uint64 {
	e.t.Helper()
	s, err := e.nats.JS.Stream(context.Background(), ghnats.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

// guildEvents reads the guild's events stored after seq.
func (e *env) guildEvents(guild string, after uint64) []streamEvent {
	id, _ := guildhall.ParseSnowflake(guild)
	return e.subjectEvents(ghnats.GuildInSubject(uint64(id)), after)
}

// userEvents reads the events for one user alone stored after seq.
func (e *env) userEvents(user string, after uint64) []streamEvent {
	id, _ := guildhall.ParseSnowflake(user)
	return e.subjectEvents(ghnats.UserInSubject(uint64(id)), after)
}

func (e *env) subjectEvents(subj string, after uint64) []streamEvent {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.nats.JS.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []streamEvent
	for next := after + 1; ; {
		m, err := s.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, streamEvent{m.Sequence, ghnats.DecodeEvent(natsgo.Header(m.Header), m.Data)})
		next = m.Sequence + 1
	}
}

func types(evs []streamEvent) string {
	var b []string
	for _, e := range evs {
		b = append(b, e.ev.Type)
	}
	return strings.Join(b, ",")
}

// TestRolesAndHierarchy creates, reorders, modifies and deletes roles and
// checks the events and the hierarchy's refusals.
func TestRolesAndHierarchy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := newCommunity(t, e)
	g := "/guilds/" + c.guild
	c.setPerms(c.topRole, guildhall.PermManageRoles|guildhall.PermKickMembers)

	// Created at the bottom with @everyone's permissions by default; GUILD_ROLE_CREATE carries it whole.
	seq := e.lastSeq()
	var r struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Position    int    `json:"position"`
		Permissions string `json:"permissions"`
		Color       int    `json:"color"`
	}
	e.api.Must(t, 200, "POST", g+"/roles", c.exact.token, map[string]any{"name": "helpers", "color": 0xff0000}, &r)
	if r.Name != "helpers" || r.Position != 1 || r.Permissions != strconv.FormatUint(uint64(guildhall.DefaultEveryonePermissions), 10) || r.Color != 0xff0000 {
		t.Errorf("created role = %+v; want helpers at position 1 with @everyone's permissions", r)
	}
	evs := e.guildEvents(c.guild, seq)
	if types(evs) != guildhall.EventGuildRoleCreate {
		t.Fatalf("events = %s; want GUILD_ROLE_CREATE", types(evs))
	}
	var rc guildhall.GuildRoleEvent
	if err := json.Unmarshal(evs[0].ev.Data, &rc); err != nil || rc.Role.ID.String() != r.ID || rc.GuildID.String() != c.guild {
		t.Errorf("GUILD_ROLE_CREATE = %s; want the role and guild_id", evs[0].ev.Data)
	}

	// Nobody grants a permission they lack, nor moves or edits a role to or
	// above their highest.
	for _, bad := range []struct {
		name, method, path string
		body               any
		status, code       int
	}{
		{"grant a permission one lacks", "POST", g + "/roles", map[string]any{"permissions": strconv.Itoa(int(guildhall.PermAdministrator))}, 403, 50013},
		{"add a permission one lacks", "PATCH", g + "/roles/" + r.ID, map[string]any{"permissions": strconv.Itoa(int(guildhall.PermBanMembers))}, 403, 50013},
		{"move a role above", "PATCH", g + "/roles", []map[string]any{{"id": r.ID, "position": 11}}, 403, 50013},
		{"edit one's own top role", "PATCH", g + "/roles/" + c.topRole, map[string]any{"name": "mine"}, 403, 50013},
		{"rename @everyone", "PATCH", g + "/roles/" + c.guild, map[string]any{"name": "all"}, 400, 50028},
		{"move @everyone", "PATCH", g + "/roles", []map[string]any{{"id": c.guild, "position": 3}}, 400, 50028},
		{"delete @everyone", "DELETE", g + "/roles/" + c.guild, nil, 400, 50028},
		{"unknown role", "PATCH", g + "/roles/1", map[string]any{"name": "x"}, 404, 10011},
		{"name too long", "PATCH", g + "/roles/" + r.ID, map[string]any{"name": strings.Repeat("n", 101)}, 400, 50035},
		{"bad color", "POST", g + "/roles", map[string]any{"color": -1}, 400, 50035},
		{"give a role at one's height", "PUT", g + "/members/" + c.without.id + "/roles/" + c.topRole, nil, 403, 50013},
	} {
		before := c.digest()
		st, raw := e.api.Do(t, bad.method, bad.path, c.exact.token, bad.body, nil)
		wantError(t, st, raw, bad.status, bad.code)
		if c.digest() != before {
			t.Errorf("%s changed the community", bad.name)
		}
	}
	// The owner may do what the hierarchy forbids others, except renaming or
	// deleting @everyone.
	e.api.Must(t, 200, "PATCH", g+"/roles", c.owner.token, []map[string]any{{"id": r.ID, "position": 20}}, nil)
	st, raw := e.api.Do(t, "DELETE", g+"/roles/"+c.guild, c.owner.token, nil, nil)
	wantError(t, st, raw, 400, 50028)
	st, raw = e.api.Do(t, "PATCH", g+"/roles/"+c.guild, c.owner.token, map[string]any{"name": "all"}, nil)
	wantError(t, st, raw, 400, 50028)
	// Now above exact's top role: exact may not touch it, nor kick someone
	// holding it.
	c.give(c.without, r.ID)
	for _, bad := range [][3]string{
		{"PATCH", g + "/roles/" + r.ID, `{"name":"x"}`},
		{"DELETE", g + "/members/" + c.without.id + "/roles/" + r.ID, ``},
		{"DELETE", g + "/members/" + c.without.id, ``},
	} {
		st, raw := e.api.Do(t, bad[0], bad[1], c.exact.token, []byte(bad[2]), nil)
		wantError(t, st, raw, 403, 50013)
	}

	// A deleted role's overwrites go with it, and GUILD_ROLE_DELETE comes first.
	chID := c.freshChannel()
	e.api.Must(t, 204, "PUT", "/channels/"+chID+"/permissions/"+c.targetRole, c.owner.token, map[string]any{"type": 0, "deny": "1024"}, nil)
	seq = e.lastSeq()
	e.api.Must(t, 204, "DELETE", g+"/roles/"+c.targetRole, c.owner.token, nil, nil)
	evs = e.guildEvents(c.guild, seq)
	if types(evs) != "GUILD_ROLE_DELETE,CHANNEL_UPDATE" {
		t.Fatalf("events = %s; want GUILD_ROLE_DELETE,CHANNEL_UPDATE", types(evs))
	}
	var ch guildhall.Channel
	if err := json.Unmarshal(evs[1].ev.Data, &ch); err != nil || len(ch.PermissionOverwrites) != 0 {
		t.Errorf("CHANNEL_UPDATE after the role delete = %s; want no overwrites", evs[1].ev.Data)
	}
	st, raw = e.api.Do(t, "GET", g+"/roles/"+c.targetRole, c.owner.token, nil, nil)
	wantError(t, st, raw, 404, 10011)

	// The list is ordered from the bottom up.
	var roles []guildhall.Role
	e.api.Must(t, 200, "GET", g+"/roles", c.without.token, nil, &roles)
	for i := 1; i < len(roles); i++ {
		if roles[i-1].Above(roles[i]) {
			t.Errorf("roles out of order: %v before %v", roles[i-1], roles[i])
		}
	}
	if roles[0].ID.String() != c.guild {
		t.Errorf("roles[0] = %v; want @everyone", roles[0])
	}
}

// TestMembersNickTimeoutLeave covers member reads, search, nicks, timeouts
// (which block sending and typing but not reading) and leaving.
func TestMembersNickTimeoutLeave(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := newEnv(t, envOptions{now: clk.now})
	c := newCommunity(t, e)
	g := "/guilds/" + c.guild
	c.setPerms(c.topRole, guildhall.PermModerateMembers|guildhall.PermManageNicknames)
	target := c.target()

	var m struct {
		User  struct{ ID string } `json:"user"`
		Nick  *string             `json:"nick"`
		Roles []string            `json:"roles"`
		Until *string             `json:"communication_disabled_until"`
		Guild *string             `json:"guild_id"`
	}
	e.api.Must(t, 200, "PATCH", g+"/members/"+target.id, c.exact.token, map[string]any{"nick": "Tee"}, &m)
	if m.Nick == nil || *m.Nick != "Tee" || m.Guild != nil || len(m.Roles) != 1 {
		t.Errorf("modified member = %+v; want nick Tee, one role, no guild_id", m)
	}
	var found []struct {
		User struct{ ID string } `json:"user"`
	}
	e.api.Must(t, 200, "GET", g+"/members/search?query=tE&limit=5", c.without.token, nil, &found)
	if len(found) != 1 || found[0].User.ID != target.id {
		t.Errorf("search by nick prefix = %+v; want the target", found)
	}
	st, raw := e.api.Do(t, "GET", g+"/members/search?limit=5", c.without.token, nil, nil)
	wantError(t, st, raw, 400, 50035)

	// A timeout: sending and typing refused, reading allowed; GUILD_MEMBER_UPDATE carries it.
	until := clk.now().Add(time.Hour).UTC().Truncate(time.Second)
	seq := e.lastSeq()
	e.api.Must(t, 200, "PATCH", g+"/members/"+target.id, c.exact.token, map[string]any{"communication_disabled_until": until}, nil)
	evs := e.guildEvents(c.guild, seq)
	var upd guildhall.Member
	if types(evs) != "GUILD_MEMBER_UPDATE" || json.Unmarshal(evs[0].ev.Data, &upd) != nil || upd.CommunicationDisabledUntil == nil ||
		!upd.CommunicationDisabledUntil.Equal(until) || upd.GuildID.String() != c.guild {
		t.Fatalf("events = %s %s; want GUILD_MEMBER_UPDATE with the timeout and guild_id", types(evs), evs[0].ev.Data)
	}
	st, raw = e.api.Do(t, "POST", "/channels/"+c.channel+"/messages", target.token, map[string]string{"content": "hi"}, nil)
	wantError(t, st, raw, 403, 50013)
	st, raw = e.api.Do(t, "POST", "/channels/"+c.channel+"/typing", target.token, nil, nil)
	wantError(t, st, raw, 403, 50013)
	e.history(target.token, c.channel, "limit=5")
	// Nobody times out the owner or an administrator, nor longer than 28 days.
	admin := c.target()
	adminRole := c.role("admins", 3)
	c.setPerms(adminRole, guildhall.PermAdministrator)
	c.give(admin, adminRole)
	for _, bad := range []struct {
		who          string
		until        time.Time
		status, code int
	}{
		{c.owner.id, until, 403, 50013},
		{admin.id, until, 403, 50013},
		{c.without.id, clk.now().Add(29 * 24 * time.Hour), 400, 50035},
	} {
		st, raw := e.api.Do(t, "PATCH", g+"/members/"+bad.who, c.exact.token, map[string]any{"communication_disabled_until": bad.until}, nil)
		wantError(t, st, raw, bad.status, bad.code)
	}
	// The timeout ends by itself, or when lifted with null.
	clk.add(2 * time.Hour)
	e.post(target.token, c.channel, "free again")
	e.api.Must(t, 200, "PATCH", g+"/members/"+target.id, c.exact.token, map[string]any{"communication_disabled_until": clk.now().Add(time.Hour)}, nil)
	st, raw = e.api.Do(t, "POST", "/channels/"+c.channel+"/messages", target.token, map[string]string{"content": "hi"}, nil)
	wantError(t, st, raw, 403, 50013)
	e.api.Must(t, 200, "PATCH", g+"/members/"+target.id, c.exact.token, map[string]any{"communication_disabled_until": nil}, nil)
	e.post(target.token, c.channel, "lifted")

	// Voice fields are refused: nobody is in a voice channel.
	st, raw = e.api.Do(t, "PATCH", g+"/members/"+target.id, c.owner.token, map[string]any{"mute": true}, nil)
	wantError(t, st, raw, 400, 50035)

	// Leaving: a member leaves (GUILD_MEMBER_REMOVE), the owner cannot, a
	// non-member gets Unknown Guild.
	seq = e.lastSeq()
	e.api.Must(t, 204, "DELETE", "/users/@me/guilds/"+c.guild, target.token, nil, nil)
	if evs := e.guildEvents(c.guild, seq); types(evs) != "GUILD_MEMBER_REMOVE" {
		t.Errorf("leave published %s; want GUILD_MEMBER_REMOVE", types(evs))
	}
	// And GUILD_DELETE to the user alone, after it: a resume replays it.
	evs = e.userEvents(target.id, seq)
	var gd guildhall.GuildDelete
	if types(evs) != "GUILD_DELETE" || json.Unmarshal(evs[0].ev.Data, &gd) != nil || gd.ID.String() != c.guild || gd.Unavailable {
		t.Errorf("leave published %s to the user; want GUILD_DELETE of the guild", types(evs))
	}
	st, raw = e.api.Do(t, "DELETE", "/users/@me/guilds/"+c.guild, c.owner.token, nil, nil)
	wantError(t, st, raw, 400, 50055)
	st, raw = e.api.Do(t, "DELETE", "/users/@me/guilds/"+c.guild, target.token, nil, nil)
	wantError(t, st, raw, 404, 10004)
	st, raw = e.api.Do(t, "GET", g+"/members/"+target.id, c.owner.token, nil, nil)
	wantError(t, st, raw, 404, 10007)
}

// TestBansAndMessageDeletes bans a member with delete_message_seconds: their
// recent messages go (through the writer), older ones and others' stay, no
// invite lets them back until unbanned.
func TestBansAndMessageDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := newCommunity(t, e)
	g := "/guilds/" + c.guild
	spammer := c.target()
	other := c.freshChannel()
	var mine []string
	for i := range 3 {
		mine = append(mine, e.post(spammer.token, c.channel, fmt.Sprint("spam ", i)).ID)
		mine = append(mine, e.post(spammer.token, other, fmt.Sprint("spam elsewhere ", i)).ID)
	}
	keep := e.post(c.without.token, c.channel, "innocent").ID

	seq := e.lastSeq()
	st, raw := e.doReason(t, "PUT", g+"/bans/"+spammer.id, c.owner.token, escape("spam, spam & more spam"), map[string]any{"delete_message_seconds": 3600})
	if st != 204 {
		t.Fatalf("ban = %d %s", st, raw)
	}
	got := types(e.guildEvents(c.guild, seq))
	if got != "GUILD_MEMBER_REMOVE,GUILD_BAN_ADD,MESSAGE_DELETE_BULK,MESSAGE_DELETE_BULK" {
		t.Errorf("ban published %s; want GUILD_MEMBER_REMOVE,GUILD_BAN_ADD and a MESSAGE_DELETE_BULK per channel", got)
	}
	for _, chID := range []string{c.channel, other} {
		for _, m := range e.history(c.owner.token, chID, "limit=100") {
			if m.Author.ID == spammer.id {
				t.Errorf("message %s of the banned user is still in %s", m.ID, chID)
			}
		}
	}
	e.api.Must(t, 200, "GET", "/channels/"+c.channel+"/messages/"+keep, c.owner.token, nil, nil)
	var ban struct {
		Reason *string `json:"reason"`
		User   struct{ ID string }
	}
	e.api.Must(t, 200, "GET", g+"/bans/"+spammer.id, c.owner.token, nil, &ban)
	if ban.Reason == nil || *ban.Reason != "spam, spam & more spam" || ban.User.ID != spammer.id {
		t.Errorf("ban = %+v; want the reason and the user", ban)
	}
	// No invite lets a banned user in; the kicked one may come back.
	var inv inviteJSON
	e.api.Must(t, 200, "POST", "/channels/"+c.channel+"/invites", c.owner.token, map[string]any{"max_age": 0}, &inv)
	for _, code := range []string{c.invite, inv.Code} {
		st, raw := e.api.Do(t, "POST", "/invites/"+code, spammer.token, nil, nil)
		wantError(t, st, raw, 403, 40007)
	}
	st, raw = e.api.Do(t, "GET", "/channels/"+c.channel+"/messages", spammer.token, nil, nil)
	wantError(t, st, raw, 403, 50001)
	e.api.Must(t, 200, "POST", "/invites/"+inv.Code, c.kicked.token, nil, nil)

	// Unban; then the invite works again. A second unban is Unknown Ban.
	e.api.Must(t, 204, "DELETE", g+"/bans/"+spammer.id, c.owner.token, nil, nil)
	st, raw = e.api.Do(t, "DELETE", g+"/bans/"+spammer.id, c.owner.token, nil, nil)
	wantError(t, st, raw, 404, 10026)
	e.api.Must(t, 200, "POST", "/invites/"+inv.Code, spammer.token, nil, nil)

	// Refusals: the owner, out-of-range seconds, an unknown user.
	for _, bad := range []struct {
		path         string
		body         any
		status, code int
	}{
		{g + "/bans/" + c.owner.id, nil, 403, 50013},
		{g + "/bans/" + c.without.id, map[string]any{"delete_message_seconds": 604801}, 400, 50035},
		{g + "/bans/" + c.without.id, map[string]any{"delete_message_days": 8}, 400, 50035},
		{g + "/bans/12345", nil, 404, 10013},
	} {
		st, raw := e.api.Do(t, "PUT", bad.path, c.owner.token, bad.body, nil)
		wantError(t, st, raw, bad.status, bad.code)
	}

	// Bulk ban: the banned and the refused are told apart; nobody banned is 500000.
	t1, t2 := c.target(), c.target()
	var res struct {
		Banned []string `json:"banned_users"`
		Failed []string `json:"failed_users"`
	}
	e.api.Must(t, 200, "POST", g+"/bulk-ban", c.owner.token, map[string]any{"user_ids": []string{t1.id, c.banned.id, t2.id, c.owner.id}}, &res)
	if fmt.Sprint(res.Banned) != fmt.Sprint([]string{t1.id, t2.id}) || fmt.Sprint(res.Failed) != fmt.Sprint([]string{c.banned.id, c.owner.id}) {
		t.Errorf("bulk ban = %+v; want banned [%s %s], failed [%s %s]", res, t1.id, t2.id, c.banned.id, c.owner.id)
	}
	st, raw = e.api.Do(t, "POST", g+"/bulk-ban", c.owner.token, map[string]any{"user_ids": []string{t1.id}}, nil)
	wantError(t, st, raw, 400, 500000)
	var bans []struct {
		User struct{ ID string }
	}
	e.api.Must(t, 200, "GET", g+"/bans?limit=2&after="+c.banned.id, c.owner.token, nil, &bans)
	if len(bans) != 2 || bans[0].User.ID != t1.id || bans[1].User.ID != t2.id {
		t.Errorf("bans after %s = %+v; want %s, %s", c.banned.id, bans, t1.id, t2.id)
	}
}

// TestBulkDeletePinsSlowmode covers bulk delete's bounds, pins and their
// limit, and slowmode's 429.
func TestBulkDeletePinsSlowmode(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := newEnv(t, envOptions{now: clk.now})
	c := newCommunity(t, e)
	chp := "/channels/" + c.channel
	a, b := c.post("a"), c.post("b")
	bulk := chp + "/messages/bulk-delete"
	tooMany := make([]string, 101)
	for i := range tooMany {
		tooMany[i] = strconv.Itoa(1<<40 + i)
	}
	for _, bad := range []struct {
		ids          []string
		status, code int
	}{
		{[]string{a}, 400, 50016},
		{[]string{a, a}, 400, 50035},
		{tooMany, 400, 50016},
	} {
		st, raw := e.api.Do(t, "POST", bulk, c.owner.token, map[string]any{"messages": bad.ids}, nil)
		wantError(t, st, raw, bad.status, bad.code)
	}
	seq := e.lastSeq()
	e.api.Must(t, 204, "POST", bulk, c.owner.token, map[string]any{"messages": []string{a, b}}, nil)
	evs := e.guildEvents(c.guild, seq)
	var del guildhall.MessageDeleteBulk
	if types(evs) != "MESSAGE_DELETE_BULK" || json.Unmarshal(evs[0].ev.Data, &del) != nil || len(del.IDs) != 2 || del.ChannelID.String() != c.channel {
		t.Fatalf("bulk delete published %s; want one MESSAGE_DELETE_BULK of 2 ids", types(evs))
	}
	for _, id := range []string{a, b} {
		st, raw := e.api.Do(t, "GET", chp+"/messages/"+id, c.owner.token, nil, nil)
		wantError(t, st, raw, 404, 10008)
	}

	// Pins: listed newest first by both endpoints, flagged on the message,
	// CHANNEL_PINS_UPDATE published, 50 at most.
	p1, p2 := c.post("first pin"), c.post("second pin")
	seq = e.lastSeq()
	e.api.Must(t, 204, "PUT", chp+"/pins/"+p1, c.owner.token, nil, nil)
	clk.add(time.Second)
	e.api.Must(t, 204, "PUT", chp+"/messages/pins/"+p2, c.owner.token, nil, nil)
	e.api.Must(t, 204, "PUT", chp+"/pins/"+p2, c.owner.token, nil, nil) // again: nothing
	evs = e.guildEvents(c.guild, seq)
	if types(evs) != "CHANNEL_PINS_UPDATE,CHANNEL_PINS_UPDATE" || evs[0].ev.Pin == nil || evs[0].ev.Pin.MessageID.String() != p1 || !evs[0].ev.Pin.Pinned {
		t.Fatalf("pins published %s; want two CHANNEL_PINS_UPDATE naming the messages", types(evs))
	}
	var legacy []messageJSON
	e.api.Must(t, 200, "GET", chp+"/pins", c.without.token, nil, &legacy)
	if ids(legacy) != p2+","+p1 {
		t.Errorf("GET pins = %s; want %s,%s", ids(legacy), p2, p1)
	}
	var page struct {
		Items []struct {
			PinnedAt string      `json:"pinned_at"`
			Message  messageJSON `json:"message"`
		} `json:"items"`
		HasMore bool `json:"has_more"`
	}
	e.api.Must(t, 200, "GET", chp+"/messages/pins?limit=1", c.without.token, nil, &page)
	if len(page.Items) != 1 || page.Items[0].Message.ID != p2 || !page.HasMore {
		t.Errorf("GET messages/pins?limit=1 = %+v; want %s and has_more", page, p2)
	}
	e.api.Must(t, 200, "GET", chp+"/messages/pins?before="+page.Items[0].PinnedAt, c.without.token, nil, &page)
	if len(page.Items) != 1 || page.Items[0].Message.ID != p1 || page.HasMore {
		t.Errorf("GET messages/pins?before= = %+v; want %s only", page, p1)
	}
	var pinned struct {
		Pinned bool `json:"pinned"`
	}
	e.api.Must(t, 200, "GET", chp+"/messages/"+p1, c.owner.token, nil, &pinned)
	if !pinned.Pinned {
		t.Errorf("a pinned message reads pinned = false")
	}
	// Editing keeps it pinned.
	e.api.Must(t, 200, "PATCH", chp+"/messages/"+p1, c.owner.token, map[string]string{"content": "first pin, edited"}, nil)
	e.api.Must(t, 200, "GET", chp+"/messages/"+p1, c.owner.token, nil, &pinned)
	if !pinned.Pinned {
		t.Errorf("an edit unpinned the message")
	}
	e.api.Must(t, 204, "DELETE", chp+"/pins/"+p1, c.owner.token, nil, nil)
	e.api.Must(t, 200, "GET", chp+"/pins", c.without.token, nil, &legacy)
	if ids(legacy) != p2 {
		t.Errorf("pins after an unpin = %s; want %s", ids(legacy), p2)
	}
	for i := range 49 {
		e.api.Must(t, 204, "PUT", chp+"/pins/"+c.post(fmt.Sprint("pin ", i)), c.owner.token, nil, nil)
	}
	st, raw := e.api.Do(t, "PUT", chp+"/pins/"+c.post("one too many"), c.owner.token, nil, nil)
	wantError(t, st, raw, 400, 30003)
	st, raw = e.api.Do(t, "PUT", chp+"/pins/1234", c.owner.token, nil, nil)
	wantError(t, st, raw, 404, 10008)

	// Bulk delete refuses messages older than 14 days.
	old := c.post("old")
	clk.add(15 * 24 * time.Hour)
	st, raw = e.api.Do(t, "POST", bulk, c.owner.token, map[string]any{"messages": []string{old, c.post("new")}}, nil)
	wantError(t, st, raw, 400, 50034)

	// Slowmode: a second post inside the interval is 429 with code 20016 and
	// retry_after; the owner is exempt; after the interval the member posts.
	e.api.Must(t, 200, "PATCH", chp, c.owner.token, map[string]any{"rate_limit_per_user": 30}, nil)
	e.post(c.without.token, c.channel, "first")
	resp, body := e.api.Do(t, "POST", chp+"/messages", c.without.token, map[string]string{"content": "second"}, nil)
	var rl struct {
		Code       int     `json:"code"`
		RetryAfter float64 `json:"retry_after"`
		Global     *bool   `json:"global"`
	}
	if resp != http.StatusTooManyRequests || json.Unmarshal(body, &rl) != nil || rl.Code != 20016 || rl.RetryAfter <= 0 || rl.RetryAfter > 30 || rl.Global == nil || *rl.Global {
		t.Errorf("second post in slowmode = %d %s; want 429 code 20016 with 0 < retry_after <= 30, global false", resp, body)
	}
	e.post(c.owner.token, c.channel, "owner is exempt")
	e.post(c.owner.token, c.channel, "owner is exempt")
	clk.add(31 * time.Second)
	e.post(c.without.token, c.channel, "after the interval")
}

// TestAuditLog checks X-Audit-Log-Reason (URL-encoded, at most 512
// characters), the entries actions record, and Discord's paging and filters.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := newCommunity(t, e)
	g := "/guilds/" + c.guild
	reason := "Räumen: spam & <links> 100%"
	st, raw := e.doReason(t, "POST", g+"/roles", c.owner.token, escape(reason), map[string]any{"name": "audited"})
	if st != 200 {
		t.Fatalf("create role = %d %s", st, raw)
	}
	var role struct{ ID string }
	_ = json.Unmarshal(raw, &role)
	target := c.target()
	e.doReason(t, "DELETE", g+"/members/"+target.id, c.owner.token, escape("bye"), nil)

	// Too long, or not URL-encoding: refused, nothing done.
	before := c.digest()
	for _, bad := range []string{escape(strings.Repeat("é", 513)), "%zz"} {
		st, raw := e.doReason(t, "POST", g+"/roles", c.owner.token, bad, map[string]any{"name": "never"})
		wantError(t, st, raw, 400, 50035)
	}
	if c.digest() != before {
		t.Errorf("a refused reason changed the community")
	}
	e.doReason(t, "POST", g+"/roles", c.owner.token, escape(strings.Repeat("é", 512)), map[string]any{"name": "long reason"})

	type entry struct {
		ID         string  `json:"id"`
		ActionType int     `json:"action_type"`
		UserID     string  `json:"user_id"`
		TargetID   string  `json:"target_id"`
		Reason     *string `json:"reason"`
		Changes    []struct {
			Key      string          `json:"key"`
			NewValue json.RawMessage `json:"new_value"`
		} `json:"changes"`
	}
	var log struct {
		Entries []entry `json:"audit_log_entries"`
		Users   []struct {
			ID string `json:"id"`
		} `json:"users"`
		Webhooks []any `json:"webhooks"`
	}
	e.api.Must(t, 200, "GET", g+"/audit-logs", c.owner.token, nil, &log)
	if log.Webhooks == nil || len(log.Entries) < 10 {
		t.Fatalf("audit log = %+v; want the fixture's entries and Discord's empty lists", log)
	}
	for i := 1; i < len(log.Entries); i++ {
		if a, _ := strconv.ParseUint(log.Entries[i-1].ID, 10, 64); a <= mustUint(log.Entries[i].ID) {
			t.Errorf("entries not newest first at %d", i)
		}
	}
	// The newest: the long reason; then the kick with its reason; the role with its reason and changes.
	if r := log.Entries[0].Reason; r == nil || *r != strings.Repeat("é", 512) {
		t.Errorf("newest entry's reason = %v; want 512 é", r)
	}
	kick, created := log.Entries[1], entry{}
	for _, en := range log.Entries {
		if en.TargetID == role.ID && en.ActionType == guildhall.AuditRoleCreate {
			created = en
		}
	}
	if kick.ActionType != guildhall.AuditMemberKick || kick.TargetID != target.id || kick.Reason == nil || *kick.Reason != "bye" || kick.UserID != c.owner.id {
		t.Errorf("kick entry = %+v", kick)
	}
	if created.ActionType != guildhall.AuditRoleCreate || created.TargetID != role.ID || created.Reason == nil || *created.Reason != reason {
		t.Errorf("role entry = %+v; want ROLE_CREATE of %s with reason %q", created, role.ID, reason)
	}
	names := map[string]bool{}
	for _, u := range log.Users {
		names[u.ID] = true
	}
	if !names[c.owner.id] || !names[target.id] {
		t.Errorf("users = %+v; want the owner and the kicked target", log.Users)
	}
	// Filters and paging.
	e.api.Must(t, 200, "GET", g+"/audit-logs?action_type=20", c.owner.token, nil, &log)
	for _, en := range log.Entries {
		if en.ActionType != 20 {
			t.Errorf("action_type=20 returned %d", en.ActionType)
		}
	}
	if len(log.Entries) != 2 { // the fixture's kick and this one
		t.Errorf("action_type=20: %d entries; want 2", len(log.Entries))
	}
	e.api.Must(t, 200, "GET", g+"/audit-logs?user_id="+c.without.id, c.owner.token, nil, &log)
	if len(log.Entries) != 0 {
		t.Errorf("user_id of someone who did nothing: %d entries", len(log.Entries))
	}
	var all, asc, page struct {
		Entries []entry `json:"audit_log_entries"`
	}
	e.api.Must(t, 200, "GET", g+"/audit-logs?limit=100", c.owner.token, nil, &all)
	e.api.Must(t, 200, "GET", g+"/audit-logs?after=0&limit=3", c.owner.token, nil, &asc)
	n := len(all.Entries)
	if len(asc.Entries) != 3 || asc.Entries[0].ID != all.Entries[n-1].ID || asc.Entries[2].ID != all.Entries[n-3].ID {
		t.Errorf("after=0&limit=3 = %v; want the 3 oldest, oldest first", asc.Entries)
	}
	e.api.Must(t, 200, "GET", g+"/audit-logs?limit=2&before="+all.Entries[1].ID, c.owner.token, nil, &page)
	if len(page.Entries) != 2 || page.Entries[0].ID != all.Entries[2].ID || page.Entries[1].ID != all.Entries[3].ID {
		t.Errorf("before=%s&limit=2 = %v; want entries 2 and 3", all.Entries[1].ID, page.Entries)
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?before=x"} {
		st, raw := e.api.Do(t, "GET", g+"/audit-logs"+bad, c.owner.token, nil, nil)
		wantError(t, st, raw, 400, 50035)
	}
}

func mustUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// TestGuildAndChannelManagement covers guild rename, ownership transfer and
// deletion, channel edits, moves between categories, overwrites, deletes of a
// category, invites' lists, preview, delete and limits.
func TestGuildAndChannelManagement(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := newEnv(t, envOptions{now: clk.now})
	c := newCommunity(t, e)
	g := "/guilds/" + c.guild
	c.setPerms(c.topRole, guildhall.PermManageGuild|guildhall.PermManageChannels|guildhall.PermManageRoles)

	// Rename by a manager; transfer and delete by the owner alone.
	seq := e.lastSeq()
	var gj guildJSON
	e.api.Must(t, 200, "PATCH", g, c.exact.token, map[string]any{"name": "Renamed"}, &gj)
	if gj.Name != "Renamed" || types(e.guildEvents(c.guild, seq)) != "GUILD_UPDATE" {
		t.Errorf("rename = %+v, events %s; want Renamed and GUILD_UPDATE", gj, types(e.guildEvents(c.guild, seq)))
	}
	st, raw := e.api.Do(t, "PATCH", g, c.exact.token, map[string]any{"owner_id": c.exact.id}, nil)
	wantError(t, st, raw, 403, 50013)
	st, raw = e.api.Do(t, "DELETE", g, c.exact.token, nil, nil)
	wantError(t, st, raw, 403, 50013)
	st, raw = e.api.Do(t, "PATCH", g, c.owner.token, map[string]any{"owner_id": c.outsider.id}, nil)
	wantError(t, st, raw, 404, 10007)

	// Channels: a category, a channel moved into it with its overwrites locked,
	// a topic, slowmode, then the category deleted: its channel stays, parentless.
	var cat, room channelJSON
	e.api.Must(t, 201, "POST", g+"/channels", c.exact.token, map[string]any{"name": "cat", "type": 4, "permission_overwrites": []map[string]any{{"id": c.guild, "type": 0, "deny": "2048"}}}, &cat)
	e.api.Must(t, 201, "POST", g+"/channels", c.exact.token, map[string]any{"name": "room"}, &room)
	e.api.Must(t, 204, "PATCH", g+"/channels", c.exact.token, []map[string]any{{"id": room.ID, "parent_id": cat.ID, "lock_permissions": true, "position": 3}}, nil)
	var got guildhall.Channel
	e.api.Must(t, 200, "GET", "/channels/"+room.ID, c.exact.token, nil, &got)
	if got.ParentID == nil || got.ParentID.String() != cat.ID || got.Position != 3 || len(got.PermissionOverwrites) != 1 {
		t.Errorf("moved channel = %+v; want in the category, position 3, its overwrites", got)
	}
	e.api.Must(t, 200, "PATCH", "/channels/"+room.ID, c.exact.token, map[string]any{"topic": "about", "rate_limit_per_user": 10, "parent_id": nil}, &got)
	if got.Topic == nil || *got.Topic != "about" || got.RateLimitPerUser != 10 || got.ParentID != nil {
		t.Errorf("modified channel = %+v", got)
	}
	for _, bad := range []struct {
		path         string
		body         any
		status, code int
	}{
		{"/channels/" + room.ID, map[string]any{"type": 4}, 400, 50035},
		{"/channels/" + room.ID, map[string]any{"rate_limit_per_user": 21601}, 400, 50035},
		{"/channels/" + room.ID, map[string]any{"parent_id": room.ID}, 400, 50035},
		{"/channels/" + cat.ID, map[string]any{"parent_id": cat.ID}, 400, 50035},
		{"/channels/" + room.ID, map[string]any{"name": ""}, 400, 50035},
	} {
		st, raw := e.api.Do(t, "PATCH", bad.path, c.exact.token, bad.body, nil)
		wantError(t, st, raw, bad.status, bad.code)
	}
	e.api.Must(t, 200, "PATCH", "/channels/"+room.ID, c.exact.token, map[string]any{"parent_id": cat.ID}, nil)
	seq = e.lastSeq()
	e.api.Must(t, 200, "DELETE", "/channels/"+cat.ID, c.exact.token, nil, nil)
	if got := types(e.guildEvents(c.guild, seq)); got != "CHANNEL_DELETE,CHANNEL_UPDATE" {
		t.Errorf("deleting a category published %s; want CHANNEL_DELETE,CHANNEL_UPDATE", got)
	}
	e.api.Must(t, 200, "GET", "/channels/"+room.ID, c.exact.token, nil, &got)
	if got.ParentID != nil {
		t.Errorf("channel of a deleted category keeps parent %v", got.ParentID)
	}
	st, raw = e.api.Do(t, "GET", "/channels/"+cat.ID, c.exact.token, nil, nil)
	wantError(t, st, raw, 404, 10003)

	// Overwrites: hiding a channel from @everyone hides it from members.
	e.api.Must(t, 204, "PUT", "/channels/"+room.ID+"/permissions/"+c.guild, c.exact.token, map[string]any{"type": 0, "deny": "1024"}, nil)
	for _, u := range []user{c.without, c.exact} { // exact's role does not allow VIEW_CHANNEL itself
		st, raw = e.api.Do(t, "GET", "/channels/"+room.ID, u.token, nil, nil)
		wantError(t, st, raw, 403, 50001)
	}
	e.api.Must(t, 204, "DELETE", "/channels/"+room.ID+"/permissions/"+c.guild, c.owner.token, nil, nil)
	e.api.Must(t, 200, "GET", "/channels/"+room.ID, c.without.token, nil, nil)
	// Only permissions one has may be allowed or denied.
	st, raw = e.api.Do(t, "PUT", "/channels/"+room.ID+"/permissions/"+c.guild, c.exact.token, map[string]any{"type": 0, "allow": strconv.Itoa(int(guildhall.PermBanMembers))}, nil)
	wantError(t, st, raw, 403, 50013)
	st, raw = e.api.Do(t, "PUT", "/channels/"+room.ID+"/permissions/1234", c.exact.token, map[string]any{"type": 0}, nil)
	wantError(t, st, raw, 404, 10011)

	// Invites: preview with counts, lists, max_uses and max_age, delete.
	var once, short inviteJSON
	seq = e.lastSeq()
	e.api.Must(t, 200, "POST", "/channels/"+c.channel+"/invites", c.owner.token, map[string]any{"max_uses": 1, "max_age": 0}, &once)
	evs := e.guildEvents(c.guild, seq)
	if types(evs) != "INVITE_CREATE" || evs[0].ev.Requires != guildhall.PermManageChannels || evs[0].ev.ChannelID.String() != c.channel {
		t.Errorf("invite create published %s requiring %v; want INVITE_CREATE for MANAGE_CHANNELS in the channel", types(evs), evs[0].ev.Requires)
	}
	e.api.Must(t, 200, "POST", "/channels/"+room.ID+"/invites", c.owner.token, map[string]any{"max_age": 60}, &short)
	var preview struct {
		Code    string `json:"code"`
		Members *int   `json:"approximate_member_count"`
		Guild   struct{ Name string }
	}
	e.api.Must(t, 200, "GET", "/invites/"+once.Code+"?with_counts=true", c.outsider.token, nil, &preview)
	if preview.Members == nil || *preview.Members < 4 || preview.Guild.Name != "Renamed" {
		t.Errorf("preview = %+v; want counts and the guild", preview)
	}
	var list []inviteJSON
	e.api.Must(t, 200, "GET", "/channels/"+room.ID+"/invites", c.exact.token, nil, &list)
	if len(list) != 1 || list[0].Code != short.Code {
		t.Errorf("channel invites = %+v; want %s", list, short.Code)
	}
	e.api.Must(t, 200, "GET", g+"/invites", c.exact.token, nil, &list)
	if len(list) != 3 { // the fixture's, once, short
		t.Errorf("guild invites: %d; want 3", len(list))
	}
	newbie, late := e.register("newbie"), e.register("late")
	e.api.Must(t, 200, "POST", "/invites/"+once.Code, newbie.token, nil, nil)
	st, raw = e.api.Do(t, "POST", "/invites/"+once.Code, late.token, nil, nil)
	wantError(t, st, raw, 404, 10006)
	clk.add(61 * time.Second)
	st, raw = e.api.Do(t, "POST", "/invites/"+short.Code, late.token, nil, nil)
	wantError(t, st, raw, 404, 10006)
	st, raw = e.api.Do(t, "GET", "/invites/"+short.Code, late.token, nil, nil)
	wantError(t, st, raw, 404, 10006)
	e.api.Must(t, 200, "GET", g+"/invites", c.exact.token, nil, &list)
	if len(list) != 1 {
		t.Errorf("guild invites after one used up and one expired: %d; want 1", len(list))
	}
	seq = e.lastSeq()
	e.api.Must(t, 200, "DELETE", "/invites/"+c.invite, c.exact.token, nil, nil)
	if got := types(e.guildEvents(c.guild, seq)); got != "INVITE_DELETE" {
		t.Errorf("invite delete published %s", got)
	}
	st, raw = e.api.Do(t, "POST", "/invites/"+c.invite, late.token, nil, nil)
	wantError(t, st, raw, 404, 10006)

	// Transfer, then the old owner may leave and the new one deletes.
	e.api.Must(t, 200, "PATCH", g, c.owner.token, map[string]any{"owner_id": c.exact.id}, &gj)
	if gj.OwnerID != c.exact.id {
		t.Fatalf("owner after transfer = %s; want %s", gj.OwnerID, c.exact.id)
	}
	st, raw = e.api.Do(t, "DELETE", g, c.owner.token, nil, nil)
	wantError(t, st, raw, 403, 50013)
	e.api.Must(t, 204, "DELETE", "/users/@me/guilds/"+c.guild, c.owner.token, nil, nil)
	seq = e.lastSeq()
	e.api.Must(t, 204, "DELETE", g, c.exact.token, nil, nil)
	if got := types(e.guildEvents(c.guild, seq)); got != "GUILD_DELETE" {
		t.Errorf("guild delete published %s", got)
	}
	for _, u := range []user{c.exact, c.without, c.owner} {
		st, raw := e.api.Do(t, "GET", g, u.token, nil, nil)
		wantError(t, st, raw, 404, 10004)
		var gs []struct{ ID string }
		e.api.Must(t, 200, "GET", "/users/@me/guilds", u.token, nil, &gs)
		for _, x := range gs {
			if x.ID == c.guild {
				t.Errorf("user %s still lists the deleted guild", u.id)
			}
		}
	}
}
