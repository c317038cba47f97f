package rest_test

// The authorization matrix: every REST route × every kind of caller, with the
// status and Discord error code each must get, and for every refusal a check
// that nothing changed (the EVENTS stream and the store's state of the guild,
// the callers' accounts and tokens are compared before and after).
//
// Adding a route: TestAuthorizationMatrix fails until the route is covered,
// either by a row in matrixRows or by a case of the community's matrix
// (communityMatrixCases in community_test.go, which names its route and runs
// the role hierarchy's callers); a row or case whose route is gone fails too.
// A row names the route exactly as the route table does, a body if the route
// reads one, and what each caller gets, usually with one of the helpers:
//
//	everyone(200)          a public route that reads no token: every caller
//	anyUser(200)           every caller with a valid token; revoked 401
//	members(200)           the guild's members; outsider, kicked and banned
//	                       403 50001
//	needs(201, 50013)      owner and granted; denied 403 with that code;
//	                       outsider, kicked and banned 403 50001
//
// Callers (see newMatrixFixture): owner (owns the guild and a bot), granted (a
// member whose role holds MANAGE_CHANNELS and MANAGE_MESSAGES), denied (a
// member whose overwrite on the channel denies SEND_MESSAGES,
// READ_MESSAGE_HISTORY, CREATE_INSTANT_INVITE and ADD_REACTIONS), outsider (no
// member), kicked (a member the owner kicked), banned (a member the owner
// banned), revoked (a member whose token was logged out). Path values
// {guild_id}, {channel_id}, {code} and {bot_id} are the fixture's; a row whose
// route needs a fresh object per caller (a message to delete) sets it up in
// setup.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/rest"
)

type caller int

const (
	revoked caller = iota // refusals first: allowed calls may change what later ones see
	outsider
	kicked
	banned
	denied
	granted
	owner
)

var callers = []caller{revoked, outsider, kicked, banned, denied, granted, owner}

func (c caller) String() string {
	return [...]string{"revoked", "outsider", "kicked", "banned", "denied", "granted", "owner"}[c]
}

type want struct {
	status, code int
	empty        bool // a 200 whose body must be an empty list
}

type matrixRow struct {
	method, path string
	body         any
	public       bool
	// setup returns extra path values for one caller's request (a fresh
	// message, say); nil needs none.
	setup func(t *testing.T, f *matrixFixture, c caller) map[string]string
	// bodyFor, when set, is the body for one caller (one naming the fixture's
	// users); it wins over body.
	bodyFor func(f *matrixFixture, c caller) any
	want    map[caller]want
}

func anyUser(status int) map[caller]want {
	w := map[caller]want{}
	for _, c := range callers {
		w[c] = want{status, 0, false}
	}
	w[revoked] = want{401, 0, false}
	return w
}

// everyone: a public route that reads no token answers every caller alike.
func everyone(status int) map[caller]want {
	w := anyUser(status)
	w[revoked] = want{status, 0, false}
	return w
}

func members(status int) map[caller]want {
	w := anyUser(status)
	for _, c := range []caller{outsider, kicked, banned} {
		w[c] = want{403, 50001, false}
	}
	return w
}

func needs(status, deniedCode int) map[caller]want {
	w := members(status)
	w[denied] = want{403, deniedCode, false}
	return w
}

func with(w map[caller]want, c caller, x want) map[caller]want {
	w[c] = x
	return w
}

// ownerMessage posts a message of the owner's for each caller to act on.
func ownerMessage(t *testing.T, f *matrixFixture, _ caller) map[string]string {
	return map[string]string{"message_id": f.e.post(f.tokens[owner], f.channel, "the owner's").ID}
}

// reactionTarget posts a message of the owner's, reacted to by the owner with
// 🔥 if reacted, for each caller; user is the {user_id} ("" for the owner's id).
func reactionTarget(reacted bool, user string) func(t *testing.T, f *matrixFixture, c caller) map[string]string {
	return func(t *testing.T, f *matrixFixture, _ caller) map[string]string {
		id := f.e.post(f.tokens[owner], f.channel, "react to the owner's").ID
		emoji := url.PathEscape("🔥")
		if reacted {
			f.e.api.Must(t, http.StatusNoContent, "PUT", "/channels/"+f.channel+"/messages/"+id+"/reactions/"+emoji+"/@me", f.tokens[owner], nil, nil)
		}
		if user == "" {
			user = f.ids[owner].String()
		}
		return map[string]string{"message_id": id, "emoji": emoji, "user_id": user}
	}
}

