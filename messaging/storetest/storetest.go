// Package storetest is the contract every messaging.Store implementation must
// pass. An implementation's own test calls Run with a function that opens a
// store:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) messaging.Store {
//			s, err := OpenMyStore(...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// open is called once per subtest and owns the store's lifecycle: it must close
// the store (and drop whatever it created) with t.Cleanup. The tests never call
// Close themselves, so a cleanup that still needs the store works.
//
// The tests do not require an empty store. Every subtest draws its ids from a
// random base and makes its usernames, token hashes and invite codes from them,
// so a store shared between subtests or runs (one CQL keyspace, say) passes
// too. Ids stay below 2^63 so they fit CQL's signed bigint. Nothing here waits
// or depends on timing; times in the data are fixed dates, millisecond
// precision, UTC (what a CQL timestamp keeps).
//
// What is checked, beyond the doc comments of messaging.Store:
//   - History is compared, query by query, with a model computed from the list
//     of writes, over a dense channel spanning several 10-day buckets and a
//     sparse channel with messages in two buckets two years apart; messages of
//     neighbouring channels must never appear.
//   - ApplyMessages must give the same final state whatever the order, batching
//     and repetition of the writes.
//   - Role order is not part of the contract (roles are compared sorted by id).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Run runs the contract tests as subtests of t, each on a store from open(t).
func Run(t *testing.T, open func(t *testing.T) messaging.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"Guilds", testGuilds},
		{"Channels", testChannels},
		{"Roles", testRoles},
		{"Members", testMembers},
		{"MemberPaging", testMemberPaging},
		{"Invites", testInvites},
		{"JoinGuild", testJoinGuild},
		{"Messages", testMessages},
		{"VersioningOrder", testVersioningOrder},
		{"VersioningLateWrites", testVersioningLateWrites},
		{"History", testHistory},
		{"HistorySparse", testHistorySparse},
		{"HistoryEmpty", testHistoryEmpty},
		// accounts.go
		{"RevokeTokens", testRevokeTokens},
		{"PasswordAndBots", testPasswordAndBots},
		// community.go
		{"Deletes", testDeletes},
		{"DeleteGuild", testDeleteGuild},
		{"Bans", testBans},
		{"GuildInvites", testGuildInvites},
		{"AuditLog", testAuditLog},
		{"Pins", testPins},
		{"PinsOrderFree", testPinsOrderFree},
	}
	tests = append(tests, conversationTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, &env{s: s, ctx: t.Context(), next: newBase()})
		})
	}
}

// env is one subtest's store and id source.
type env struct {
	s    messaging.Store
	ctx  context.Context
	next uint64
}

// newBase picks a random starting id in [2^40, 2^61): far from 0 so that "after
// 0" and "before 1" mean something, and with room below 2^63 for millions of
// ids.
func newBase() uint64 { return 1<<40 + rand.Uint64N(1<<61-1<<40) }

// id returns a fresh id, greater than every id this env returned before.
func (e *env) id() guildhall.Snowflake {
	e.next++
	return guildhall.Snowflake(e.next)
}

func ptr[T any](v T) *T { return &v }

func check(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

func wantErr(t *testing.T, err, want error, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v; want %v", fmt.Sprintf(format, args...), err, want)
	}
}

// ---- comparisons that tolerate what a store may legitimately change: time
// zones (compared with Equal), nil versus empty slices.

func strp(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func timep(p *time.Time) string {
	if p == nil {
		return "<nil>"
	}
	return p.UTC().Format(time.RFC3339Nano)
}

func idp(p *guildhall.Snowflake) string {
	if p == nil {
		return "<nil>"
	}
	return p.String()
}

// diff collects field mismatches as "field: got X, want Y".
type diff []string

func (d *diff) eq(field string, got, want any) {
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		*d = append(*d, fmt.Sprintf("%s: got %s, want %s", field, g, w))
	}
}

func (d diff) String() string { return strings.Join(d, "; ") }

func userDiff(d *diff, prefix string, got, want guildhall.User) {
	d.eq(prefix+"ID", got.ID, want.ID)
	d.eq(prefix+"Username", got.Username, want.Username)
	d.eq(prefix+"Discriminator", got.Discriminator, want.Discriminator)
	d.eq(prefix+"GlobalName", strp(got.GlobalName), strp(want.GlobalName))
	d.eq(prefix+"Avatar", strp(got.Avatar), strp(want.Avatar))
	d.eq(prefix+"Bot", got.Bot, want.Bot)
}

func checkUser(t *testing.T, what string, got, want guildhall.User) {
	t.Helper()
	var d diff
	userDiff(&d, "", got, want)
	if len(d) > 0 {
		t.Errorf("%s: %v", what, d)
	}
}

func messageDiff(got, want guildhall.Message) diff {
	var d diff
	d.eq("ID", got.ID, want.ID)
	d.eq("ChannelID", got.ChannelID, want.ChannelID)
	d.eq("GuildID", got.GuildID, want.GuildID)
	userDiff(&d, "Author.", got.Author, want.Author)
	d.eq("Content", got.Content, want.Content)
	d.eq("Timestamp", got.Timestamp.UTC().Format(time.RFC3339Nano), want.Timestamp.UTC().Format(time.RFC3339Nano))
	d.eq("EditedTimestamp", timep(got.EditedTimestamp), timep(want.EditedTimestamp))
	d.eq("TTS", got.TTS, want.TTS)
	d.eq("MentionEveryone", got.MentionEveryone, want.MentionEveryone)
	d.eq("len(Mentions)", len(got.Mentions), len(want.Mentions))
	for i := range min(len(got.Mentions), len(want.Mentions)) {
		userDiff(&d, fmt.Sprintf("Mentions[%d].", i), got.Mentions[i], want.Mentions[i])
	}
	d.eq("MentionRoles", fmt.Sprint(got.MentionRoles), fmt.Sprint(want.MentionRoles))
	d.eq("Pinned", got.Pinned, want.Pinned)
	d.eq("Type", got.Type, want.Type)
	d.eq("Flags", got.Flags, want.Flags)
	return d
}

func channelDiff(got, want guildhall.Channel) diff {
	var d diff
	d.eq("ID", got.ID, want.ID)
	d.eq("Type", got.Type, want.Type)
	d.eq("GuildID", got.GuildID, want.GuildID)
	d.eq("Name", got.Name, want.Name)
	d.eq("Position", got.Position, want.Position)
	d.eq("Topic", strp(got.Topic), strp(want.Topic))
	d.eq("ParentID", idp(got.ParentID), idp(want.ParentID))
	d.eq("PermissionOverwrites", fmt.Sprintf("%+v", got.PermissionOverwrites), fmt.Sprintf("%+v", want.PermissionOverwrites))
	d.eq("NSFW", got.NSFW, want.NSFW)
	d.eq("RateLimitPerUser", got.RateLimitPerUser, want.RateLimitPerUser)
	return d
}

