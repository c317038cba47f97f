package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// The contract of messaging.CommunityStore.

// member creates an account and its membership of g.
func (e *env) member(t *testing.T, g guildhall.Snowflake, name string) guildhall.User {
	t.Helper()
	u := guildhall.User{ID: e.id(), Username: fmt.Sprintf("%s_%d", name, e.next), Discriminator: "0"}
	check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: u}), "CreateUser")
	check(t, e.s.PutMember(e.ctx, guildhall.Member{GuildID: g, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}), "PutMember")
	return u
}

func (e *env) countIs(t *testing.T, g guildhall.Snowflake, want int, when string) {
	t.Helper()
	n, err := e.s.MemberCount(e.ctx, g)
	check(t, err, "MemberCount")
	if n != want {
		t.Errorf("MemberCount(%v) %s = %d; want %d", g, when, n, want)
	}
}

func (e *env) inGuilds(t *testing.T, u, g guildhall.Snowflake) bool {
	t.Helper()
	ids, err := e.s.UserGuilds(e.ctx, u)
	check(t, err, "UserGuilds")
	return slices.Contains(ids, g)
}

func testDeletes(t *testing.T, e *env) {
	g := e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g, Name: "deletes", OwnerID: g}), "PutGuild")
	keep := guildhall.Channel{ID: e.id(), GuildID: g, Name: "keep", PermissionOverwrites: []guildhall.PermissionOverwrite{}}
	gone := guildhall.Channel{ID: e.id(), GuildID: g, Name: "gone", Position: 1, PermissionOverwrites: []guildhall.PermissionOverwrite{}}
	for _, c := range []guildhall.Channel{keep, gone} {
		check(t, e.s.PutChannel(e.ctx, c), "PutChannel")
	}
	check(t, e.s.DeleteChannel(e.ctx, gone.ID), "DeleteChannel")
	_, err := e.s.Channel(e.ctx, gone.ID)
	wantErr(t, err, messaging.ErrNotFound, "Channel(deleted)")
	chs, err := e.s.Channels(e.ctx, g)
	check(t, err, "Channels")
	if len(chs) != 1 || chs[0].ID != keep.ID {
		t.Errorf("Channels after delete = %v; want only %v", chs, keep.ID)
	}
	wantErr(t, e.s.DeleteChannel(e.ctx, gone.ID), messaging.ErrNotFound, "DeleteChannel twice")

	r1, r2 := guildhall.Role{ID: e.id(), Name: "a"}, guildhall.Role{ID: e.id(), Name: "b"}
	for _, r := range []guildhall.Role{r1, r2} {
		check(t, e.s.PutRole(e.ctx, g, r), "PutRole")
	}
	check(t, e.s.DeleteRole(e.ctx, g, r1.ID), "DeleteRole")
	roles, err := e.s.Roles(e.ctx, g)
	check(t, err, "Roles")
	if len(roles) != 1 || roles[0].ID != r2.ID {
		t.Errorf("Roles after delete = %v; want only %v", roles, r2.ID)
	}
	wantErr(t, e.s.DeleteRole(e.ctx, g, r1.ID), messaging.ErrNotFound, "DeleteRole twice")

	a, b := e.member(t, g, "a"), e.member(t, g, "b")
	// A timeout is part of the membership.
	until := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	mb := guildhall.Member{GuildID: g, User: b, Roles: []guildhall.Snowflake{r2.ID}, JoinedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), CommunicationDisabledUntil: &until}
	check(t, e.s.PutMember(e.ctx, mb), "PutMember(timeout)")
	got, err := e.s.Member(e.ctx, g, b.ID)
	check(t, err, "Member")
	if d := memberDiff(got, mb); len(d) > 0 {
		t.Errorf("Member with a timeout: %v", d)
	}
	e.countIs(t, g, 2, "after 2 joins")
	check(t, e.s.RemoveMember(e.ctx, g, a.ID), "RemoveMember")
	_, err = e.s.Member(e.ctx, g, a.ID)
	wantErr(t, err, messaging.ErrNotFound, "Member(removed)")
	e.countIs(t, g, 1, "after a removal")
	if e.inGuilds(t, a.ID, g) {
		t.Errorf("UserGuilds(%v) still lists %v after RemoveMember", a.ID, g)
	}
	wantErr(t, e.s.RemoveMember(e.ctx, g, a.ID), messaging.ErrNotFound, "RemoveMember twice")
	e.countIs(t, g, 1, "after removing a non-member")
	ms, err := e.s.Members(e.ctx, g, 0, 10)
	check(t, err, "Members")
	if len(ms) != 1 || ms[0].User.ID != b.ID {
		t.Errorf("Members after a removal = %v; want only %v", memberIDs(ms), b.ID)
	}
	// Joining again counts again.
	e.member(t, g, "a-again")
	check(t, e.s.PutMember(e.ctx, guildhall.Member{GuildID: g, User: a, Roles: []guildhall.Snowflake{}}), "PutMember(rejoin)")
	e.countIs(t, g, 3, "after a rejoin")
	if !e.inGuilds(t, a.ID, g) {
		t.Errorf("UserGuilds(%v) lacks %v after rejoining", a.ID, g)
	}
}

