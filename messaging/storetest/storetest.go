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
	"strings"
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