func memberDiff(got, want guildhall.Member) diff {
	var d diff
	d.eq("GuildID", got.GuildID, want.GuildID)
	userDiff(&d, "User.", got.User, want.User)
	d.eq("Nick", strp(got.Nick), strp(want.Nick))
	d.eq("Roles", fmt.Sprint(got.Roles), fmt.Sprint(want.Roles))
	d.eq("JoinedAt", got.JoinedAt.UTC().Format(time.RFC3339Nano), want.JoinedAt.UTC().Format(time.RFC3339Nano))
	d.eq("Deaf", got.Deaf, want.Deaf)
	d.eq("Mute", got.Mute, want.Mute)
	d.eq("CommunicationDisabledUntil", timep(got.CommunicationDisabledUntil), timep(want.CommunicationDisabledUntil))
	return d
}

func inviteDiff(got, want guildhall.Invite) diff {
	var d diff
	d.eq("Code", got.Code, want.Code)
	d.eq("GuildID", got.GuildID, want.GuildID)
	d.eq("ChannelID", got.ChannelID, want.ChannelID)
	d.eq("InviterID", got.InviterID, want.InviterID)
	d.eq("MaxUses", got.MaxUses, want.MaxUses)
	d.eq("Uses", got.Uses, want.Uses)
	d.eq("MaxAge", got.MaxAge, want.MaxAge)
	d.eq("CreatedAt", got.CreatedAt.UTC().Format(time.RFC3339Nano), want.CreatedAt.UTC().Format(time.RFC3339Nano))
	d.eq("ExpiresAt", timep(got.ExpiresAt), timep(want.ExpiresAt))
	return d
}

// ---- users and tokens

func testUsers(t *testing.T, e *env) {
	id := e.id()
	name := fmt.Sprintf("Alice_%d", id)
	alice := guildhall.User{ID: id, Username: name, Discriminator: "0", GlobalName: ptr("Alice A."), Avatar: ptr("a1b2")}
	check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: alice, PasswordHash: "argon2id$alice"}), "CreateUser(%s)", name)

	for _, q := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
		rec, err := e.s.UserByName(e.ctx, q)
		check(t, err, "UserByName(%q)", q)
		checkUser(t, fmt.Sprintf("UserByName(%q)", q), rec.User, alice)
		if rec.PasswordHash != "argon2id$alice" {
			t.Errorf("UserByName(%q).PasswordHash = %q; want %q", q, rec.PasswordHash, "argon2id$alice")
		}
	}
	u, err := e.s.User(e.ctx, id)
	check(t, err, "User(%v)", id)
	checkUser(t, fmt.Sprintf("User(%v)", id), u, alice)

	// Same name in another case, another id: taken.
	dupID := e.id()
	dup := guildhall.User{ID: dupID, Username: strings.ToUpper(name[:1]) + strings.ToLower(name[1:3]) + strings.ToUpper(name[3:])}
	wantErr(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: dup, PasswordHash: "x"}), messaging.ErrConflict,
		"CreateUser(%q) after %q", dup.Username, name)
	_, err = e.s.User(e.ctx, dupID)
	wantErr(t, err, messaging.ErrNotFound, "User(%v) after its conflicting CreateUser", dupID)
	rec, err := e.s.UserByName(e.ctx, name)
	check(t, err, "UserByName(%q) after conflict", name)
	if rec.User.ID != id || rec.PasswordHash != "argon2id$alice" {
		t.Errorf("UserByName(%q) after conflict = %+v; want the original account %v", name, rec, id)
	}

	// A bot: no password, Bot kept.
	bot := guildhall.User{ID: e.id(), Username: fmt.Sprintf("bot_%d", id), Discriminator: "0", Bot: true}
	check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: bot}), "CreateUser(bot)")
	rec, err = e.s.UserByName(e.ctx, bot.Username)
	check(t, err, "UserByName(%q)", bot.Username)
	checkUser(t, "UserByName(bot)", rec.User, bot)
	if rec.PasswordHash != "" {
		t.Errorf("UserByName(bot).PasswordHash = %q; want empty", rec.PasswordHash)
	}

	_, err = e.s.UserByName(e.ctx, fmt.Sprintf("nobody_%d", id))
	wantErr(t, err, messaging.ErrNotFound, "UserByName(nobody)")
	_, err = e.s.User(e.ctx, e.id())
	wantErr(t, err, messaging.ErrNotFound, "User(unknown)")
}

func testTokens(t *testing.T, e *env) {
	u1, u2 := e.id(), e.id()
	h1, h2, h3 := fmt.Sprintf("sha256-%d-a", u1), fmt.Sprintf("sha256-%d-b", u1), fmt.Sprintf("sha256-%d", u2)
	check(t, e.s.PutToken(e.ctx, h1, u1), "PutToken")
	check(t, e.s.PutToken(e.ctx, h2, u1), "PutToken")
	check(t, e.s.PutToken(e.ctx, h3, u2), "PutToken")
	for h, want := range map[string]guildhall.Snowflake{h1: u1, h2: u1, h3: u2} {
		got, err := e.s.UserByToken(e.ctx, h)
		check(t, err, "UserByToken(%q)", h)
		if got != want {
			t.Errorf("UserByToken(%q) = %v; want %v", h, got, want)
		}
	}
	_, err := e.s.UserByToken(e.ctx, fmt.Sprintf("sha256-%d-unknown", u1))
	wantErr(t, err, messaging.ErrNotFound, "UserByToken(unknown)")
}

// ---- guilds, channels, roles

func testGuilds(t *testing.T, e *env) {
	g := guildhall.Guild{ID: e.id(), Name: "Tavern", Icon: ptr("icon1"), OwnerID: e.id()}
	check(t, e.s.PutGuild(e.ctx, g), "PutGuild")
	got, err := e.s.Guild(e.ctx, g.ID)
	check(t, err, "Guild(%v)", g.ID)
	if got.ID != g.ID || got.Name != g.Name || strp(got.Icon) != strp(g.Icon) || got.OwnerID != g.OwnerID || got.MemberCount != 0 {
		t.Errorf("Guild(%v) = %+v; want %+v", g.ID, got, g)
	}

	g.Name, g.Icon = "Great Hall", nil
	check(t, e.s.PutGuild(e.ctx, g), "PutGuild(replace)")
	got, err = e.s.Guild(e.ctx, g.ID)
	check(t, err, "Guild(%v)", g.ID)
	if got.Name != "Great Hall" || got.Icon != nil {
		t.Errorf("Guild(%v) after replace = %+v; want name %q and no icon", g.ID, got, "Great Hall")
	}

	_, err = e.s.Guild(e.ctx, e.id())
	wantErr(t, err, messaging.ErrNotFound, "Guild(unknown)")
}

