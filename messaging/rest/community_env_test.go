package rest_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// community is a guild with every kind of actor the authorization matrix needs:
// its owner; "exact", whose top role (position 10) is given exactly the
// permission a route needs; "low", whose role at position 2 has it too but sits
// below the targets (role "target" at position 5); "without", a plain member;
// an outsider; a member who was kicked and one who was banned.
type community struct {
	e                                                    *env
	t                                                    testing.TB
	guild                                                string
	channel                                              string
	invite                                               string
	owner, exact, low, without, outsider, kicked, banned user
	topRole, targetRole, lowRole                         string
	n                                                    int
}

func newCommunity(t testing.TB, e *env) *community {
	t.Helper()
	c := &community{e: e, t: t}
	c.owner, c.exact, c.low, c.without = e.register("owner"), e.register("exact"), e.register("low"), e.register("without")
	c.outsider, c.kicked, c.banned = e.register("outsider"), e.register("kicked"), e.register("banned")
	var g guildJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds", c.owner.token, map[string]string{"name": "Community"}, &g)
	c.guild = g.ID
	var chs []channelJSON
	e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", c.owner.token, nil, &chs)
	c.channel = chs[0].ID
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+c.channel+"/invites", c.owner.token, map[string]any{"max_age": 0}, &inv)
	c.invite = inv.Code
	for _, u := range []user{c.exact, c.low, c.without, c.kicked, c.banned} {
		c.join(u)
	}
	c.topRole = c.role("top", 10)
	c.targetRole = c.role("target", 5)
	c.lowRole = c.role("low", 2)
	c.give(c.exact, c.topRole)
	c.give(c.low, c.lowRole)
	e.api.Must(t, http.StatusNoContent, "DELETE", "/guilds/"+c.guild+"/members/"+c.kicked.id, c.owner.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", "/guilds/"+c.guild+"/bans/"+c.banned.id, c.owner.token, map[string]any{}, nil)
	return c
}

func (c *community) join(u user) {
	c.t.Helper()
	c.e.api.Must(c.t, http.StatusOK, "POST", "/invites/"+c.invite, u.token, nil, nil)
}

// role creates a role (by the owner) at position pos and returns its id.
func (c *community) role(name string, pos int) string {
	c.t.Helper()
	var r struct {
		ID string `json:"id"`
	}
	c.e.api.Must(c.t, http.StatusOK, "POST", "/guilds/"+c.guild+"/roles", c.owner.token, map[string]any{"name": name, "permissions": "0"}, &r)
	c.e.api.Must(c.t, http.StatusOK, "PATCH", "/guilds/"+c.guild+"/roles", c.owner.token, []map[string]any{{"id": r.ID, "position": pos}}, nil)
	return r.ID
}

func (c *community) give(u user, role string) {
	c.t.Helper()
	c.e.api.Must(c.t, http.StatusNoContent, "PUT", "/guilds/"+c.guild+"/members/"+u.id+"/roles/"+role, c.owner.token, nil, nil)
}

// setPerms sets a role's permissions (by the owner).
func (c *community) setPerms(role string, p guildhall.Permissions) {
	c.t.Helper()
	c.e.api.Must(c.t, http.StatusOK, "PATCH", "/guilds/"+c.guild+"/roles/"+role, c.owner.token, map[string]any{"permissions": p}, nil)
}

// target is a fresh member holding the target role.
func (c *community) target() user {
	c.t.Helper()
	c.n++
	u := c.e.register(fmt.Sprint("target", c.n))
	c.join(u)
	c.give(u, c.targetRole)
	return u
}

// targetRoleFresh is a fresh role at the target position.
func (c *community) freshRole() string {
	c.t.Helper()
	c.n++
	return c.role(fmt.Sprint("fresh", c.n), 5)
}

func (c *community) freshChannel() string {
	c.t.Helper()
	c.n++
	var ch channelJSON
	c.e.api.Must(c.t, http.StatusCreated, "POST", "/guilds/"+c.guild+"/channels", c.owner.token, map[string]any{"name": fmt.Sprint("room", c.n)}, &ch)
	return ch.ID
}

func (c *community) post(content string) string {
	c.t.Helper()
	return c.e.post(c.owner.token, c.channel, content).ID
}

// digest is the community's state as the store holds it, and the stream's
// length: a refused request must change none of it.
func (c *community) digest() string {
	c.t.Helper()
	ctx := context.Background()
	st := c.e.store
	gid, _ := guildhall.ParseSnowflake(c.guild)
	cid, _ := guildhall.ParseSnowflake(c.channel)
	var b strings.Builder
	g, err := st.Guild(ctx, gid)
	fmt.Fprintf(&b, "guild %+v %v\n", g, err)
	roles, _ := st.Roles(ctx, gid)
	slices.SortFunc(roles, func(x, y guildhall.Role) int { return cmp.Compare(x.ID, y.ID) })
	fmt.Fprintf(&b, "roles %+v\n", roles)
	chs, _ := st.Channels(ctx, gid)
	fmt.Fprintf(&b, "channels %+v\n", chs)
	ms, _ := st.Members(ctx, gid, 0, 1000)
	for _, m := range ms {
		fmt.Fprintf(&b, "member %v %v %s %s\n", m.User.ID, m.Roles, strp(m.Nick), timep(m.CommunicationDisabledUntil))
	}
	bans, _ := st.Bans(ctx, gid, messaging.BanQuery{Limit: 1000})
	for _, x := range bans {
		fmt.Fprintf(&b, "ban %v\n", x.User.ID)
	}
	invs, _ := st.GuildInvites(ctx, gid)
	slices.SortFunc(invs, func(x, y guildhall.Invite) int { return strings.Compare(x.Code, y.Code) })
	for _, inv := range invs {
		fmt.Fprintf(&b, "invite %s %d\n", inv.Code, inv.Uses)
	}
	now := time.Now()
	audit, _ := st.AuditLog(ctx, gid, messaging.AuditQuery{After: guildhall.SnowflakeAt(now.Add(-time.Hour)), Before: guildhall.SnowflakeAt(now.Add(time.Hour)), Limit: 100})
	fmt.Fprintf(&b, "audit %d\n", len(audit))
	pins, _ := st.Pins(ctx, cid, 100)
	fmt.Fprintf(&b, "pins %d\n", len(pins))
	fmt.Fprintf(&b, "stream %d\n", c.e.streamMsgs())
	return b.String()
}

func strp(p *string) string {
	if p == nil {
		return "-"
	}
	return *p
}

func timep(p *time.Time) string {
	if p == nil {
		return "-"
	}
	return p.UTC().Format(time.RFC3339)
}

// doReason is a request with X-Audit-Log-Reason (raw, as sent).
func (e *env) doReason(t testing.TB, method, path, token, reason string, body any) (int, []byte) {
	t.Helper()
	return e.api.DoHeaders(t, method, path, token, body, http.Header{"X-Audit-Log-Reason": {reason}})
}

// escape is what Discord's libraries send as a reason.
func escape(s string) string { return url.PathEscape(s) }