func dmWithOwner(f *matrixFixture, c caller) any {
	to := f.ids[owner]
	if c == owner {
		to = f.ids[granted]
	}
	return map[string]string{"recipient_id": to.String()}
}

var password = "correct horse battery"

var matrixRows = []matrixRow{
	{method: "POST", path: "/auth/register", public: true},
	{method: "POST", path: "/auth/login", public: true},
	// Public on Discord: a token, even a revoked one, is not looked at.
	{method: "GET", path: "/gateway", public: true, want: everyone(200)},
	{method: "GET", path: "/gateway/bot", want: anyUser(200)},
	{method: "GET", path: "/users/@me", want: anyUser(200)},
	{method: "GET", path: "/users/@me/guilds", want: anyUser(200)},
	{method: "POST", path: "/guilds", body: map[string]string{"name": "another"}, want: anyUser(201)},
	{method: "GET", path: "/guilds/{guild_id}", want: members(200)},
	{method: "GET", path: "/guilds/{guild_id}/channels", want: members(200)},
	{method: "POST", path: "/guilds/{guild_id}/channels", body: map[string]string{"name": "new"}, want: needs(201, 50013)},
	{method: "GET", path: "/guilds/{guild_id}/members", want: members(200)},
	{method: "GET", path: "/channels/{channel_id}", want: members(200)},
	{method: "POST", path: "/channels/{channel_id}/invites", body: map[string]any{}, want: needs(200, 50013)},
	// Anyone with a token may accept an invite (that is what invites are
	// for), a kicked member too; a banned one may not.
	{method: "POST", path: "/invites/{code}", want: with(anyUser(200), banned, want{403, 40007, false})},
	// And look at it first.
	{method: "GET", path: "/invites/{code}", want: anyUser(200)},
	// Leaving: only a member has a guild to leave, and the owner cannot.
	{method: "DELETE", path: "/users/@me/guilds/{guild_id}", want: with(with(with(with(anyUser(204),
		outsider, want{404, 10004, false}), kicked, want{404, 10004, false}), banned, want{404, 10004, false}), owner, want{400, 50055, false})},
	{method: "GET", path: "/channels/{channel_id}/messages", want: with(members(200), denied, want{200, 0, true})},
	{method: "POST", path: "/channels/{channel_id}/messages", body: map[string]string{"content": "hi"}, want: needs(200, 50013)},
	{method: "GET", path: "/channels/{channel_id}/messages/{message_id}", setup: ownerMessage, want: needs(200, 50013)},
	{method: "PATCH", path: "/channels/{channel_id}/messages/{message_id}", setup: ownerMessage, body: map[string]string{"content": "edited"},
		want: with(with(members(200), denied, want{403, 50005, false}), granted, want{403, 50005, false})},
	{method: "DELETE", path: "/channels/{channel_id}/messages/{message_id}", setup: ownerMessage, want: needs(204, 50013)},
	{method: "POST", path: "/channels/{channel_id}/typing", want: needs(204, 50013)},
	{method: "POST", path: "/auth/logout", want: anyUser(204)},
	{method: "POST", path: "/auth/token/reset", body: map[string]string{"password": password}, want: anyUser(200)},
	{method: "PATCH", path: "/users/@me", body: map[string]string{"password": password, "new_password": "another passphrase"}, want: anyUser(200)},
	{method: "GET", path: "/users/@me/bots", want: anyUser(200)},
	// Conversations: reactions (a fresh message of the owner's, with the owner's
	// 🔥 where a reaction must be there), acks and DMs.
	{method: "PUT", path: "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}", setup: reactionTarget(false, "@me"), want: needs(204, 50013)},
	{method: "DELETE", path: "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}", setup: reactionTarget(true, ""), want: needs(204, 50013)},
	{method: "GET", path: "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", setup: reactionTarget(true, ""), want: needs(200, 50013)},
	{method: "DELETE", path: "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", setup: reactionTarget(true, ""), want: needs(204, 50013)},
	{method: "DELETE", path: "/channels/{channel_id}/messages/{message_id}/reactions", setup: reactionTarget(true, ""), want: needs(204, 50013)},
	{method: "POST", path: "/channels/{channel_id}/messages/{message_id}/ack", setup: ownerMessage, body: map[string]any{}, want: members(200)},
	// A DM with the owner (the owner's with the granted member): only with
	// someone who shares a guild, which the kicked and the banned no longer do.
	{method: "POST", path: "/users/@me/channels", bodyFor: dmWithOwner, want: with(with(with(anyUser(200),
		outsider, want{403, 50007, false}), kicked, want{403, 50007, false}), banned, want{403, 50007, false})},
	{method: "GET", path: "/users/@me/channels", want: anyUser(200)},
	{method: "DELETE", path: "/users/@me/bots/{bot_id}/tokens", want: botOwnerOnly(204)},
	{method: "POST", path: "/users/@me/bots/{bot_id}/token/reset", want: botOwnerOnly(200)},
}