func testChannels(t *testing.T, e *env) {
	g, other := e.id(), e.id()
	cat := guildhall.Channel{ID: e.id(), Type: guildhall.ChannelTypeGuildCategory, GuildID: g, Name: "Text", Position: 3}
	full := guildhall.Channel{
		ID: e.id(), Type: guildhall.ChannelTypeGuildText, GuildID: g, Name: "general", Position: 2,
		Topic: ptr("say hi"), ParentID: ptr(cat.ID), NSFW: true, RateLimitPerUser: 5,
		PermissionOverwrites: []guildhall.PermissionOverwrite{
			{ID: g, Type: guildhall.OverwriteRole, Allow: 1 << 10, Deny: 1 << 11},
			{ID: e.id(), Type: guildhall.OverwriteMember, Allow: 1 << 40},
		},
	}
	a := guildhall.Channel{ID: e.id(), GuildID: g, Name: "a", Position: 0}
	b := guildhall.Channel{ID: e.id(), GuildID: g, Name: "b", Position: 1}
	c := guildhall.Channel{ID: e.id(), GuildID: g, Name: "c", Position: 0} // ties with a: id decides
	elsewhere := guildhall.Channel{ID: e.id(), GuildID: other, Name: "elsewhere"}
	for _, ch := range []guildhall.Channel{c, full, elsewhere, b, cat, a} {
		check(t, e.s.PutChannel(e.ctx, ch), "PutChannel(%s)", ch.Name)
	}

	got, err := e.s.Channel(e.ctx, full.ID)
	check(t, err, "Channel(%v)", full.ID)
	if d := channelDiff(got, full); len(d) > 0 {
		t.Errorf("Channel(%v): %v", full.ID, d)
	}

	checkList := func(when string, want ...guildhall.Channel) {
		t.Helper()
		list, err := e.s.Channels(e.ctx, g)
		check(t, err, "Channels(%v)", g)
		names := func(cs []guildhall.Channel) (s []string) {
			for _, c := range cs {
				s = append(s, fmt.Sprintf("%s(pos %d)", c.Name, c.Position))
			}
			return s
		}
		if fmt.Sprint(names(list)) != fmt.Sprint(names(want)) {
			t.Fatalf("Channels(%v) %s = %v; want %v", g, when, names(list), names(want))
		}
		for i := range list {
			if d := channelDiff(list[i], want[i]); len(d) > 0 {
				t.Errorf("Channels(%v) %s [%d]: %v", g, when, i, d)
			}
		}
	}
	checkList("", a, c, b, full, cat)

	// Replace: a reorder and a rename.
	full.Position, full.Name, full.Topic = 0, "lobby", nil
	check(t, e.s.PutChannel(e.ctx, full), "PutChannel(replace)")
	checkList("after replace", full, a, c, b, cat) // full has the smallest id of the three

	list, err := e.s.Channels(e.ctx, other)
	check(t, err, "Channels(%v)", other)
	if len(list) != 1 || list[0].ID != elsewhere.ID {
		t.Errorf("Channels(other guild) = %v; want only %v", list, elsewhere.ID)
	}
	list, err = e.s.Channels(e.ctx, e.id())
	check(t, err, "Channels(empty guild)")
	if len(list) != 0 {
		t.Errorf("Channels(empty guild) = %v; want none", list)
	}
	_, err = e.s.Channel(e.ctx, e.id())
	wantErr(t, err, messaging.ErrNotFound, "Channel(unknown)")
}

func testRoles(t *testing.T, e *env) {
	g, other := e.id(), e.id()
	everyone := guildhall.Role{ID: g, Name: "@everyone", Permissions: 1<<10 | 1<<11}
	mod := guildhall.Role{ID: e.id(), Name: "mod", Color: 0x3498db, Hoist: true, Position: 2, Permissions: 1 << 13, Mentionable: true}
	bot := guildhall.Role{ID: e.id(), Name: "bot", Position: 1, Managed: true}
	for _, r := range []guildhall.Role{mod, everyone, bot} {
		check(t, e.s.PutRole(e.ctx, g, r), "PutRole(%s)", r.Name)
	}
	check(t, e.s.PutRole(e.ctx, other, guildhall.Role{ID: other, Name: "@everyone"}), "PutRole(other)")
	mod.Name, mod.Permissions = "moderator", 1<<13|1<<2
	check(t, e.s.PutRole(e.ctx, g, mod), "PutRole(replace)")

	got, err := e.s.Roles(e.ctx, g)
	check(t, err, "Roles(%v)", g)
	slices.SortFunc(got, func(a, b guildhall.Role) int { return cmpID(a.ID, b.ID) })
	want := []guildhall.Role{everyone, mod, bot}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("Roles(%v) = %+v; want %+v", g, got, want)
	}
	got, err = e.s.Roles(e.ctx, e.id())
	check(t, err, "Roles(empty guild)")
	if len(got) != 0 {
		t.Errorf("Roles(empty guild) = %+v; want none", got)
	}
}

func cmpID(a, b guildhall.Snowflake) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ---- members

func testMembers(t *testing.T, e *env) {
	g1, g2, g3 := e.id(), e.id(), e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g1, Name: "one", OwnerID: g1}), "PutGuild")
	joined := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)

	var users []guildhall.User
	for i := range 3 {
		u := guildhall.User{ID: e.id(), Username: fmt.Sprintf("m%d_%d", i, g1), Discriminator: "0", GlobalName: ptr(fmt.Sprint("Member ", i))}
		check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: u, PasswordHash: "h"}), "CreateUser")
		users = append(users, u)
	}
	// Members are put with the user id only: the store fills User from the account.
	put := func(g guildhall.Snowflake, u guildhall.User, nick *string, roles ...guildhall.Snowflake) guildhall.Member {
		t.Helper()
		m := guildhall.Member{GuildID: g, User: guildhall.User{ID: u.ID}, Nick: nick, Roles: roles, JoinedAt: joined, Mute: nick != nil}
		check(t, e.s.PutMember(e.ctx, m), "PutMember(%v, %v)", g, u.ID)
		m.User = u
		return m
	}
	m0 := put(g1, users[0], ptr("zero"), g1+100)
	m1 := put(g1, users[1], nil)
	m2 := put(g1, users[2], nil, g1+100, g1+101)

	got, err := e.s.Member(e.ctx, g1, users[0].ID)
	check(t, err, "Member(%v, %v)", g1, users[0].ID)
	if d := memberDiff(got, m0); len(d) > 0 {
		t.Errorf("Member(%v, %v): %v", g1, users[0].ID, d)
	}

	countIs := func(when string, want int) {
		t.Helper()
		n, err := e.s.MemberCount(e.ctx, g1)
		check(t, err, "MemberCount")
		if n != want {
			t.Errorf("MemberCount(%v) %s = %d; want %d", g1, when, n, want)
		}
		g, err := e.s.Guild(e.ctx, g1)
		check(t, err, "Guild")
		if g.MemberCount != want {
			t.Errorf("Guild(%v).MemberCount %s = %d; want %d", g1, when, g.MemberCount, want)
		}
	}
	countIs("after 3 joins", 3)

	// Replacing a membership changes it but does not count it twice.
	put(g1, users[1], ptr("one"), g1+101)
	m1 = put(g1, users[1], ptr("uno"), g1+101)
	countIs("after replacing a member twice", 3)
	got, err = e.s.Member(e.ctx, g1, users[1].ID)
	check(t, err, "Member")
	if d := memberDiff(got, m1); len(d) > 0 {
		t.Errorf("Member(%v, %v) after replace: %v", g1, users[1].ID, d)
	}

	// Replacing the guild keeps the count.
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g1, Name: "renamed", OwnerID: g1}), "PutGuild(replace)")
	countIs("after PutGuild", 3)

	list, err := e.s.Members(e.ctx, g1, 0, 10)
	check(t, err, "Members(%v, 0, 10)", g1)
	want := []guildhall.Member{m0, m1, m2}
	if len(list) != len(want) {
		t.Fatalf("Members(%v, 0, 10) = %d members; want %d", g1, len(list), len(want))
	}
	for i := range want {
		if d := memberDiff(list[i], want[i]); len(d) > 0 {
			t.Errorf("Members(%v, 0, 10)[%d]: %v", g1, i, d)
		}
	}

	// UserGuilds ascending whatever the join order.
	put(g3, users[0], nil)
	put(g2, users[0], nil)
	gs, err := e.s.UserGuilds(e.ctx, users[0].ID)
	check(t, err, "UserGuilds")
	if fmt.Sprint(gs) != fmt.Sprint([]guildhall.Snowflake{g1, g2, g3}) {
		t.Errorf("UserGuilds(%v) = %v; want %v", users[0].ID, gs, []guildhall.Snowflake{g1, g2, g3})
	}
	gs, err = e.s.UserGuilds(e.ctx, users[1].ID)
	check(t, err, "UserGuilds")
	if fmt.Sprint(gs) != fmt.Sprint([]guildhall.Snowflake{g1}) {
		t.Errorf("UserGuilds(%v) = %v; want [%v]", users[1].ID, gs, g1)
	}
	gs, err = e.s.UserGuilds(e.ctx, e.id())
	check(t, err, "UserGuilds(unknown)")
	if len(gs) != 0 {
		t.Errorf("UserGuilds(unknown) = %v; want none", gs)
	}
	n, err := e.s.MemberCount(e.ctx, g2)
	check(t, err, "MemberCount")
	if n != 1 {
		t.Errorf("MemberCount(%v) = %d; want 1", g2, n)
	}

	_, err = e.s.Member(e.ctx, g1, e.id())
	wantErr(t, err, messaging.ErrNotFound, "Member(guild, unknown user)")
	_, err = e.s.Member(e.ctx, e.id(), users[0].ID)
	wantErr(t, err, messaging.ErrNotFound, "Member(unknown guild, user)")
	n, err = e.s.MemberCount(e.ctx, e.id())
	check(t, err, "MemberCount(unknown)")
	if n != 0 {
		t.Errorf("MemberCount(unknown guild) = %d; want 0", n)
	}
}