func testDeleteGuild(t *testing.T, e *env) {
	g, other := e.id(), e.id()
	for _, id := range []guildhall.Snowflake{g, other} {
		check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: id, Name: "doomed", OwnerID: id}), "PutGuild")
		check(t, e.s.PutRole(e.ctx, id, guildhall.Role{ID: id, Name: "@everyone"}), "PutRole")
		check(t, e.s.PutChannel(e.ctx, guildhall.Channel{ID: e.id(), GuildID: id, Name: "c", PermissionOverwrites: []guildhall.PermissionOverwrite{}}), "PutChannel")
		check(t, e.s.PutInvite(e.ctx, guildhall.Invite{Code: fmt.Sprint("dg", id), GuildID: id, ChannelID: id + 1, CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}), "PutInvite")
	}
	var users []guildhall.User
	for i := range 5 {
		users = append(users, e.member(t, g, fmt.Sprint("dg", i)))
	}
	both := e.member(t, other, "both")
	check(t, e.s.PutMember(e.ctx, guildhall.Member{GuildID: g, User: both, Roles: []guildhall.Snowflake{}}), "PutMember")
	banned := guildhall.User{ID: e.id(), Username: "banned"}
	_, err := e.s.PutBan(e.ctx, guildhall.Ban{GuildID: g, User: banned})
	check(t, err, "PutBan")

	check(t, e.s.DeleteGuild(e.ctx, g), "DeleteGuild")
	_, err = e.s.Guild(e.ctx, g)
	wantErr(t, err, messaging.ErrNotFound, "Guild(deleted)")
	if chs, err := e.s.Channels(e.ctx, g); err != nil || len(chs) != 0 {
		t.Errorf("Channels(deleted guild) = %v, %v; want none", chs, err)
	}
	if rs, err := e.s.Roles(e.ctx, g); err != nil || len(rs) != 0 {
		t.Errorf("Roles(deleted guild) = %v, %v; want none", rs, err)
	}
	if ms, err := e.s.Members(e.ctx, g, 0, 100); err != nil || len(ms) != 0 {
		t.Errorf("Members(deleted guild) = %v, %v; want none", memberIDs(ms), err)
	}
	for _, u := range append(users, both) {
		if e.inGuilds(t, u.ID, g) {
			t.Errorf("UserGuilds(%v) still lists the deleted guild", u.ID)
		}
	}
	if !e.inGuilds(t, both.ID, other) {
		t.Errorf("UserGuilds(%v) lost the other guild", both.ID)
	}
	_, err = e.s.Invite(e.ctx, fmt.Sprint("dg", g))
	wantErr(t, err, messaging.ErrNotFound, "Invite of the deleted guild")
	if invs, err := e.s.GuildInvites(e.ctx, g); err != nil || len(invs) != 0 {
		t.Errorf("GuildInvites(deleted guild) = %v, %v; want none", invs, err)
	}
	_, err = e.s.Ban(e.ctx, g, banned.ID)
	wantErr(t, err, messaging.ErrNotFound, "Ban in the deleted guild")
	// The other guild is untouched; deleting again is no error.
	if _, err := e.s.Guild(e.ctx, other); err != nil {
		t.Errorf("Guild(other): %v", err)
	}
	if invs, err := e.s.GuildInvites(e.ctx, other); err != nil || len(invs) != 1 {
		t.Errorf("GuildInvites(other) = %v, %v; want its one invite", invs, err)
	}
	e.countIs(t, other, 1, "of the other guild")
	check(t, e.s.DeleteGuild(e.ctx, g), "DeleteGuild again")
}

