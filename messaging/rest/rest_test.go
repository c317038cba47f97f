package rest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	dto "github.com/prometheus/client_model/go"
)

func TestRegisterLoginAndTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})

	var reg struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	e.api.Must(t, http.StatusCreated, "POST", "/auth/register", "", map[string]string{"username": "alice", "password": "correct horse battery"}, &reg)
	if reg.Token == "" || reg.UserID == "" {
		t.Fatalf("register = %+v; want token and user_id", reg)
	}

	// The username is taken (usernames are lower case; see TestAccountRules).
	st, raw := e.api.Do(t, "POST", "/auth/register", "", map[string]string{"username": "alice", "password": "correct horse battery"}, nil)
	d := wantError(t, st, raw, 400, 50035)
	if !strings.Contains(string(raw), "USERNAME_ALREADY_TAKEN") {
		t.Errorf("taken username body = %s; want USERNAME_ALREADY_TAKEN", raw)
	}
	_ = d

	for _, c := range []struct {
		name, username, password, field string
	}{
		{"short username", "a", "correct horse battery", "username"},
		{"long username", strings.Repeat("u", 33), "correct horse battery", "username"},
		{"control character", "bad\x01name", "correct horse battery", "username"},
		{"short password", "bob", "1234567", "password"},
		{"long password", "bob", strings.Repeat("p", 257), "password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, raw := e.api.Do(t, "POST", "/auth/register", "", map[string]string{"username": c.username, "password": c.password}, nil)
			d := wantError(t, st, raw, 400, 50035)
			if _, ok := d.Errors[c.field]; !ok {
				t.Errorf("errors = %v; want field %q", d.Errors, c.field)
			}
		})
	}
	// None of the bad registrations created an account.
	st, raw = e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "bob", "password": "1234567"}, nil)
	wantError(t, st, raw, 400, 50035)

	var login struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	e.api.Must(t, http.StatusOK, "POST", "/auth/login", "", map[string]string{"username": "alice", "password": "correct horse battery"}, &login)
	if login.UserID != reg.UserID || login.Token == "" || login.Token == reg.Token {
		t.Fatalf("login = %+v; want user %s with a new token", login, reg.UserID)
	}

	// Wrong password and unknown user get the same answer.
	st1, raw1 := e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "alice", "password": "wrong password!"}, nil)
	st2, raw2 := e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "nobody", "password": "correct horse battery"}, nil)
	wantError(t, st1, raw1, 400, 50035)
	if st1 != st2 || string(raw1) != string(raw2) {
		t.Errorf("wrong password = %d %s, unknown user = %d %s; want the same", st1, raw1, st2, raw2)
	}

	// Both tokens work, bare and with "Bot "; anything else is 401.
	for _, tok := range []string{reg.Token, login.Token, "Bot " + login.Token} {
		var me struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		}
		e.api.Must(t, http.StatusOK, "GET", "/users/@me", tok, nil, &me)
		if me.ID != reg.UserID || me.Username != "alice" {
			t.Errorf("GET /users/@me = %+v; want alice %s", me, reg.UserID)
		}
	}
	for _, tok := range []string{"", "garbage", reg.Token + "x", "Bot ", strings.Repeat("x", 5000)} {
		st, raw := e.api.Do(t, "GET", "/users/@me", tok, nil, nil)
		if st != 401 || string(raw) != `{"code":0,"message":"401: Unauthorized"}` {
			t.Errorf("GET /users/@me with %.20q = %d %s; want 401 Discord body", tok, st, raw)
		}
	}
}

func TestGatewayEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	u := e.register("gw")
	var gw struct{ URL string }
	// Public, as on Discord: no token needed, and a bad one is ignored.
	e.api.Must(t, http.StatusOK, "GET", "/gateway", "", nil, &gw)
	if gw.URL != "ws://gateway.test" {
		t.Errorf("GET /gateway url = %q", gw.URL)
	}
	e.api.Must(t, http.StatusOK, "GET", "/gateway", u.token, nil, nil)
	st, raw := e.api.Do(t, "GET", "/gateway/bot", "", nil, nil)
	wantError(t, st, raw, 401, 0)
	var bot struct {
		URL               string `json:"url"`
		Shards            int    `json:"shards"`
		SessionStartLimit struct {
			Total, Remaining, ResetAfter, MaxConcurrency int
		} `json:"session_start_limit"`
	}
	raw = e.api.Must(t, http.StatusOK, "GET", "/gateway/bot", u.token, nil, &bot)
	if bot.URL != gw.URL || bot.Shards != 1 || !strings.Contains(string(raw), `"max_concurrency":1`) || !strings.Contains(string(raw), `"total":1000`) {
		t.Errorf("GET /gateway/bot = %s", raw)
	}
	// v9 is served the same way.
	v9 := testenv.NewREST(e.srv.URL + "/api/v9")
	v9.Must(t, http.StatusOK, "GET", "/gateway", u.token, nil, nil)
	// Unknown paths and methods answer with Discord's body.
	st, raw = e.api.Do(t, "GET", "/nope", u.token, nil, nil)
	wantError(t, st, raw, 404, 0)
	st, raw = e.api.Do(t, "PUT", "/gateway", u.token, nil, nil)
	wantError(t, st, raw, 405, 0)
	e.api.Do(t, "GET", "/gateway", "wrong", nil, nil)

	// Requests are counted by route, method and status.
	for _, c := range []struct {
		route, method, status string
		want                  float64
	}{
		{"/gateway", "GET", "200", 4},
		{"/gateway/bot", "GET", "401", 1},
		{"/gateway", "PUT", "405", 1},
		{"/gateway/bot", "GET", "200", 1},
		{"/auth/register", "POST", "201", 1},
		{"unknown", "GET", "404", 1},
	} {
		var m dto.Metric
		if err := e.rest.Requests.WithLabelValues(c.route, c.method, c.status).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != c.want {
			t.Errorf("rest_requests_total{route=%q,method=%q,status=%q} = %v; want %v", c.route, c.method, c.status, got, c.want)
		}
	}
}

func TestGuildChannelsInvitesMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	owner, joiner, outsider := e.register("owner"), e.register("joiner"), e.register("outsider")

	var g guildJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds", owner.token, map[string]string{"name": "Guild Hall"}, &g)
	if g.Name != "Guild Hall" || g.OwnerID != owner.id || len(g.Roles) != 1 || g.Roles[0].ID != g.ID || g.Roles[0].Name != "@everyone" {
		t.Fatalf("POST /guilds = %+v; want the guild with its @everyone role", g)
	}
	if want := strconv.FormatUint(uint64(guildhall.DefaultEveryonePermissions), 10); g.Roles[0].Permissions != want {
		t.Errorf("@everyone permissions = %s; want %s", g.Roles[0].Permissions, want)
	}
	// The owner's sessions were told with a GUILD_CREATE user event.
	wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, owner.id)), guildhall.EventGuildCreate)

	var chs []channelJSON
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", owner.token, nil, &chs)
	if len(chs) != 1 || chs[0].Name != "general" || chs[0].GuildID != g.ID || chs[0].Type != 0 {
		t.Fatalf("channels of a new guild = %+v; want general", chs)
	}
	general := chs[0].ID

	var ch channelJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", owner.token, map[string]any{"name": "random"}, &ch)
	if ch.Name != "random" || ch.GuildID != g.ID {
		t.Fatalf("POST channel = %+v", ch)
	}
	wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, g.ID)), guildhall.EventChannelCreate)

	// Invite, accept: a member; accepting again changes nothing.
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+general+"/invites", owner.token, map[string]any{"max_uses": 5}, &inv)
	if inv.Code == "" || inv.Guild.ID != g.ID || inv.Channel.ID != general || inv.Inviter.ID != owner.id {
		t.Fatalf("invite = %+v", inv)
	}
	// Not yet a member: no access.
	st, raw := e.api.Do(t, "GET", "/guilds/"+g.ID, joiner.token, nil, nil)
	wantError(t, st, raw, 403, 50001)

	var acc inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, joiner.token, nil, &acc)
	if acc.Guild.ID != g.ID || acc.Uses != 1 || acc.NewMember == nil || !*acc.NewMember {
		t.Fatalf("accept = %+v; want guild %s, 1 use, new member", acc, g.ID)
	}
	wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, g.ID)), guildhall.EventGuildMemberAdd)
	gc := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, joiner.id)), guildhall.EventGuildCreate)
	var create guildhall.GuildCreate
	if err := json.Unmarshal(gc.Data, &create); err != nil || create.ID.String() != g.ID || len(create.Channels) != 2 || create.MemberCount != 2 {
		t.Errorf("joiner's GUILD_CREATE = %s (%v); want the guild with 2 channels and 2 members", gc.Data, err)
	}
	e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, joiner.token, nil, &acc)
	if acc.Uses != 1 || acc.NewMember == nil || *acc.NewMember {
		t.Fatalf("second accept = %+v; want still 1 use, not a new member", acc)
	}

	var members []memberJSON
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/members", joiner.token, nil, &members)
	if len(members) != 1 {
		t.Fatalf("members default limit = %d; want 1", len(members))
	}
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/members?limit=1000", joiner.token, nil, &members)
	if len(members) != 2 || members[0].GuildID != "" {
		t.Fatalf("members = %+v; want owner and joiner without guild_id", members)
	}
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/members?limit=10&after="+members[0].User.ID, joiner.token, nil, &members)
	if len(members) != 1 {
		t.Fatalf("members after the first = %d; want 1", len(members))
	}

	var withCounts guildJSON
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"?with_counts=true", joiner.token, nil, &withCounts)
	if withCounts.ApproximateMemberCount == nil || *withCounts.ApproximateMemberCount != 2 || withCounts.ApproximatePresenceCount != nil {
		t.Errorf("with_counts = %+v; want 2 members and no presence count", withCounts)
	}

	var mine []struct {
		ID          string `json:"id"`
		Owner       bool   `json:"owner"`
		Permissions string `json:"permissions"`
	}
	e.api.Must(t, http.StatusOK, "GET", "/users/@me/guilds", joiner.token, nil, &mine)
	if len(mine) != 1 || mine[0].ID != g.ID || mine[0].Owner || mine[0].Permissions != strconv.FormatUint(uint64(guildhall.DefaultEveryonePermissions), 10) {
		t.Errorf("joiner's guilds = %+v", mine)
	}
	e.api.Must(t, http.StatusOK, "GET", "/users/@me/guilds", owner.token, nil, &mine)
	if len(mine) != 1 || !mine[0].Owner || mine[0].Permissions != strconv.FormatUint(uint64(guildhall.PermAll), 10) {
		t.Errorf("owner's guilds = %+v", mine)
	}

	// Members may not create channels; the owner may.
	st, raw = e.api.Do(t, "POST", "/guilds/"+g.ID+"/channels", joiner.token, map[string]any{"name": "mine"}, nil)
	wantError(t, st, raw, 403, 50013)

	// A private channel: @everyone may not view it. The joiner cannot see it.
	var private channelJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", owner.token, map[string]any{
		"name": "staff", "permission_overwrites": []map[string]any{{"id": g.ID, "type": 0, "allow": "0", "deny": strconv.Itoa(int(guildhall.PermViewChannel))}},
	}, &private)
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", joiner.token, nil, &chs)
	if len(chs) != 2 {
		t.Errorf("joiner sees %d channels; want 2 (not the private one)", len(chs))
	}
	for _, path := range []string{"/channels/" + private.ID, "/channels/" + private.ID + "/messages"} {
		st, raw = e.api.Do(t, "GET", path, joiner.token, nil, nil)
		wantError(t, st, raw, 403, 50001)
	}
	st, raw = e.api.Do(t, "POST", "/channels/"+private.ID+"/messages", joiner.token, map[string]string{"content": "hi"}, nil)
	wantError(t, st, raw, 403, 50001)
	e.api.Must(t, http.StatusOK, "GET", "/channels/"+private.ID, owner.token, nil, nil)

	// The outsider sees nothing of it: 403 Missing Access on what exists, 404 on
	// what does not.
	for _, path := range []string{"/guilds/" + g.ID, "/guilds/" + g.ID + "/channels", "/guilds/" + g.ID + "/members", "/channels/" + general, "/channels/" + general + "/messages"} {
		st, raw = e.api.Do(t, "GET", path, outsider.token, nil, nil)
		wantError(t, st, raw, 403, 50001)
	}
	st, raw = e.api.Do(t, "POST", "/channels/"+general+"/messages", outsider.token, map[string]string{"content": "hi"}, nil)
	wantError(t, st, raw, 403, 50001)
	st, raw = e.api.Do(t, "POST", "/channels/"+general+"/invites", outsider.token, map[string]any{}, nil)
	wantError(t, st, raw, 403, 50001)
	e.api.Must(t, http.StatusOK, "GET", "/users/@me/guilds", outsider.token, nil, &mine)
	if len(mine) != 0 {
		t.Errorf("outsider's guilds = %+v; want none", mine)
	}

	// Invites run out.
	var once inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+general+"/invites", owner.token, map[string]any{"max_uses": 1}, &once)
	e.api.Must(t, http.StatusOK, "POST", "/invites/"+once.Code, outsider.token, nil, nil)
	late := e.register("late")
	st, raw = e.api.Do(t, "POST", "/invites/"+once.Code, late.token, nil, nil)
	wantError(t, st, raw, 404, 10006)
}

// wantLastEvent checks the type of the latest stream message on subject.
func wantLastEvent(t *testing.T, e *env, subject, typ string) guildhall.Event {
	t.Helper()
	s, err := e.nats.JS.Stream(context.Background(), ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("last event on %s: %v", subject, err)
	}
	ev := ghnats.DecodeEvent(m.Header, m.Data)
	if ev.Type != typ {
		t.Fatalf("last event on %s = %s; want %s", subject, ev.Type, typ)
	}
	return ev
}

func mustID(t testing.TB, s string) uint64 {
	t.Helper()
	id, err := guildhall.ParseSnowflake(s)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(id)
}