func testMemberPaging(t *testing.T, e *env) {
	// Neighbouring guild ids on both sides catch pages that run past their guild.
	before, g, after := e.id(), e.id(), e.id()
	const n = 2500
	ids := make([]guildhall.Snowflake, n)
	for i := range ids {
		ids[i] = e.id()
	}
	order := slices.Clone(ids)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	joined := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range order {
		m := guildhall.Member{GuildID: g, User: guildhall.User{ID: id, Username: fmt.Sprint("u", id)}, JoinedAt: joined}
		check(t, e.s.PutMember(e.ctx, m), "PutMember(%v)", id)
	}
	for _, other := range []guildhall.Snowflake{before, after} {
		for _, id := range []guildhall.Snowflake{ids[0], ids[n/2], ids[n-1], e.id()} {
			check(t, e.s.PutMember(e.ctx, guildhall.Member{GuildID: other, User: guildhall.User{ID: id}, JoinedAt: joined}), "PutMember(other guild)")
		}
	}
	if c, err := e.s.MemberCount(e.ctx, g); err != nil || c != n {
		t.Errorf("MemberCount(%v) = %d, %v; want %d", g, c, err, n)
	}

	for _, limit := range []int{1000, 7} {
		var all []guildhall.Snowflake
		cursor := guildhall.Snowflake(0)
		for page := 0; ; page++ {
			list, err := e.s.Members(e.ctx, g, cursor, limit)
			check(t, err, "Members(after=%v, limit=%d)", cursor, limit)
			if wantLen := min(limit, n-len(all)); len(list) != wantLen {
				t.Fatalf("Members(after=%v, limit=%d) page %d = %d members; want %d", cursor, limit, page, len(list), wantLen)
			}
			if len(list) == 0 {
				break
			}
			for _, m := range list {
				if m.GuildID != g {
					t.Fatalf("Members(%v, after=%v) returned a member of guild %v", g, cursor, m.GuildID)
				}
				if m.User.Username != fmt.Sprint("u", m.User.ID) {
					t.Fatalf("Members(after=%v): member %v has username %q; want %q", cursor, m.User.ID, m.User.Username, fmt.Sprint("u", m.User.ID))
				}
				all = append(all, m.User.ID)
			}
			cursor = list[len(list)-1].User.ID
		}
		if !slices.Equal(all, ids) {
			t.Errorf("Members paged by %d: got %d ids, want %d, ascending (first mismatch at %d)", limit, len(all), n, mismatch(all, ids))
		}
	}

	// A cursor in the middle, the last member, and a cursor below every member.
	mid := ids[1234]
	list, err := e.s.Members(e.ctx, g, mid, 3)
	check(t, err, "Members(after=%v)", mid)
	if got := memberIDs(list); fmt.Sprint(got) != fmt.Sprint(ids[1235:1238]) {
		t.Errorf("Members(after=%v, limit=3) = %v; want %v", mid, got, ids[1235:1238])
	}
	list, err = e.s.Members(e.ctx, g, ids[n-1], 10)
	check(t, err, "Members(after=last)")
	if len(list) != 0 {
		t.Errorf("Members(after=last, limit=10) = %v; want none", memberIDs(list))
	}
	list, err = e.s.Members(e.ctx, g, before, 2)
	check(t, err, "Members(after=%v)", before)
	if got := memberIDs(list); fmt.Sprint(got) != fmt.Sprint(ids[:2]) {
		t.Errorf("Members(after=%v, limit=2) = %v; want %v", before, got, ids[:2])
	}
}

func memberIDs(ms []guildhall.Member) []guildhall.Snowflake {
	out := make([]guildhall.Snowflake, len(ms))
	for i, m := range ms {
		out[i] = m.User.ID
	}
	return out
}

func mismatch(a, b []guildhall.Snowflake) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// ---- invites