func testBans(t *testing.T, e *env) {
	g := e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g, Name: "bans", OwnerID: g}), "PutGuild")
	m := e.member(t, g, "member")
	e.member(t, g, "stays")
	at := time.Date(2024, 4, 5, 6, 7, 8, 0, time.UTC)

	was, err := e.s.PutBan(e.ctx, guildhall.Ban{GuildID: g, User: m, Reason: ptr("spam"), CreatedAt: at})
	check(t, err, "PutBan(member)")
	if !was {
		t.Errorf("PutBan(member) wasMember = false; want true")
	}
	_, err = e.s.Member(e.ctx, g, m.ID)
	wantErr(t, err, messaging.ErrNotFound, "Member(banned)")
	e.countIs(t, g, 1, "after banning a member")
	if e.inGuilds(t, m.ID, g) {
		t.Errorf("UserGuilds(banned) still lists the guild")
	}
	b, err := e.s.Ban(e.ctx, g, m.ID)
	check(t, err, "Ban")
	if b.User.ID != m.ID || b.User.Username != m.Username || strp(b.Reason) != `"spam"` || !b.CreatedAt.Equal(at) || b.GuildID != g {
		t.Errorf("Ban = %+v; want user %v, reason spam, at %v", b, m, at)
	}
	// A second ban replaces the first; a non-member can be banned.
	was, err = e.s.PutBan(e.ctx, guildhall.Ban{GuildID: g, User: m, CreatedAt: at})
	check(t, err, "PutBan(again)")
	if was {
		t.Errorf("PutBan(again) wasMember = true; want false")
	}
	if b, _ := e.s.Ban(e.ctx, g, m.ID); b.Reason != nil {
		t.Errorf("Ban after replace has reason %s; want none", strp(b.Reason))
	}
	_, err = e.s.Ban(e.ctx, g, m.ID+1000)
	wantErr(t, err, messaging.ErrNotFound, "Ban(not banned)")

	// Paging by user id.
	ids := []guildhall.Snowflake{m.ID}
	for range 6 {
		u := guildhall.User{ID: e.id(), Username: "x"}
		_, err := e.s.PutBan(e.ctx, guildhall.Ban{GuildID: g, User: u, CreatedAt: at})
		check(t, err, "PutBan")
		ids = append(ids, u.ID)
	}
	// Another guild's bans never show.
	_, err = e.s.PutBan(e.ctx, guildhall.Ban{GuildID: g + 1, User: guildhall.User{ID: m.ID + 1}, CreatedAt: at})
	check(t, err, "PutBan(other guild)")
	page := func(q messaging.BanQuery) []guildhall.Snowflake {
		t.Helper()
		bs, err := e.s.Bans(e.ctx, g, q)
		check(t, err, "Bans(%+v)", q)
		out := []guildhall.Snowflake{}
		for _, b := range bs {
			out = append(out, b.User.ID)
		}
		return out
	}
	for _, c := range []struct {
		q    messaging.BanQuery
		want []guildhall.Snowflake
	}{
		{messaging.BanQuery{Limit: 1000}, ids},
		{messaging.BanQuery{Limit: 3}, ids[:3]},
		{messaging.BanQuery{After: ids[2], Limit: 3}, ids[3:6]},
		{messaging.BanQuery{After: ids[6], Limit: 3}, []guildhall.Snowflake{}},
		{messaging.BanQuery{Before: ids[5], Limit: 2}, ids[3:5]},
		{messaging.BanQuery{Before: ids[1], Limit: 5}, ids[:1]},
		{messaging.BanQuery{Before: ids[6] + 1, After: ids[0], Limit: 2}, ids[5:7]}, // before wins
	} {
		if got := page(c.q); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Bans(%+v) = %v; want %v", c.q, got, c.want)
		}
	}
	if _, err := e.s.Bans(e.ctx, g, messaging.BanQuery{Limit: 0}); err == nil {
		t.Errorf("Bans(limit 0) = nil error; want one")
	}

	check(t, e.s.DeleteBan(e.ctx, g, m.ID), "DeleteBan")
	_, err = e.s.Ban(e.ctx, g, m.ID)
	wantErr(t, err, messaging.ErrNotFound, "Ban(lifted)")
	wantErr(t, e.s.DeleteBan(e.ctx, g, m.ID), messaging.ErrNotFound, "DeleteBan twice")
	if got := page(messaging.BanQuery{Limit: 1000}); fmt.Sprint(got) != fmt.Sprint(ids[1:]) {
		t.Errorf("Bans after a lift = %v; want %v", got, ids[1:])
	}
}

