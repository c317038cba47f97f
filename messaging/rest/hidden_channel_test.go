package rest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/rest"
)

// TestHiddenChannel: a member who sees the guild but not one of its channels
// (an overwrite denies VIEW_CHANNEL), and who holds every other permission
// there, gets 403 Missing Access (50001) from every route of the route table
// under /channels/{channel_id}, and the refusal changes nothing. The channel
// is also left out of what the member reads elsewhere: the guild's channel
// list, and READY's read states even after having acked it while it was
// visible. (The authorization matrices' "denied" member may view the channel.)
func TestHiddenChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	hidden := f.member
	// Everything but ADMINISTRATOR (which overrides overwrites).
	var boss struct{ ID string }
	e.api.Must(t, http.StatusOK, "POST", "/guilds/"+f.guild+"/roles", f.owner.token, map[string]any{"name": "boss",
		"permissions": guildhall.PermAll &^ guildhall.PermAdministrator}, &boss)
	e.api.Must(t, http.StatusNoContent, "PUT", "/guilds/"+f.guild+"/members/"+hidden.id+"/roles/"+boss.ID, f.owner.token, nil, nil)

	// While the channel is visible: an ack, then a mention after it.
	seen := e.post(f.owner.token, f.channel, "seen")
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/messages/"+seen.ID+"/ack", hidden.token, map[string]any{}, nil)
	e.post(f.owner.token, f.channel, "hey <@"+hidden.id+">")
	e.api.Must(t, http.StatusNoContent, "PUT", "/channels/"+f.channel+"/permissions/"+hidden.id, f.owner.token, map[string]any{
		"type": guildhall.OverwriteMember, "deny": guildhall.PermViewChannel}, nil)

	msg := e.post(f.owner.token, f.channel, "target")
	other := e.post(f.owner.token, f.channel, "another")
	fire := url.PathEscape("🔥")
	e.api.Must(t, http.StatusNoContent, "PUT", "/channels/"+f.channel+"/messages/"+msg.ID+"/reactions/"+fire+"/@me", f.owner.token, nil, nil)
	values := map[string]string{
		"channel_id": f.channel, "message_id": msg.ID, "emoji": fire, "user_id": f.owner.id, "overwrite_id": boss.ID,
	}
	// A body each route would accept from someone allowed, so that a refusal
	// is about access and not about the body.
	bodies := map[string]any{
		"PATCH /channels/{channel_id}":                                                 map[string]any{"name": "renamed"},
		"PUT /channels/{channel_id}/permissions/{overwrite_id}":                        map[string]any{"type": guildhall.OverwriteRole, "allow": "0", "deny": "0"},
		"POST /channels/{channel_id}/messages":                                         map[string]string{"content": "let me in"},
		"PATCH /channels/{channel_id}/messages/{message_id}":                           map[string]string{"content": "edited"},
		"POST /channels/{channel_id}/messages/bulk-delete":                             map[string]any{"messages": []string{msg.ID, other.ID}},
		"POST /channels/{channel_id}/invites":                                          map[string]any{},
		"POST /channels/{channel_id}/messages/{message_id}/ack":                        map[string]any{},
		"PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}": nil,
	}
	// A route with {user_id} reacts as @me.
	asMe := map[string]bool{"PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}": true}

	snapshot := func() string {
		t.Helper()
		ctx := context.Background()
		must(t, e.barrier.Wait(ctx, sf(t, f.guild)))
		var parts []any
		add := func(v any, err error) {
			t.Helper()
			must(t, err)
			parts = append(parts, v)
		}
		parts = append(parts, e.streamMsgs())
		add(e.store.Channels(ctx, sf(t, f.guild)))
		add(e.store.History(ctx, sf(t, f.channel), messaging.HistoryQuery{Limit: 100}))
		add(e.store.Reactions(ctx, sf(t, f.channel), []guildhall.Snowflake{sf(t, msg.ID)}, sf(t, f.owner.id)))
		invs, err := e.store.GuildInvites(ctx, sf(t, f.guild))
		slices.SortFunc(invs, func(a, b guildhall.Invite) int { return strings.Compare(a.Code, b.Code) })
		add(invs, err)
		b, err := json.Marshal(parts)
		must(t, err)
		return string(b)
	}

	n := 0
	for _, rt := range rest.RouteTable(rest.NewHandler(nil, rest.Config{GatewayURL: "ws://x"})) {
		if !strings.HasPrefix(rt.Path, "/channels/{channel_id}") {
			continue
		}
		n++
		key := rt.Method + " " + rt.Path
		path := rt.Path
		for k, v := range values {
			if k == "user_id" && asMe[key] {
				v = "@me"
			}
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		before := snapshot()
		st, raw := e.api.Do(t, rt.Method, path, hidden.token, bodies[key], nil)
		var d discordError
		if err := json.Unmarshal(raw, &d); st != http.StatusForbidden || err != nil || d.Code != 50001 {
			t.Errorf("%s as a member who cannot view the channel: %d %s; want 403 50001", key, st, raw)
			continue
		}
		if after := snapshot(); after != before {
			t.Errorf("%s: refused, but the state changed:\nbefore %s\nafter  %s", key, before, after)
		}
	}
	if n < 20 {
		t.Fatalf("only %d routes under /channels/{channel_id} in the route table", n)
	}

	// Elsewhere: the guild's channel list, and READY's read states.
	var chs []channelJSON
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+f.guild+"/channels", hidden.token, nil, &chs)
	if slices.ContainsFunc(chs, func(c channelJSON) bool { return c.ID == f.channel }) {
		t.Errorf("GET /guilds/{id}/channels lists the hidden channel: %+v", chs)
	}
	u, err := e.svc.Authenticate(context.Background(), hidden.token)
	must(t, err)
	states, err := e.svc.ReadStates(context.Background(), u, nil)
	must(t, err)
	for _, rs := range states {
		if rs.ChannelID == sf(t, f.channel) {
			t.Errorf("READY's read states show the hidden channel: %+v", rs)
		}
	}
}