func testInvites(t *testing.T, e *env) {
	g := e.id()
	created := time.Date(2024, 2, 3, 4, 5, 6, 7e6, time.UTC)
	forever := guildhall.Invite{Code: fmt.Sprint("f", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), CreatedAt: created}
	limited := guildhall.Invite{Code: fmt.Sprint("L", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(),
		MaxUses: 5, Uses: 1, MaxAge: 3600, CreatedAt: created, ExpiresAt: ptr(created.Add(time.Hour))}
	for _, inv := range []guildhall.Invite{forever, limited} {
		check(t, e.s.PutInvite(e.ctx, inv), "PutInvite(%s)", inv.Code)
	}
	limited.Uses = 2
	check(t, e.s.PutInvite(e.ctx, limited), "PutInvite(replace)")
	for _, want := range []guildhall.Invite{forever, limited} {
		got, err := e.s.Invite(e.ctx, want.Code)
		check(t, err, "Invite(%s)", want.Code)
		if d := inviteDiff(got, want); len(d) > 0 {
			t.Errorf("Invite(%s): %v", want.Code, d)
		}
	}
	// Codes are case-sensitive, as Discord's are.
	_, err := e.s.Invite(e.ctx, strings.ToLower(limited.Code))
	wantErr(t, err, messaging.ErrNotFound, "Invite(%s)", strings.ToLower(limited.Code))
	_, err = e.s.Invite(e.ctx, fmt.Sprint("none", g))
	wantErr(t, err, messaging.ErrNotFound, "Invite(unknown)")
}

func testJoinGuild(t *testing.T, e *env) {
	g := e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g, Name: "joined", OwnerID: g}), "PutGuild")
	created := time.Date(2024, 2, 3, 4, 5, 6, 7e6, time.UTC)
	joinedAt := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	forever := guildhall.Invite{Code: fmt.Sprint("jf", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), CreatedAt: created}
	limited := guildhall.Invite{Code: fmt.Sprint("jL", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), MaxUses: 3, CreatedAt: created}
	for _, inv := range []guildhall.Invite{forever, limited} {
		check(t, e.s.PutInvite(e.ctx, inv), "PutInvite(%s)", inv.Code)
	}
	member := func() guildhall.Member {
		u := guildhall.User{ID: e.id(), Username: fmt.Sprint("j", e.next), Discriminator: "0"}
		check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: u}), "CreateUser")
		return guildhall.Member{GuildID: g, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: joinedAt}
	}
	usesAre := func(code string, want int) {
		t.Helper()
		inv, err := e.s.Invite(e.ctx, code)
		check(t, err, "Invite(%s)", code)
		if inv.Uses != want {
			t.Errorf("Invite(%s).Uses = %d; want %d", code, inv.Uses, want)
		}
	}

	first := member()
	inv, joined, err := e.s.JoinGuild(e.ctx, first, forever.Code)
	check(t, err, "JoinGuild")
	if !joined || inv.Uses != 1 || inv.Code != forever.Code || inv.GuildID != g {
		t.Errorf("JoinGuild = %+v, %v; want the invite with 1 use, joined", inv, joined)
	}
	got, err := e.s.Member(e.ctx, g, first.User.ID)
	check(t, err, "Member after JoinGuild")
	if d := memberDiff(got, first); len(d) > 0 {
		t.Errorf("Member after JoinGuild: %v", d)
	}
	if gs, _ := e.s.UserGuilds(e.ctx, first.User.ID); !slices.Equal(gs, []guildhall.Snowflake{g}) {
		t.Errorf("UserGuilds after JoinGuild = %v; want [%v]", gs, g)
	}
	// Joining again, by either invite, is no join: no use, no count.
	for _, code := range []string{forever.Code, limited.Code} {
		_, joined, err = e.s.JoinGuild(e.ctx, first, code)
		check(t, err, "JoinGuild(again, %s)", code)
		if joined {
			t.Errorf("JoinGuild(again, %s) joined", code)
		}
	}
	usesAre(forever.Code, 1)
	usesAre(limited.Code, 0)

	_, _, err = e.s.JoinGuild(e.ctx, member(), fmt.Sprint("none", g))
	wantErr(t, err, messaging.ErrNotFound, "JoinGuild(unknown invite)")

	// Concurrent joins never count past MaxUses.
	var others []guildhall.Member
	for range 8 {
		others = append(others, member())
	}
	errs := make([]error, len(others))
	oks := make([]bool, len(others))
	var wg sync.WaitGroup
	for i, m := range others {
		wg.Go(func() { _, oks[i], errs[i] = e.s.JoinGuild(e.ctx, m, limited.Code) })
	}
	wg.Wait()
	n := 0
	for i := range others {
		switch {
		case errs[i] == nil && oks[i]:
			n++
		case !errors.Is(errs[i], messaging.ErrInviteUsedUp):
			t.Errorf("JoinGuild(limited) = %v, %v; want joined or ErrInviteUsedUp", oks[i], errs[i])
		}
		if _, err := e.s.Member(e.ctx, g, others[i].User.ID); (err == nil) != (errs[i] == nil) {
			t.Errorf("member %d: Member err = %v after JoinGuild err = %v", i, err, errs[i])
		}
	}
	if n != 3 {
		t.Errorf("%d of %d concurrent joins of a 3-use invite joined; want 3", n, len(others))
	}
	usesAre(limited.Code, 3)
	count, err := e.s.MemberCount(e.ctx, g)
	check(t, err, "MemberCount")
	if count != 4 {
		t.Errorf("MemberCount = %d; want 4", count)
	}
}

// ---- messages

func testMessages(t *testing.T, e *env) {
	ch, other, g := e.id(), e.id(), e.id()
	author := guildhall.User{ID: e.id(), Username: "alice", Discriminator: "0", GlobalName: ptr("Alice"), Avatar: ptr("av")}
	mentioned := guildhall.User{ID: e.id(), Username: "bob", Discriminator: "0"}
	id1 := guildhall.SnowflakeAt(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)) + 5
	id2 := id1 + 1<<22 // one millisecond later
	edited := time.Date(2024, 3, 1, 12, 1, 30, 250e6, time.UTC)
	m1 := guildhall.Message{
		ID: id1, ChannelID: ch, GuildID: g, Author: author, Content: "hello <@" + mentioned.ID.String() + ">",
		Timestamp: id1.Time(), EditedTimestamp: &edited, TTS: true, MentionEveryone: true,
		Mentions: []guildhall.User{mentioned}, MentionRoles: []guildhall.Snowflake{g + 1}, Type: 19, Flags: 4,
	}
	// An upsert's Pinned is not stored: pins are PinWrites (testPins).
	pinnedUpsert := m1
	pinnedUpsert.Pinned = true
	m2 := guildhall.Message{ID: id2, ChannelID: ch, GuildID: g, Author: author, Content: "plain", Timestamp: id2.Time()}

	check(t, e.s.ApplyMessages(e.ctx, nil), "ApplyMessages(nil)")
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 1, Message: pinnedUpsert}, {Seq: 2, Message: m2}}), "ApplyMessages")
	for _, want := range []guildhall.Message{m1, m2} {
		got, err := e.s.Message(e.ctx, ch, want.ID)
		check(t, err, "Message(%v, %v)", ch, want.ID)
		if d := messageDiff(got, want); len(d) > 0 {
			t.Errorf("Message(%v, %v): %v", ch, want.ID, d)
		}
	}
	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 50})
	check(t, err, "History")
	if len(hist) != 2 {
		t.Fatalf("History(limit=50) = %v; want [%v %v]", msgIDs(hist), id2, id1)
	}
	for i, want := range []guildhall.Message{m2, m1} {
		if d := messageDiff(hist[i], want); len(d) > 0 {
			t.Errorf("History(limit=50)[%d]: %v", i, d)
		}
	}

	_, err = e.s.Message(e.ctx, ch, id1+1)
	wantErr(t, err, messaging.ErrNotFound, "Message(unknown id)")
	_, err = e.s.Message(e.ctx, other, id1)
	wantErr(t, err, messaging.ErrNotFound, "Message(%v) asked in another channel", id1)
}