// testGuildInvites: a guild's invites are listed each once, with their uses,
// whatever else the store holds, until deleted; the invite caps and the api's
// lists both read them.
func testGuildInvites(t *testing.T, e *env) {
	g, other := e.id(), e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g, Name: "inv", OwnerID: g}), "PutGuild")
	created := time.Date(2024, 2, 3, 4, 5, 6, 7e6, time.UTC)
	var codes []string
	for i := range 3 {
		inv := guildhall.Invite{Code: fmt.Sprintf("gi%d_%d", i, g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), CreatedAt: created, MaxUses: 10}
		check(t, e.s.PutInvite(e.ctx, inv), "PutInvite(%s)", inv.Code)
		codes = append(codes, inv.Code)
	}
	// The other guild was never put: the index does not need it.
	check(t, e.s.PutInvite(e.ctx, guildhall.Invite{Code: fmt.Sprint("gio_", g), GuildID: other, ChannelID: e.id(), CreatedAt: created}), "PutInvite(other)")
	// list is "code:uses" sorted by code; an invite listed twice shows twice.
	list := func() []string {
		t.Helper()
		invs, err := e.s.GuildInvites(e.ctx, g)
		check(t, err, "GuildInvites")
		var out []string
		for _, inv := range invs {
			if inv.GuildID != g {
				t.Errorf("GuildInvites(%v) has %s of guild %v", g, inv.Code, inv.GuildID)
			}
			if !inv.CreatedAt.Equal(created) {
				t.Errorf("GuildInvites(%v): %s created %v; want %v", g, inv.Code, inv.CreatedAt, created)
			}
			out = append(out, fmt.Sprintf("%s:%d", inv.Code, inv.Uses))
		}
		slices.Sort(out)
		return out
	}
	want := []string{codes[0] + ":0", codes[1] + ":0", codes[2] + ":0"}
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("GuildInvites = %v; want %v (code:uses)", got, want)
	}
	// A join counts a use, and the invite stays listed once.
	u := guildhall.User{ID: e.id(), Username: fmt.Sprint("joiner", g)}
	_, joined, err := e.s.JoinGuild(e.ctx, guildhall.Member{GuildID: g, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: created}, codes[1])
	check(t, err, "JoinGuild")
	if !joined {
		t.Fatalf("JoinGuild joined = false")
	}
	want[1] = codes[1] + ":1"
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("GuildInvites after a join = %v; want %v (code:uses)", got, want)
	}
	check(t, e.s.DeleteInvite(e.ctx, codes[0]), "DeleteInvite")
	_, err = e.s.Invite(e.ctx, codes[0])
	wantErr(t, err, messaging.ErrNotFound, "Invite(deleted)")
	wantErr(t, e.s.DeleteInvite(e.ctx, codes[0]), messaging.ErrNotFound, "DeleteInvite twice")
	if got := list(); !slices.Equal(got, want[1:]) {
		t.Errorf("GuildInvites after a delete = %v; want %v", got, want[1:])
	}
	if invs, err := e.s.GuildInvites(e.ctx, other); err != nil || len(invs) != 1 {
		t.Errorf("GuildInvites(other) = %v, %v; want its one invite", invs, err)
	}
	if invs, err := e.s.GuildInvites(e.ctx, e.id()); err != nil || len(invs) != 0 {
		t.Errorf("GuildInvites(no such guild) = %v, %v; want none", invs, err)
	}
}

