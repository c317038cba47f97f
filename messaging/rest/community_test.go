package rest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// matrixCase is one route of the authorization matrix.
type matrixCase struct {
	name string
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
	g := "/guilds/" + c.guild
	ch := "/channels/" + c.channel
	soon := func() string { return time.Now().Add(time.Hour).UTC().Format(time.RFC3339) }

	cases := []matrixCase{
		{name: "list roles", ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/roles", nil }},
		{name: "get role", ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/roles/" + c.targetRole, nil }},
		{name: "list pins", ok: 200, req: func(c *community) (string, string, any) { return "GET", ch + "/pins", nil }},
		{name: "list pins (messages/pins)", ok: 200, req: func(c *community) (string, string, any) { return "GET", ch + "/messages/pins", nil }},
		{name: "delete guild", perm: guildhall.PermManageGuild, ownerOnly: true, req: func(c *community) (string, string, any) { return "DELETE", g, nil }},
		{name: "transfer guild", perm: guildhall.PermManageGuild, ownerOnly: true, req: func(c *community) (string, string, any) {
			return "PATCH", g, map[string]any{"owner_id": c.exact.id}
		}},
		{name: "own nick (deprecated route)", perm: guildhall.PermChangeNickname, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/members/@me/nick", map[string]any{"nick": "old" + time.Now().Format("150405.000")}
		}},
		{name: "get member", ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/members/" + c.owner.id, nil }},
		{name: "search members", ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/members/search?query=o&limit=10", nil }},
		{name: "create role", perm: guildhall.PermManageRoles, ok: 200, req: func(c *community) (string, string, any) {
			return "POST", g + "/roles", map[string]any{"name": "made", "permissions": "0"}
		}},
		{name: "modify role", perm: guildhall.PermManageRoles, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/roles/" + c.freshRole(), map[string]any{"name": "renamed", "hoist": true}
		}},
		{name: "reorder roles", perm: guildhall.PermManageRoles, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/roles", []map[string]any{{"id": c.freshRole(), "position": 6}}
		}},
		{name: "delete role", perm: guildhall.PermManageRoles, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "DELETE", g + "/roles/" + c.freshRole(), nil
		}},
		{name: "add member role", perm: guildhall.PermManageRoles, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", g + "/members/" + c.target().id + "/roles/" + c.freshRole(), nil
		}},
		{name: "remove member role", perm: guildhall.PermManageRoles, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			u, r := c.target(), c.freshRole()
			c.give(u, r)
			return "DELETE", g + "/members/" + u.id + "/roles/" + r, nil
		}},
		{name: "set member roles", perm: guildhall.PermManageRoles, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/members/" + c.target().id, map[string]any{"roles": []string{c.targetRole, c.freshRole()}}
		}},
		{name: "nick of another", perm: guildhall.PermManageNicknames, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/members/" + c.target().id, map[string]any{"nick": "renamed"}
		}},
		{name: "timeout", perm: guildhall.PermModerateMembers, hier: true, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/members/" + c.target().id, map[string]any{"communication_disabled_until": soon()}
		}},
		{name: "own nick", perm: guildhall.PermChangeNickname, ok: 200, req: func(c *community) (string, string, any) {
			c.n++
			return "PATCH", g + "/members/@me", map[string]any{"nick": "me" + time.Now().Format("150405.000")}
		}},
		{name: "kick", perm: guildhall.PermKickMembers, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "DELETE", g + "/members/" + c.target().id, nil
		}},
		{name: "ban", perm: guildhall.PermBanMembers, hier: true, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", g + "/bans/" + c.target().id, map[string]any{"delete_message_seconds": 60}
		}},
		{name: "bulk ban", perm: guildhall.PermBanMembers | guildhall.PermManageGuild, hier: true, ok: 200, lowStatus: 400, lowCode: 500000,
			req: func(c *community) (string, string, any) {
				return "POST", g + "/bulk-ban", map[string]any{"user_ids": []string{c.target().id, c.target().id}}
			}},
		{name: "unban", perm: guildhall.PermBanMembers, ok: 204, req: func(c *community) (string, string, any) {
			u := c.target()
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", g+"/bans/"+u.id, c.owner.token, nil, nil)
			return "DELETE", g + "/bans/" + u.id, nil
		}},
		{name: "list bans", perm: guildhall.PermBanMembers, ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/bans", nil }},
		{name: "get ban", perm: guildhall.PermBanMembers, ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/bans/" + c.banned.id, nil }},
		{name: "audit log", perm: guildhall.PermViewAuditLog, ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/audit-logs", nil }},
		{name: "modify guild", perm: guildhall.PermManageGuild, ok: 200, req: func(c *community) (string, string, any) {
			c.n++
			return "PATCH", g, map[string]any{"name": "Community " + time.Now().Format("150405.000000")}
		}},
		{name: "guild invites", perm: guildhall.PermManageGuild, ok: 200, req: func(c *community) (string, string, any) { return "GET", g + "/invites", nil }},
		{name: "channel invites", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) { return "GET", ch + "/invites", nil }},
		{name: "delete invite", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) {
			var inv inviteJSON
			c.e.api.Must(c.t, http.StatusOK, "POST", ch+"/invites", c.owner.token, map[string]any{}, &inv)
			return "DELETE", "/invites/" + inv.Code, nil
		}},
		{name: "modify channel", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) {
			return "PATCH", "/channels/" + c.freshChannel(), map[string]any{"name": "renamed", "rate_limit_per_user": 5}
		}},
		{name: "delete channel", perm: guildhall.PermManageChannels, ok: 200, req: func(c *community) (string, string, any) {
			return "DELETE", "/channels/" + c.freshChannel(), nil
		}},
		{name: "reorder channels", perm: guildhall.PermManageChannels, ok: 204, req: func(c *community) (string, string, any) {
			return "PATCH", g + "/channels", []map[string]any{{"id": c.freshChannel(), "position": 7}}
		}},
		{name: "edit overwrite", perm: guildhall.PermManageRoles, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", "/channels/" + c.freshChannel() + "/permissions/" + c.targetRole, map[string]any{"type": 0, "deny": "0", "allow": "0"}
		}},
		{name: "delete overwrite", perm: guildhall.PermManageRoles, ok: 204, req: func(c *community) (string, string, any) {
			id := c.freshChannel()
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", "/channels/"+id+"/permissions/"+c.targetRole, c.owner.token, map[string]any{"type": 0, "deny": "2048"}, nil)
			return "DELETE", "/channels/" + id + "/permissions/" + c.targetRole, nil
		}},
		{name: "bulk delete", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "POST", ch + "/messages/bulk-delete", map[string]any{"messages": []string{c.post("a"), c.post("b")}}
		}},
		{name: "delete another's message", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "DELETE", ch + "/messages/" + c.post("doomed"), nil
		}},
		{name: "pin", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			return "PUT", ch + "/pins/" + c.post("pin me"), nil
		}},
		{name: "unpin", perm: guildhall.PermManageMessages, ok: 204, req: func(c *community) (string, string, any) {
			id := c.post("unpin me")
			c.e.api.Must(c.t, http.StatusNoContent, "PUT", ch+"/messages/pins/"+id, c.owner.token, nil, nil)
			return "DELETE", ch + "/messages/pins/" + id, nil
		}},
	}

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