func msgIDs(ms []guildhall.Message) []guildhall.Snowflake {
	out := make([]guildhall.Snowflake, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// liveIn is the model of ApplyMessages: per message (channel and id), a delete is
// final, and otherwise the upsert with the highest Seq decides. It returns the
// live messages of channel ch.
func liveIn(writes []messaging.MessageWrite, ch guildhall.Snowflake) map[guildhall.Snowflake]guildhall.Message {
	best := map[guildhall.Snowflake]messaging.MessageWrite{}
	for _, w := range writes {
		if w.Message.ChannelID != ch {
			continue
		}
		cur, ok := best[w.Message.ID]
		if !ok || (w.Delete && !cur.Delete) || (w.Delete == cur.Delete && w.Seq > cur.Seq) {
			best[w.Message.ID] = w
		}
	}
	live := map[guildhall.Snowflake]guildhall.Message{}
	for id, w := range best {
		if !w.Delete {
			live[id] = w.Message
		}
	}
	return live
}

// inChannel returns copies of writes moved to channel ch.
func inChannel(writes []messaging.MessageWrite, ch guildhall.Snowflake) []messaging.MessageWrite {
	out := slices.Clone(writes)
	for i := range out {
		out[i].Message.ChannelID = ch
	}
	return out
}

// checkState compares a channel with the model: every id's Message, and the
// whole History.
func checkState(t *testing.T, e *env, ch guildhall.Snowflake, ids []guildhall.Snowflake, live map[guildhall.Snowflake]guildhall.Message, how string) {
	t.Helper()
	var wantIDs []guildhall.Snowflake
	for _, id := range ids {
		got, err := e.s.Message(e.ctx, ch, id)
		want, ok := live[id]
		switch {
		case !ok:
			if !errors.Is(err, messaging.ErrNotFound) {
				t.Errorf("%s: Message(%v) = %q, %v; want ErrNotFound (deleted)", how, id, got.Content, err)
			}
		case err != nil:
			t.Errorf("%s: Message(%v): %v; want %q", how, id, err, want.Content)
		default:
			want.ChannelID = ch
			if d := messageDiff(got, want); len(d) > 0 {
				t.Errorf("%s: Message(%v): %v", how, id, d)
			}
		}
		if ok {
			wantIDs = append(wantIDs, id)
		}
	}
	slices.SortFunc(wantIDs, func(a, b guildhall.Snowflake) int { return cmpID(b, a) })
	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 100})
	check(t, err, "%s: History", how)
	if got := msgIDs(hist); !slices.Equal(got, wantIDs) {
		t.Errorf("%s: History(limit=100) = %v; want %v", how, got, wantIDs)
	}
	for _, m := range hist {
		if want, ok := live[m.ID]; ok && m.Content != want.Content {
			t.Errorf("%s: History(limit=100) has %v with content %q; want %q", how, m.ID, m.Content, want.Content)
		}
	}
}

func testVersioningOrder(t *testing.T, e *env) {
	t0 := time.Date(2024, 6, 9, 23, 0, 0, 0, time.UTC) // near a bucket edge: ids span two buckets
	var ids []guildhall.Snowflake
	for i := range 8 {
		ids = append(ids, guildhall.SnowflakeAt(t0.Add(time.Duration(i)*7*time.Hour)))
	}
	author := guildhall.User{ID: e.id(), Username: "alice"}
	msg := func(i int, content string, edited bool) guildhall.Message {
		m := guildhall.Message{ID: ids[i], GuildID: 1, Author: author, Content: content, Timestamp: ids[i].Time()}
		if edited {
			m.EditedTimestamp = ptr(ids[i].Time().Add(time.Minute))
		}
		return m
	}
	del := func(i int) guildhall.Message { return guildhall.Message{ID: ids[i]} }
	writes := []messaging.MessageWrite{
		{Seq: 1, Message: msg(0, "m0 v1", false)},
		{Seq: 5, Message: msg(0, "m0 v2", true)}, // edit wins
		{Seq: 2, Message: msg(1, "m1", false)},
		{Seq: 6, Delete: true, Message: del(1)}, // deleted
		{Seq: 3, Message: msg(2, "m2", false)},
		{Seq: 4, Delete: true, Message: del(2)},    // deleted...
		{Seq: 2, Message: msg(2, "m2 late", true)}, // ...and a lower-Seq upsert does not resurrect it
		{Seq: 7, Delete: true, Message: del(3)},    // delete of a message never seen
		{Seq: 3, Message: msg(3, "m3 ghost", false)},
		{Seq: 8, Message: msg(4, "m4 v1", false)},
		{Seq: 9, Message: msg(4, "m4 v2", true)},
		{Seq: 10, Message: msg(4, "m4 v3", true)},
		{Seq: 11, Message: msg(5, "m5 v1", false)},
		{Seq: 12, Delete: true, Message: del(5)},
		{Seq: 13, Message: msg(5, "m5 edit after delete", true)}, // a delete is final
		{Seq: 14, Message: msg(6, "m6", false)},
		{Seq: 15, Message: msg(7, "m7", false)},
	}
	live := liveIn(inChannel(writes, 1), 1)
	if len(live) != 4 { // guard the model itself
		t.Fatalf("model: %d live messages; want 4", len(live))
	}

	apply := func(ch guildhall.Snowflake, batches ...[]messaging.MessageWrite) {
		t.Helper()
		for _, b := range batches {
			check(t, e.s.ApplyMessages(e.ctx, inChannel(b, ch)), "ApplyMessages")
		}
	}
	reversed := slices.Clone(writes)
	slices.Reverse(reversed)

	ch := e.id()
	apply(ch, writes)
	checkState(t, e, ch, ids, live, "in order, one batch")

	ch = e.id()
	apply(ch, reversed)
	checkState(t, e, ch, ids, live, "reversed, one batch")

	ch = e.id()
	for _, w := range reversed {
		apply(ch, []messaging.MessageWrite{w})
	}
	checkState(t, e, ch, ids, live, "reversed, one write per batch")

	ch = e.id()
	apply(ch, writes, writes)
	checkState(t, e, ch, ids, live, "twice")

	ch = e.id()
	apply(ch, append(slices.Clone(writes), writes...)) // duplicates inside one batch
	checkState(t, e, ch, ids, live, "twice in one batch")

	for seed := range uint64(5) {
		r := rand.New(rand.NewPCG(seed, 42))
		shuffled := append(slices.Clone(writes), writes[r.IntN(len(writes))], writes[r.IntN(len(writes))])
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		ch = e.id()
		for len(shuffled) > 0 { // random batch sizes
			n := min(len(shuffled), 1+r.IntN(5))
			apply(ch, shuffled[:n])
			shuffled = shuffled[n:]
		}
		checkState(t, e, ch, ids, live, fmt.Sprintf("shuffled (seed %d)", seed))
	}
}