func testAuditLog(t *testing.T, e *env) {
	g := e.id()
	mod1, mod2 := e.id(), e.id()
	// 30 entries over 25 days (three 10-day buckets), two moderators, three actions.
	start := guildhall.SnowflakeAt(time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	var all []guildhall.AuditLogEntry
	for i := range 30 {
		id := start + guildhall.Snowflake(i)*guildhall.Snowflake(20*time.Hour/time.Millisecond)<<22 + 7
		user := mod1
		if i%3 == 0 {
			user = mod2
		}
		target := fmt.Sprint(1000 + i)
		ent := guildhall.AuditLogEntry{
			ID: id, GuildID: g, TargetID: &target, UserID: &user, ActionType: []int{guildhall.AuditMemberKick, guildhall.AuditRoleCreate, guildhall.AuditMemberBanAdd}[i%3],
			Changes: []guildhall.AuditLogChange{guildhall.Change("name", nil, fmt.Sprint("r", i))},
			Options: &guildhall.AuditLogOptions{Count: fmt.Sprint(i)},
		}
		if i%2 == 0 {
			ent.Reason = ptr(fmt.Sprint("because ", i))
		}
		all = append(all, ent)
	}
	// Written out of order, and another guild's entries in the same range.
	for _, i := range rand.Perm(len(all)) {
		check(t, e.s.PutAuditEntry(e.ctx, all[i]), "PutAuditEntry")
	}
	for i := range 5 {
		u := mod1
		check(t, e.s.PutAuditEntry(e.ctx, guildhall.AuditLogEntry{ID: all[i].ID + 1, GuildID: g + 1, UserID: &u, ActionType: guildhall.AuditMemberKick}), "PutAuditEntry(other guild)")
	}
	first, last := all[0].ID, all[len(all)-1].ID
	model := func(q messaging.AuditQuery) []guildhall.Snowflake {
		out := []guildhall.Snowflake{}
		for _, ent := range all {
			if ent.ID > q.After && ent.ID < q.Before && (q.ActionType == 0 || ent.ActionType == q.ActionType) && (q.UserID == 0 || *ent.UserID == q.UserID) {
				out = append(out, ent.ID)
			}
		}
		if !q.Ascending {
			slices.Reverse(out)
		}
		return out[:min(len(out), q.Limit)]
	}
	for _, q := range []messaging.AuditQuery{
		{After: first - 1, Before: last + 1, Limit: 100},
		{After: first - 1, Before: last + 1, Limit: 100, Ascending: true},
		{After: first - 1, Before: last + 1, Limit: 7},
		{After: first - 1, Before: last + 1, Limit: 7, Ascending: true},
		{After: all[4].ID, Before: all[20].ID, Limit: 100},
		{After: all[4].ID, Before: all[20].ID, Limit: 5, Ascending: true},
		{After: first - 1, Before: last + 1, Limit: 4, UserID: mod2},
		{After: first - 1, Before: last + 1, Limit: 100, ActionType: guildhall.AuditRoleCreate},
		{After: all[10].ID, Before: last + 1, Limit: 3, ActionType: guildhall.AuditMemberBanAdd, UserID: mod2, Ascending: true},
		{After: first - 1, Before: last + 1, Limit: 100, UserID: e.id()},
		{After: last, Before: last + 1000, Limit: 10},
	} {
		got, err := e.s.AuditLog(e.ctx, g, q)
		check(t, err, "AuditLog(%+v)", q)
		var ids []guildhall.Snowflake
		for _, ent := range got {
			ids = append(ids, ent.ID)
		}
		if want := model(q); fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("AuditLog(%+v) = %v; want %v", q, ids, want)
		}
	}
	// Entries come back whole.
	got, err := e.s.AuditLog(e.ctx, g, messaging.AuditQuery{After: all[2].ID - 1, Before: all[2].ID + 1, Limit: 1})
	check(t, err, "AuditLog(one)")
	if len(got) != 1 {
		t.Fatalf("AuditLog(one) = %d entries; want 1", len(got))
	}
	w, gotE := all[2], got[0]
	if gotE.GuildID != g || *gotE.TargetID != *w.TargetID || *gotE.UserID != *w.UserID || gotE.ActionType != w.ActionType ||
		strp(gotE.Reason) != strp(w.Reason) || len(gotE.Changes) != 1 || string(gotE.Changes[0].NewValue) != `"r2"` ||
		gotE.Changes[0].OldValue != nil || gotE.Options == nil || gotE.Options.Count != "2" {
		t.Errorf("AuditLog entry = %+v; want %+v", gotE, w)
	}
	for _, bad := range []messaging.AuditQuery{{After: 1, Before: 10, Limit: 0}, {After: 10, Before: 10, Limit: 5}, {Before: 10, Limit: 5}} {
		if _, err := e.s.AuditLog(e.ctx, g, bad); err == nil {
			t.Errorf("AuditLog(%+v) = nil error; want one", bad)
		}
	}
}

