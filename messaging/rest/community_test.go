package rest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// matrixCase is one case of the community's authorization matrix.
type matrixCase struct {
	name string
	// route is the route the request goes to, "METHOD /path" as the route table
	// names it: TestAuthorizationMatrix counts the route as covered by this
	// case, and TestCommunityAuthorizationMatrix checks that the request built
	// by req is served by it.
	route string
	// perm is what the route needs; the exact actor's top role has only it (0:
	// any member may).
	perm guildhall.Permissions
	// hier: the role hierarchy applies, so the low actor (who has perm, but
	// below the target) is refused; otherwise the low actor succeeds.
	hier bool
	ok   int // the status of success
	// lowStatus and lowCode replace 403 50013 for the low actor's refusal.
	lowStatus, lowCode int
	// ownerOnly: only the owner may; the exact actor (with perm) is refused too.
	// The owner's success is not run here (it would end the community): the
	// flow tests cover it.
	ownerOnly bool
	// req builds the request on a fresh target (each actor gets its own).
	req func(c *community) (method, path string, body any)
}

// TestCommunityAuthorizationMatrix runs every route of running a community as
// the owner, a member with exactly the needed permission, a member without it, a
// member whose highest role is too low, an outsider, a kicked and a banned
// member. It checks the status and Discord's code, and that a refusal changed
// nothing: not the store, not the stream.
func TestCommunityAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := newCommunity(t, e)
	cases := communityMatrixCases()
	routes := routeMatcher(t)

	type actor struct {
		name         string
		u            user
		status, code int // the refusal; 0 means success
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			c.t = t
			c.setPerms(c.topRole, cs.perm)
			c.setPerms(c.lowRole, cs.perm)
			refusal := func(need bool) (int, int) {
				if need {
					return 403, 50013
				}
				return 0, 0
			}
			ws, wc := refusal(cs.perm != 0)
			ls, lc := refusal(cs.hier || cs.ownerOnly)
			if cs.hier && cs.lowStatus != 0 {
				ls, lc = cs.lowStatus, cs.lowCode
			}
			es, ec := refusal(cs.ownerOnly)
			actors := []actor{
				{"outsider", c.outsider, 403, 50001},
				{"kicked", c.kicked, 403, 50001},
				{"banned", c.banned, 403, 50001},
				{"without", c.without, ws, wc},
				{"low", c.low, ls, lc},
				{"exact", c.exact, es, ec},
			}
			if !cs.ownerOnly {
				actors = append(actors, actor{"owner", c.owner, 0, 0})
			}
			for _, a := range actors {
				method, path, body := cs.req(c)
				if got := routes(method, path); got != cs.route {
					t.Fatalf("%s %s goes to route %q; the case names %q", method, path, got, cs.route)
				}
				before := c.digest()
				st, raw := e.api.Do(t, method, path, a.u.token, body, nil)
				if a.status == 0 {
					if st != cs.ok {
						t.Errorf("%s: %s %s = %d %s; want %d", a.name, method, path, st, raw, cs.ok)
					}
					continue
				}
				var d discordError
				if json.Unmarshal(raw, &d) != nil || st != a.status || d.Code != a.code {
					t.Errorf("%s: %s %s = %d %s; want %d code %d", a.name, method, path, st, raw, a.status, a.code)
				}
				if after := c.digest(); after != before {
					t.Errorf("%s: a refused %s %s changed the community:\nbefore %s\nafter  %s", a.name, method, path, before, after)
				}
			}
		})
	}
}