// testVersioningLateWrites applies writes in separate calls, the way a writer
// that retries and redelivers would.
func testVersioningLateWrites(t *testing.T, e *env) {
	ch := e.id()
	at := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	a, b, c := guildhall.SnowflakeAt(at), guildhall.SnowflakeAt(at.Add(time.Second)), guildhall.SnowflakeAt(at.Add(2*time.Second))
	m := func(id guildhall.Snowflake, content string) guildhall.Message {
		return guildhall.Message{ID: id, ChannelID: ch, Content: content, Timestamp: id.Time()}
	}
	apply := func(ws ...messaging.MessageWrite) {
		t.Helper()
		check(t, e.s.ApplyMessages(e.ctx, ws), "ApplyMessages")
	}
	contentIs := func(when string, id guildhall.Snowflake, want string) {
		t.Helper()
		got, err := e.s.Message(e.ctx, ch, id)
		if want == "" {
			if !errors.Is(err, messaging.ErrNotFound) {
				t.Errorf("Message(%v) %s = %q, %v; want ErrNotFound", id, when, got.Content, err)
			}
			return
		}
		if err != nil || got.Content != want {
			t.Errorf("Message(%v) %s = %q, %v; want %q", id, when, got.Content, err, want)
		}
	}

	apply(messaging.MessageWrite{Seq: 10, Message: m(a, "a")})
	apply(messaging.MessageWrite{Seq: 20, Delete: true, Message: guildhall.Message{ID: a, ChannelID: ch}})
	apply(messaging.MessageWrite{Seq: 15, Message: m(a, "a edited late")})
	apply(messaging.MessageWrite{Seq: 10, Message: m(a, "a redelivered")})
	contentIs("after delete (20) and late upserts (15, 10)", a, "")

	apply(messaging.MessageWrite{Seq: 31, Message: m(b, "b v2")})
	apply(messaging.MessageWrite{Seq: 30, Message: m(b, "b v1")})
	contentIs("after edit (31) then late create (30)", b, "b v2")
	apply(messaging.MessageWrite{Seq: 32, Message: m(b, "b v3")})
	apply(messaging.MessageWrite{Seq: 31, Message: m(b, "b v2")})
	contentIs("after edit (32) and redelivery (31)", b, "b v3")

	apply(messaging.MessageWrite{Seq: 41, Delete: true, Message: guildhall.Message{ID: c, ChannelID: ch}})
	apply(messaging.MessageWrite{Seq: 40, Message: m(c, "c")})
	contentIs("after delete (41) before its create (40)", c, "")
	// An edit that raced the delete lands after it in the stream: the delete is
	// final all the same.
	apply(messaging.MessageWrite{Seq: 42, Message: m(c, "c edited after delete")})
	contentIs("after an edit (42) later than the delete (41)", c, "")

	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 100})
	check(t, err, "History")
	if got := msgIDs(hist); fmt.Sprint(got) != fmt.Sprint([]guildhall.Snowflake{b}) {
		t.Errorf("History(limit=100) = %v; want [%v]", got, b)
	}
	for _, q := range []messaging.HistoryQuery{{Around: a, Limit: 3}, {After: a - 1, Limit: 3}, {Before: c + 1, Limit: 3}} {
		hist, err := e.s.History(e.ctx, ch, q)
		check(t, err, "History(%s)", describe(q))
		if got := msgIDs(hist); fmt.Sprint(got) != fmt.Sprint([]guildhall.Snowflake{b}) {
			t.Errorf("History(%s) = %v; want [%v] (deleted messages must not appear)", describe(q), got, b)
		}
	}
}

// ---- history

// modelHistory answers q from the ascending list of live ids, as HistoryQuery
// documents it.
func modelHistory(asc []guildhall.Snowflake, q messaging.HistoryQuery) []guildhall.Snowflake {
	newestFirst := func(s []guildhall.Snowflake) []guildhall.Snowflake {
		out := slices.Clone(s)
		slices.Reverse(out)
		return out
	}
	// below returns the ids < x, ascending; atOrAbove the ids >= x.
	split := func(x guildhall.Snowflake) (below, atOrAbove []guildhall.Snowflake) {
		i, _ := slices.BinarySearchFunc(asc, x, cmpID)
		return asc[:i], asc[i:]
	}
	newest := func(s []guildhall.Snowflake, n int) []guildhall.Snowflake { return newestFirst(s[max(0, len(s)-n):]) }
	oldest := func(s []guildhall.Snowflake, n int) []guildhall.Snowflake { return newestFirst(s[:min(n, len(s))]) }
	switch {
	case q.Before != 0:
		below, _ := split(q.Before)
		return newest(below, q.Limit)
	case q.After != 0:
		_, above := split(q.After + 1)
		return oldest(above, q.Limit)
	case q.Around != 0:
		below, above := split(q.Around)
		return append(oldest(above, q.Limit-q.Limit/2), newest(below, q.Limit/2)...)
	default:
		return newest(asc, q.Limit)
	}
}

func describe(q messaging.HistoryQuery) string {
	switch {
	case q.Before != 0:
		return fmt.Sprintf("before=%v, limit=%d", q.Before, q.Limit)
	case q.After != 0:
		return fmt.Sprintf("after=%v, limit=%d", q.After, q.Limit)
	case q.Around != 0:
		return fmt.Sprintf("around=%v, limit=%d", q.Around, q.Limit)
	}
	return fmt.Sprintf("limit=%d", q.Limit)
}

// checkHistory runs every query mode at every cursor and limit against the
// model and checks that each returned message is the one written to ch.
func checkHistory(t *testing.T, e *env, ch guildhall.Snowflake, live map[guildhall.Snowflake]guildhall.Message, cursors []guildhall.Snowflake, limits []int) {
	t.Helper()
	asc := make([]guildhall.Snowflake, 0, len(live))
	for id := range live {
		asc = append(asc, id)
	}
	slices.SortFunc(asc, cmpID)
	var queries []messaging.HistoryQuery
	for _, l := range limits {
		queries = append(queries, messaging.HistoryQuery{Limit: l})
		for _, c := range cursors {
			queries = append(queries,
				messaging.HistoryQuery{Before: c, Limit: l},
				messaging.HistoryQuery{After: c, Limit: l},
				messaging.HistoryQuery{Around: c, Limit: l})
		}
	}
	failures := 0
	for _, q := range queries {
		got, err := e.s.History(e.ctx, ch, q)
		check(t, err, "History(%s)", describe(q))
		want := modelHistory(asc, q)
		if ids := msgIDs(got); !slices.Equal(ids, want) {
			t.Errorf("History(%s) = %v; want %v", describe(q), ids, want)
			failures++
		}
		for _, m := range got {
			w, ok := live[m.ID]
			if m.ChannelID != ch || !ok || m.Content != w.Content {
				t.Errorf("History(%s) returned %v in channel %v with content %q; want only channel %v's messages", describe(q), m.ID, m.ChannelID, m.Content, ch)
				failures++
			}
		}
		if failures >= 10 {
			t.Fatalf("too many History failures, stopping (%d queries in all)", len(queries))
		}
	}
}

var historyLimits = []int{1, 3, 50, 100}