// pinWrite pins (at is not zero) or unpins message m.
func pinWrite(seq uint64, m guildhall.Message, at time.Time) messaging.MessageWrite {
	return messaging.MessageWrite{Seq: seq, Message: guildhall.Message{ID: m.ID, ChannelID: m.ChannelID}, Pin: &messaging.PinWrite{Pinned: !at.IsZero(), At: at}}
}

func testPins(t *testing.T, e *env) {
	ch, other := e.id(), e.id()
	author := guildhall.User{ID: e.id(), Username: "pinner", Discriminator: "0"}
	base := guildhall.SnowflakeAt(time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC))
	msg := func(i int, content string) guildhall.Message {
		id := base + guildhall.Snowflake(i)<<22
		return guildhall.Message{ID: id, ChannelID: ch, Author: author, Content: content, Timestamp: id.Time()}
	}
	m0, m1, m2 := msg(0, "zero"), msg(1, "one"), msg(2, "two")
	at := func(min int) time.Time { return time.Date(2024, 8, 2, 0, min, 0, 0, time.UTC) }
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 10, Message: m0}, {Seq: 11, Message: m1}, {Seq: 12, Message: m2}}), "ApplyMessages")

	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{pinWrite(20, m1, at(1)), pinWrite(21, m0, at(2))}), "pin")
	pinned := func(m guildhall.Message) bool {
		t.Helper()
		got, err := e.s.Message(e.ctx, ch, m.ID)
		check(t, err, "Message")
		return got.Pinned
	}
	if !pinned(m0) || !pinned(m1) || pinned(m2) {
		t.Errorf("Pinned after two pins: %v %v %v; want true true false", pinned(m0), pinned(m1), pinned(m2))
	}
	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 10})
	check(t, err, "History")
	if len(hist) != 3 || !hist[1].Pinned || !hist[2].Pinned || hist[0].Pinned {
		t.Errorf("History pinned flags wrong: %+v", hist)
	}
	pins := func(limit int) string {
		t.Helper()
		ps, err := e.s.Pins(e.ctx, ch, limit)
		check(t, err, "Pins")
		var out []string
		for _, p := range ps {
			if !p.Message.Pinned {
				t.Errorf("Pins: %v has Pinned false", p.Message.ID)
			}
			out = append(out, fmt.Sprintf("%s@%d", p.Message.Content, p.PinnedAt.Minute()))
		}
		return fmt.Sprint(out)
	}
	if got, want := pins(50), "[zero@2 one@1]"; got != want {
		t.Errorf("Pins = %s; want %s (most recently pinned first)", got, want)
	}
	if got, want := pins(1), "[zero@2]"; got != want {
		t.Errorf("Pins(limit 1) = %s; want %s", got, want)
	}
	// An edit after the pin keeps it pinned, and its content is shown.
	edited := m1
	edited.Content = "one, edited"
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 30, Message: edited}}), "edit")
	if got, want := pins(50), "[zero@2 one, edited@1]"; got != want {
		t.Errorf("Pins after an edit = %s; want %s", got, want)
	}
	// An older unpin changes nothing; a newer one unpins.
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{pinWrite(15, m1, time.Time{})}), "stale unpin")
	if !pinned(m1) {
		t.Errorf("a stale unpin (seq 15 < 20) unpinned the message")
	}
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{pinWrite(31, m1, time.Time{})}), "unpin")
	if pinned(m1) {
		t.Errorf("unpin at seq 31 left the message pinned")
	}
	if got, _ := e.s.Message(e.ctx, ch, m1.ID); got.Content != "one, edited" {
		t.Errorf("unpin changed content to %q", got.Content)
	}
	// An older upsert after the pin changes neither the content nor the pin.
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 5, Message: m0}, pinWrite(32, m2, at(3))}), "old upsert, pin")
	if got, want := pins(50), "[two@3 zero@2]"; got != want {
		t.Errorf("Pins = %s; want %s", got, want)
	}
	// A delete is final: gone from the pins, and a later pin does not bring it back.
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 40, Delete: true, Message: guildhall.Message{ID: m2.ID, ChannelID: ch}}}), "delete")
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{pinWrite(41, m2, at(4))}), "pin after delete")
	if got, want := pins(50), "[zero@2]"; got != want {
		t.Errorf("Pins after a delete = %s; want %s", got, want)
	}
	if ps, err := e.s.Pins(e.ctx, other, 50); err != nil || len(ps) != 0 {
		t.Errorf("Pins(other channel) = %v, %v; want none", ps, err)
	}
	if _, err := e.s.Pins(e.ctx, ch, 0); err == nil {
		t.Errorf("Pins(limit 0) = nil error; want one")
	}
}