func botOwnerOnly(status int) map[caller]want {
	w := anyUser(404)
	for c := range w {
		if c != revoked {
			w[c] = want{404, 10013, false}
		}
	}
	w[owner] = want{status, 0, false}
	return w
}

type matrixFixture struct {
	e              *env
	tokens, names  map[caller]string
	ids            map[caller]guildhall.Snowflake
	guild, channel string
	invite, bot    string
}

func newMatrixFixture(t *testing.T, e *env) *matrixFixture {
	t.Helper()
	ctx := context.Background()
	f := &matrixFixture{e: e, tokens: map[caller]string{}, names: map[caller]string{}, ids: map[caller]guildhall.Snowflake{}}
	for _, c := range callers {
		u := e.register("m" + c.String())
		f.tokens[c], f.ids[c] = u.token, sf(t, u.id)
		var me struct {
			Username string `json:"username"`
		}
		e.api.Must(t, http.StatusOK, "GET", "/users/@me", u.token, nil, &me)
		f.names[c] = me.Username
	}
	var g guildJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds", f.tokens[owner], map[string]string{"name": "Matrix"}, &g)
	f.guild = g.ID
	var chs []channelJSON
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", f.tokens[owner], nil, &chs)
	f.channel = chs[0].ID
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/invites", f.tokens[owner], map[string]any{"max_age": 0}, &inv)
	f.invite = inv.Code
	for _, c := range []caller{granted, denied, revoked, kicked, banned} {
		e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.tokens[c], nil, nil)
	}
	e.api.Must(t, http.StatusNoContent, "DELETE", "/guilds/"+g.ID+"/members/"+f.ids[kicked].String(), f.tokens[owner], nil, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", "/guilds/"+g.ID+"/bans/"+f.ids[banned].String(), f.tokens[owner], map[string]any{}, nil)
	guild := sf(t, f.guild)
	mod := guildhall.Role{ID: guild + 1, Name: "mod", Position: 1,
		Permissions: guildhall.DefaultEveryonePermissions | guildhall.PermManageChannels | guildhall.PermManageMessages}
	must(t, e.store.PutRole(ctx, guild, mod))
	m, err := e.store.Member(ctx, guild, f.ids[granted])
	must(t, err)
	m.Roles = []guildhall.Snowflake{mod.ID}
	must(t, e.store.PutMember(ctx, m))
	ch, err := e.store.Channel(ctx, sf(t, f.channel))
	must(t, err)
	ch.PermissionOverwrites = append(ch.PermissionOverwrites, guildhall.PermissionOverwrite{ID: f.ids[denied], Type: guildhall.OverwriteMember,
		Deny: guildhall.PermSendMessages | guildhall.PermReadMessageHistory | guildhall.PermCreateInstantInvite | guildhall.PermAddReactions})
	must(t, e.store.PutChannel(ctx, ch))
	e.api.Must(t, http.StatusNoContent, "POST", "/auth/logout", f.tokens[revoked], nil, nil)
	bot, err := e.svc.CreateOwnedBot(ctx, "bot."+f.names[owner], f.names[owner])
	must(t, err)
	f.bot = bot.UserID.String()
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything a refused request must leave as it was, one entry
// per part.
func (f *matrixFixture) snapshot(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	s, guild, channel := f.e.store, sf(t, f.guild), sf(t, f.channel)
	// Wait until the writer has stored every message published so far (the
	// read barrier of a history read): the store must be still, not racing.
	must(t, f.e.barrier.Wait(ctx, guild))
	var parts []string
	add := func(v any, err error) {
		t.Helper()
		must(t, err)
		b, err := json.Marshal(v)
		must(t, err)
		parts = append(parts, string(b))
	}
	add(f.e.streamMsgs(), nil)
	add(s.Guild(ctx, guild))
	add(s.Channels(ctx, guild))
	add(s.Roles(ctx, guild))
	add(s.Members(ctx, guild, 0, 1000))
	add(s.Bans(ctx, guild, messaging.BanQuery{Limit: 1000}))
	invs, err := s.GuildInvites(ctx, guild)
	slices.SortFunc(invs, func(a, b guildhall.Invite) int { return strings.Compare(a.Code, b.Code) })
	add(invs, err)
	add(s.History(ctx, channel, messaging.HistoryQuery{Limit: 100}))
	add(s.Bots(ctx, f.ids[owner]))
	for _, c := range callers {
		add(s.UserGuilds(ctx, f.ids[c]))
		rec, err := s.UserByName(ctx, f.names[c])
		add(rec.PasswordHash, err)
		_, err = s.UserByToken(ctx, messaging.HashToken(f.tokens[c]))
		add(c.String()+" token valid: "+fmt.Sprint(err == nil), nil)
	}
	return parts
}

func (f *matrixFixture) path(p string, extra map[string]string) string {
	vals := map[string]string{"guild_id": f.guild, "channel_id": f.channel, "code": f.invite, "bot_id": f.bot}
	for k, v := range extra {
		vals[k] = v
	}
	for k, v := range vals {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	return p
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})

	// Every route has a row here or a case in the community's matrix, and
	// every row and case a route.
	table := rest.RouteTable(rest.NewHandler(nil, rest.Config{GatewayURL: "ws://x"}))
	rows := map[string]matrixRow{}
	for _, r := range matrixRows {
		rows[r.method+" "+r.path] = r
	}
	cases := map[string]bool{}
	for _, cs := range communityMatrixCases() {
		cases[cs.route] = true
	}
	for _, rt := range table {
		k := rt.Method + " " + rt.Path
		r, inRows := rows[k]
		switch {
		case inRows && r.public != rt.Public:
			t.Errorf("route %s: public %v in the table, %v in its row", k, rt.Public, r.public)
		case !inRows && cases[k] && rt.Public:
			t.Errorf("route %s is public: the community's matrix does not run public routes; give it a row in matrixRows", k)
		case !inRows && !cases[k]:
			t.Errorf("route %s has no row in matrixRows nor a case in communityMatrixCases (see the top of authz_matrix_test.go)", k)
		}
		delete(rows, k)
		delete(cases, k)
	}
	for k := range rows {
		t.Errorf("row %s names no route", k)
	}
	for k := range cases {
		t.Errorf("community matrix case route %q names no route", k)
	}

	for _, r := range matrixRows {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			if r.public && r.want == nil {
				// No token needed: a bad body is a 400, not a 401.
				st, raw := e.api.Do(t, r.method, r.path, "", []byte("{"), nil)
				wantError(t, st, raw, 400, 50109)
				return
			}
			f := newMatrixFixture(t, e)
			for _, c := range callers {
				w, ok := r.want[c]
				if !ok {
					t.Fatalf("no expectation for %s", c)
				}
				var extra map[string]string
				if r.setup != nil {
					extra = r.setup(t, f, c)
				}
				body := r.body
				if r.bodyFor != nil {
					body = r.bodyFor(f, c)
				}
				before := f.snapshot(t)
				st, raw := e.api.Do(t, r.method, f.path(r.path, extra), f.tokens[c], body, nil)
				if st != w.status {
					t.Errorf("%s: %d %s; want %d", c, st, raw, w.status)
					continue
				}
				if st >= 400 {
					var d discordError
					if err := json.Unmarshal(raw, &d); err != nil || d.Code != w.code || d.Message == "" {
						t.Errorf("%s: %d %s; want code %d", c, st, raw, w.code)
					}
					after := f.snapshot(t)
					for i := range before {
						if before[i] != after[i] {
							t.Errorf("%s: refused with %d, but the state changed:\nbefore %s\nafter  %s", c, st, before[i], after[i])
						}
					}
				}
				if w.empty && strings.TrimSpace(string(raw)) != "[]" {
					t.Errorf("%s: body %s; want []", c, raw)
				}
			}
		})
	}
}

// routeMatcher answers which route of the table serves a request ("METHOD
// /path" as the table names it, "" for none), matching as the handler does.
func routeMatcher(t testing.TB) func(method, target string) string {
	h := rest.NewHandler(nil, rest.Config{GatewayURL: "ws://x"})
	return func(method, target string) string {
		rt, err := rest.MatchRoute(h, method, target)
		if err != nil {
			t.Fatalf("request %s %s: %v", method, target, err)
		}
		return rt
	}
}