func testHistory(t *testing.T, e *env) {
	// Neighbouring channel ids on both sides, with messages over the same time
	// range and beyond, catch scans that run past their channel.
	lo, ch, hi := e.id(), e.id(), e.id()
	t0 := time.Date(2024, 1, 3, 5, 7, 11, 0, time.UTC)
	var writes []messaging.MessageWrite
	seq := uint64(0)
	add := func(c, id guildhall.Snowflake) {
		seq++
		writes = append(writes, messaging.MessageWrite{Seq: seq, Message: guildhall.Message{
			ID: id, ChannelID: c, GuildID: 1, Content: fmt.Sprintf("%v in %v", id, c), Timestamp: id.Time(),
		}})
	}
	// 240 messages of ch, three per millisecond (the increment bits differ),
	// every 11 hours: about 37 days, so 4 or 5 buckets.
	var ids []guildhall.Snowflake
	for i := range 240 {
		id := guildhall.SnowflakeAt(t0.Add(time.Duration(i/3)*11*time.Hour)) + guildhall.Snowflake(i%3)
		ids = append(ids, id)
		add(ch, id)
	}
	// Messages right on both sides of bucket edges.
	firstBucket, lastBucket := ids[0].Bucket(), ids[len(ids)-1].Bucket()
	if lastBucket-firstBucket < 3 {
		t.Fatalf("test data spans buckets %d..%d; want at least 3", firstBucket, lastBucket)
	}
	var edges []guildhall.Snowflake
	for b := firstBucket + 1; b <= lastBucket; b++ {
		edges = append(edges, guildhall.BucketStart(b), guildhall.BucketStart(b)-1)
	}
	for _, id := range edges {
		ids = append(ids, id)
		add(ch, id)
	}
	// Neighbours: same millisecond as some of ch's messages, plus older and newer.
	for i, id := range ids {
		if i%5 == 0 {
			add(lo, id+7)
			add(hi, id+7)
		}
	}
	for _, c := range []guildhall.Snowflake{lo, hi} {
		add(c, guildhall.SnowflakeAt(t0.AddDate(-1, 0, 0)))
		add(c, guildhall.SnowflakeAt(t0.AddDate(1, 0, 0)))
	}
	// Delete every 10th message of ch (a later Seq).
	var deleted []guildhall.Snowflake
	for i, id := range ids {
		if i%10 == 4 {
			deleted = append(deleted, id)
			seq++
			writes = append(writes, messaging.MessageWrite{Seq: seq, Delete: true, Message: guildhall.Message{ID: id, ChannelID: ch}})
		}
	}
	// Written in shuffled batches of 50, the way nothing guarantees order.
	shuffled := slices.Clone(writes)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for len(shuffled) > 0 {
		n := min(50, len(shuffled))
		check(t, e.s.ApplyMessages(e.ctx, shuffled[:n]), "ApplyMessages")
		shuffled = shuffled[n:]
	}

	live := liveIn(writes, ch)

	slices.SortFunc(ids, cmpID)
	var cursors []guildhall.Snowflake
	for i := 0; i < len(ids); i += 11 {
		cursors = append(cursors, ids[i], ids[i]+1)
	}
	cursors = append(cursors, deleted...)
	cursors = append(cursors, edges...)
	for b := firstBucket; b <= lastBucket+1; b++ {
		cursors = append(cursors, guildhall.BucketStart(b))
	}
	last := ids[len(ids)-1]
	cursors = append(cursors,
		1, ids[0]-1, ids[0], ids[1], last-1, last, last+1,
		guildhall.SnowflakeAt(t0.AddDate(0, 6, 0)),  // later, in an empty bucket
		guildhall.SnowflakeAt(t0.AddDate(-1, 0, 0)), // earlier: where lo and hi have messages
		guildhall.SnowflakeAt(time.Date(2070, 1, 1, 0, 0, 0, 0, time.UTC)),
	)
	checkHistory(t, e, ch, live, cursors, historyLimits)
}

func testHistorySparse(t *testing.T, e *env) {
	lo, ch, hi := e.id(), e.id(), e.id()
	early := time.Date(2023, 2, 1, 10, 0, 0, 0, time.UTC)
	late := early.AddDate(2, 0, 0)
	var writes []messaging.MessageWrite
	var oldIDs, newIDs []guildhall.Snowflake
	for i := range 30 {
		a := guildhall.SnowflakeAt(early.Add(time.Duration(i) * time.Minute))
		b := guildhall.SnowflakeAt(late.Add(time.Duration(i) * time.Minute))
		oldIDs, newIDs = append(oldIDs, a), append(newIDs, b)
		for _, id := range []guildhall.Snowflake{a, b} {
			writes = append(writes, messaging.MessageWrite{Seq: uint64(len(writes) + 1), Message: guildhall.Message{
				ID: id, ChannelID: ch, Content: fmt.Sprint("sparse ", id), Timestamp: id.Time(),
			}})
		}
	}
	if newIDs[0].Bucket()-oldIDs[len(oldIDs)-1].Bucket() < 70 {
		t.Fatalf("sparse data: buckets %d and %d are not far apart", oldIDs[0].Bucket(), newIDs[0].Bucket())
	}
	// The neighbours fill the gap that ch leaves empty.
	for d := 0; d < 730; d += 9 {
		id := guildhall.SnowflakeAt(early.AddDate(0, 0, d).Add(12 * time.Hour))
		for _, c := range []guildhall.Snowflake{lo, hi} {
			writes = append(writes, messaging.MessageWrite{Seq: uint64(len(writes) + 1), Message: guildhall.Message{
				ID: id, ChannelID: c, Content: "neighbour", Timestamp: id.Time(),
			}})
		}
	}
	check(t, e.s.ApplyMessages(e.ctx, writes), "ApplyMessages")

	live := liveIn(writes, ch)
	gap := guildhall.SnowflakeAt(early.AddDate(1, 0, 0))
	cursors := []guildhall.Snowflake{
		1, oldIDs[0] - 1, oldIDs[0], oldIDs[15], oldIDs[29], oldIDs[29] + 1,
		gap, newIDs[0] - 1, newIDs[0], newIDs[1], newIDs[15], newIDs[29], newIDs[29] + 1,
		guildhall.SnowflakeAt(late.AddDate(1, 0, 0)),
	}
	checkHistory(t, e, ch, live, cursors, historyLimits)
}

func testHistoryEmpty(t *testing.T, e *env) {
	ch, other := e.id(), e.id()
	id := guildhall.SnowflakeAt(time.Date(2024, 4, 4, 0, 0, 0, 0, time.UTC))
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 1, Message: guildhall.Message{ID: id, ChannelID: other, Content: "x", Timestamp: id.Time()}}}), "ApplyMessages")
	for _, q := range []messaging.HistoryQuery{{Limit: 50}, {Before: id + 1, Limit: 50}, {After: 1, Limit: 50}, {Around: id, Limit: 50}} {
		got, err := e.s.History(e.ctx, ch, q)
		check(t, err, "History(%s)", describe(q))
		if len(got) != 0 {
			t.Errorf("History(%s) of an empty channel = %v; want none", describe(q), msgIDs(got))
		}
	}
}