// testPinsOrderFree applies one history of upserts, pins, unpins and deletes in
// several orders and batchings; every store ends in the same state.
func testPinsOrderFree(t *testing.T, e *env) {
	author := guildhall.User{ID: e.id(), Username: "o", Discriminator: "0"}
	base := guildhall.SnowflakeAt(time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC))
	at := time.Date(2024, 9, 2, 0, 0, 0, 0, time.UTC)
	history := func(ch guildhall.Snowflake) []messaging.MessageWrite {
		var ws []messaging.MessageWrite
		seq := uint64(1)
		for i := range 6 {
			id := base + guildhall.Snowflake(i)<<22
			m := guildhall.Message{ID: id, ChannelID: ch, Author: author, Content: fmt.Sprint("v1 ", i), Timestamp: id.Time()}
			ws = append(ws, messaging.MessageWrite{Seq: seq, Message: m})
			seq++
			if i%2 == 0 {
				ws = append(ws, pinWrite(seq, m, at.Add(time.Duration(i)*time.Minute)))
				seq++
			}
			m.Content = fmt.Sprint("v2 ", i)
			ws = append(ws, messaging.MessageWrite{Seq: seq, Message: m})
			seq++
			switch i {
			case 2:
				ws = append(ws, pinWrite(seq, m, time.Time{})) // unpinned
				seq++
			case 3:
				ws = append(ws, pinWrite(seq, m, at.Add(time.Hour))) // pinned late
				seq++
			case 4:
				ws = append(ws, messaging.MessageWrite{Seq: seq, Delete: true, Message: guildhall.Message{ID: id, ChannelID: ch}})
				seq++
			}
		}
		return ws
	}
	// In order, each pinned: 0 (v2), 3 (v2, an hour later); 2 unpinned; 4 deleted.
	want := "[v2 3 v2 0]"
	for _, order := range []string{"in order", "reversed", "shuffled, in batches", "twice"} {
		ch := e.id()
		ws := history(ch)
		switch order {
		case "reversed":
			slices.Reverse(ws)
		case "shuffled, in batches":
			rand.Shuffle(len(ws), func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
		case "twice":
			ws = append(ws, history(ch)...)
		}
		for len(ws) > 0 {
			n := min(len(ws), 1+rand.IntN(4))
			check(t, e.s.ApplyMessages(e.ctx, ws[:n]), "ApplyMessages(%s)", order)
			ws = ws[n:]
		}
		ps, err := e.s.Pins(e.ctx, ch, 50)
		check(t, err, "Pins")
		var got []string
		for _, p := range ps {
			got = append(got, p.Message.Content)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s: Pins = %v; want %s", order, got, want)
		}
		hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 10})
		check(t, err, "History")
		var flags []string
		for _, m := range hist {
			flags = append(flags, fmt.Sprintf("%s:%v", m.Content, m.Pinned))
		}
		if got, want := fmt.Sprint(flags), "[v2 5:false v2 3:true v2 2:false v2 1:false v2 0:true]"; got != want {
			t.Errorf("%s: History = %s; want %s", order, got, want)
		}
	}
}