// communityMatrixCases are the cases of TestCommunityAuthorizationMatrix, one or
// more per route of running a community.
func communityMatrixCases() []matrixCase {
	soon := func() string { return time.Now().Add(time.Hour).UTC().Format(time.RFC3339) }
	return []matrixCase{
		{name: "list roles", route: "GET /guilds/{guild_id}/roles", ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/roles", nil }},
		{name: "get role", route: "GET /guilds/{guild_id}/roles/{role_id}", ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/roles/" + c.targetRole, nil }},
		{name: "list pins", route: "GET /channels/{channel_id}/pins", ok: 200, req: func(c *community) (string, string, any) { return "GET", chp(c) + "/pins", nil }},
		{name: "list pins (messages/pins)", route: "GET /channels/{channel_id}/messages/pins", ok: 200, req: func(c *community) (string, string, any) { return "GET", chp(c) + "/messages/pins", nil }},
		{name: "delete guild", route: "DELETE /guilds/{guild_id}", perm: guildhall.PermManageGuild, ownerOnly: true, req: func(c *community) (string, string, any) { return "DELETE", gp(c), nil }},
		{name: "transfer guild", route: "PATCH /guilds/{guild_id}", perm: guildhall.PermManageGuild, ownerOnly: true, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c), map[string]any{"owner_id": c.exact.id}
		}},
		{name: "own nick (deprecated route)", route: "PATCH /guilds/{guild_id}/members/@me/nick", perm: guildhall.PermChangeNickname, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/members/@me/nick", map[string]any{"nick": "old" + time.Now().Format("150405.000")}
		}},
		{name: "get member", route: "GET /guilds/{guild_id}/members/{user_id}", ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/members/" + c.owner.id, nil }},
		{name: "search members", route: "GET /guilds/{guild_id}/members/search", ok: 200, req: func(c *community) (string, string, any) {
			return "GET", gp(c) + "/members/search?query=o&limit=10", nil
		}},
		{name: "create role", route: "POST /guilds/{guild_id}/roles", perm: guildhall.PermManageRoles, ok: 200, req: func(c *community) (string, string, any) {
			return "POST", gp(c) + "/roles", map[string]any{"name": "made", "permissions": "0"}
		}},
		{name: "modify role", route: "PATCH /guilds/{guild_id}/roles/{role_id}", perm: guildhall.PermManageRoles, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/roles/" + c.freshRole(), map[string]any{"name": "renamed", "hoist": true}
		}},
		{name: "reorder roles", route: "PATCH /guilds/{guild_id}/roles", perm: guildhall.PermManageRoles, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/roles", []map[string]any{{"id": c.freshRole(), "position": 6}}
		}},
		{name: "delete role", route: "DELETE /guilds/{guild_id}/roles/{role_id}", perm: guildhall.PermManageRoles, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "DELETE", gp(c) + "/roles/" + c.freshRole(), nil
		}},
		{name: "add member role", route: "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}", perm: guildhall.PermManageRoles, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", gp(c) + "/members/" + c.target().id + "/roles/" + c.freshRole(), nil
		}},
		{name: "remove member role", route: "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}", perm: guildhall.PermManageRoles, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			u, r := c.target(), c.freshRole()
			c.give(u, r)
			return "DELETE", gp(c) + "/members/" + u.id + "/roles/" + r, nil
		}},
		{name: "set member roles", route: "PATCH /guilds/{guild_id}/members/{user_id}", perm: guildhall.PermManageRoles, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/members/" + c.target().id, map[string]any{"roles": []string{c.targetRole, c.freshRole()}}
		}},
		{name: "nick of another", route: "PATCH /guilds/{guild_id}/members/{user_id}", perm: guildhall.PermManageNicknames, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/members/" + c.target().id, map[string]any{"nick": "renamed"}
		}},
		{name: "timeout", route: "PATCH /guilds/{guild_id}/members/{user_id}", perm: guildhall.PermModerateMembers, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/members/" + c.target().id, map[string]any{"communication_disabled_until": soon()}
		}},
		{name: "own nick", route: "PATCH /guilds/{guild_id}/members/@me", perm: guildhall.PermChangeNickname, ok: 200, req: func(c *community) (string, string, any) {
			c.n++
			return "PATCH", gp(c) + "/members/@me", map[string]any{"nick": "me" + time.Now().Format("150405.000")}
		}},
		{name: "kick", route: "DELETE /guilds/{guild_id}/members/{user_id}", perm: guildhall.PermKickMembers, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "DELETE", gp(c) + "/members/" + c.target().id, nil
		}},
		{name: "ban", route: "PUT /guilds/{guild_id}/bans/{user_id}", perm: guildhall.PermBanMembers, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", gp(c) + "/bans/" + c.target().id, map[string]any{"delete_message_seconds": 60}
		}},
		{name: "bulk ban", route: "POST /guilds/{guild_id}/bulk-ban", perm: guildhall.PermBanMembers | guildhall.PermManageGuild, hier: true, ok: 200, lowStatus: 400, lowCode: 500000,
			req: func(c *community) (string, string, any) {
				return "POST", gp(c) + "/bulk-ban", map[string]any{"user_ids": []string{c.target().id, c.target().id}}
			}},
		{name: "unban", route: "DELETE /guilds/{guild_id}/bans/{user_id}", perm: guildhall.PermBanMembers, ok: 204, req: func(c *community) (string, string, any) {
			u := c.target()
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", gp(c)+"/bans/"+u.id, c.owner.token, nil, nil)
			return "DELETE", gp(c) + "/bans/" + u.id, nil
		}},
		{name: "list bans", route: "GET /guilds/{guild_id}/bans", perm: guildhall.PermBanMembers, ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/bans", nil }},
		{name: "get ban", route: "GET /guilds/{guild_id}/bans/{user_id}", perm: guildhall.PermBanMembers, ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/bans/" + c.banned.id, nil }},
		{name: "audit log", route: "GET /guilds/{guild_id}/audit-logs", perm: guildhall.PermViewAuditLog, ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/audit-logs", nil }},
		{name: "modify guild", route: "PATCH /guilds/{guild_id}", perm: guildhall.PermManageGuild, ok: 200, req: func(c *community) (string, string, any) {
			c.n++
			return "PATCH", gp(c), map[string]any{"name": "Community " + time.Now().Format("150405.000000")}
		}},
		{name: "guild invites", route: "GET /guilds/{guild_id}/invites", perm: guildhall.PermManageGuild, ok: 200, req: func(c *community) (string, string, any) { return "GET", gp(c) + "/invites", nil }},
		{name: "channel invites", route: "GET /channels/{channel_id}/invites", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) { return "GET", chp(c) + "/invites", nil }},
		{name: "delete invite", route: "DELETE /invites/{code}", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) {
			var inv inviteJSON
			c.e.api.Must(c.t, http.StatusOK, "POST", chp(c)+"/invites", c.owner.token, map[string]any{}, &inv)
			return "DELETE", "/invites/" + inv.Code, nil
		}},
		{name: "modify channel", route: "PATCH /channels/{channel_id}", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", "/channels/" + c.freshChannel(), map[string]any{"name": "renamed", "rate_limit_per_user": 5}
		}},
		{name: "delete channel", route: "DELETE /channels/{channel_id}", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) {
			return "DELETE", "/channels/" + c.freshChannel(), nil
		}},
		{name: "reorder channels", route: "PATCH /guilds/{guild_id}/channels", perm: guildhall.PermManageChannels, ok: 204, req: func(c *community) (string, string, any) {
			return "PATCH", gp(c) + "/channels", []map[string]any{{"id": c.freshChannel(), "position": 7}}
		}},
		{name: "edit overwrite", route: "PUT /channels/{channel_id}/permissions/{overwrite_id}", perm: guildhall.PermManageRoles, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", "/channels/" + c.freshChannel() + "/permissions/" + c.targetRole, map[string]any{"type": 0, "deny": "0", "allow": "0"}
		}},
		{name: "delete overwrite", route: "DELETE /channels/{channel_id}/permissions/{overwrite_id}", perm: guildhall.PermManageRoles, ok: 204, req: func(c *community) (string, string, any) {
			id := c.freshChannel()
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", "/channels/"+id+"/permissions/"+c.targetRole, c.owner.token, map[string]any{"type": 0, "deny": "2048"}, nil)
			return "DELETE", "/channels/" + id + "/permissions/" + c.targetRole, nil
		}},
		{name: "bulk delete", route: "POST /channels/{channel_id}/messages/bulk-delete", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "POST", chp(c) + "/messages/bulk-delete", map[string]any{"messages": []string{c.post("a"), c.post("b")}}
		}},
		{name: "delete another's message", route: "DELETE /channels/{channel_id}/messages/{message_id}", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "DELETE", chp(c) + "/messages/" + c.post("doomed"), nil
		}},
		{name: "pin", route: "PUT /channels/{channel_id}/pins/{message_id}", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", chp(c) + "/pins/" + c.post("pin me"), nil
		}},
		{name: "pin (messages/pins)", route: "PUT /channels/{channel_id}/messages/pins/{message_id}", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", chp(c) + "/messages/pins/" + c.post("pin me too"), nil
		}},
		{name: "unpin (pins)", route: "DELETE /channels/{channel_id}/pins/{message_id}", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			id := c.post("unpin me too")
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", chp(c)+"/pins/"+id, c.owner.token, nil, nil)
			return "DELETE", chp(c) + "/pins/" + id, nil
		}},
		{name: "unpin", route: "DELETE /channels/{channel_id}/messages/pins/{message_id}", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			id := c.post("unpin me")
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", chp(c)+"/messages/pins/"+id, c.owner.token, nil, nil)
			return "DELETE", chp(c) + "/messages/pins/" + id, nil
		}},
	}
}

func gp(c *community) string  { return "/guilds/" + c.guild }
func chp(c *community) string { return "/channels/" + c.channel }
