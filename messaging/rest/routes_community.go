package rest

import (
	"encoding/json"
	"net/http"
	"net/url"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Running a community over REST, with Discord's routes and shapes: the route
// table and the guild's own routes here; roles, members, moderation (bans, audit
// log), channel management (with pins) and invites each in its routes_*.go.

// communityRoutes is added to the route table by NewHandler.
func (h *handler) communityRoutes(rl Limit) []route {
	g := func(method, path string, serve func(*http.Request, guildhall.User) (int, any, error)) route {
		return route{method: method, path: "/guilds/{guild_id}" + path, major: "guild_id", limit: rl, serve: serve}
	}
	c := func(method, path string, serve func(*http.Request, guildhall.User) (int, any, error)) route {
		return route{method: method, path: "/channels/{channel_id}" + path, major: "channel_id", limit: rl, serve: serve}
	}
	return []route{
		g("PATCH", "", h.modifyGuild),
		g("DELETE", "", h.deleteGuild),
		g("PATCH", "/channels", h.reorderChannels),
		g("GET", "/roles", h.roles),
		g("POST", "/roles", h.createRole),
		g("PATCH", "/roles", h.reorderRoles),
		g("GET", "/roles/{role_id}", h.role),
		g("PATCH", "/roles/{role_id}", h.modifyRole),
		g("DELETE", "/roles/{role_id}", h.deleteRole),
		g("GET", "/members/search", h.searchMembers),
		g("PATCH", "/members/@me", h.modifyCurrentMember),
		g("PATCH", "/members/@me/nick", h.modifyCurrentNick),
		g("GET", "/members/{user_id}", h.member),
		g("PATCH", "/members/{user_id}", h.modifyMember),
		g("DELETE", "/members/{user_id}", h.kick),
		g("PUT", "/members/{user_id}/roles/{role_id}", h.addMemberRole),
		g("DELETE", "/members/{user_id}/roles/{role_id}", h.removeMemberRole),
		g("GET", "/bans", h.bans),
		g("GET", "/bans/{user_id}", h.ban),
		g("PUT", "/bans/{user_id}", h.createBan),
		g("DELETE", "/bans/{user_id}", h.removeBan),
		g("POST", "/bulk-ban", h.bulkBan),
		g("GET", "/audit-logs", h.auditLog),
		g("GET", "/invites", h.guildInvites),
		{method: "DELETE", path: "/users/@me/guilds/{guild_id}", major: "guild_id", limit: rl, serve: h.leaveGuild},
		c("PATCH", "", h.modifyChannel),
		c("DELETE", "", h.deleteChannel),
		c("PUT", "/permissions/{overwrite_id}", h.editOverwrite),
		c("DELETE", "/permissions/{overwrite_id}", h.deleteOverwrite),
		c("GET", "/invites", h.channelInvites),
		c("POST", "/messages/bulk-delete", h.bulkDelete),
		c("GET", "/pins", h.pinsLegacy),
		c("PUT", "/pins/{message_id}", h.pin),
		c("DELETE", "/pins/{message_id}", h.unpin),
		c("GET", "/messages/pins", h.pins),
		c("PUT", "/messages/pins/{message_id}", h.pin),
		{method: "DELETE", path: "/channels/{channel_id}/messages/pins/{message_id}", mux: "/channels/{channel_id}/messages/{pins}/{message_id}",
			major: "channel_id", limit: rl, serve: h.unpin},
		{method: "GET", path: "/invites/{code}", limit: rl, serve: h.invite},
		{method: "DELETE", path: "/invites/{code}", limit: rl, serve: h.deleteInvite},
	}
}

// maxReasonHeader bounds X-Audit-Log-Reason before decoding: 512 characters of
// up to 4 UTF-8 bytes, each percent-encoded (3 bytes).
const maxReasonHeader = guildhall.MaxAuditReason * 12

// auditReason reads X-Audit-Log-Reason: URL-encoded (as Discord's libraries
// send it), at most 512 characters once decoded; the service checks the rest.
// Without the header, the reason query parameter that Discord still accepts on
// kicks and bans (and that discordgo sends there) is read instead.
func auditReason(r *http.Request) (string, error) {
	bad := guildhall.FieldError("reason", "BASE_TYPE_MAX_LENGTH", "X-Audit-Log-Reason must be 1 to 512 URL-encoded characters.")
	raw := r.Header.Get("X-Audit-Log-Reason")
	if raw == "" {
		q := r.URL.Query().Get("reason")
		if len(q) > maxReasonHeader {
			return "", bad
		}
		return q, nil
	}
	if len(raw) > maxReasonHeader {
		return "", bad
	}
	reason, err := url.PathUnescape(raw)
	if err != nil {
		return "", bad
	}
	return reason, nil
}

// ---- JSON shapes

// banObject is Discord's ban object.
type banObject struct {
	Reason *string        `json:"reason"`
	User   guildhall.User `json:"user"`
}

func newBanObject(b guildhall.Ban) banObject { return banObject{Reason: b.Reason, User: b.User} }

// restMember is a member as REST shows it: no guild_id, roles never null.
func restMember(m guildhall.Member) guildhall.Member {
	m.GuildID = 0
	if m.Roles == nil {
		m.Roles = []guildhall.Snowflake{}
	}
	return m
}

// optional is a JSON field that may be absent, null or a value.
type optional[T any] struct {
	Set   bool
	Value *T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	o.Value = &v
	return nil
}

// ---- guilds

func (h *handler) modifyGuild(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b struct {
		Name    *string              `json:"name"`
		OwnerID *guildhall.Snowflake `json:"owner_id"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	st, err := h.svc.ModifyGuild(r.Context(), u, id, messaging.GuildParams{Name: b.Name, OwnerID: b.OwnerID}, reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newGuildObject(st), nil
}

func (h *handler) deleteGuild(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.guild(); p.err == nil {
		return noContent(h.svc.DeleteGuild(r.Context(), u, id))
	}
	return 0, nil, p.err
}

func (h *handler) leaveGuild(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.guild(); p.err == nil {
		return noContent(h.svc.LeaveGuild(r.Context(), u, id))
	}
	return 0, nil, p.err
}

func (h *handler) reorderChannels(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b []struct {
		ID              guildhall.Snowflake           `json:"id"`
		Position        *int                          `json:"position"`
		ParentID        optional[guildhall.Snowflake] `json:"parent_id"`
		LockPermissions *bool                         `json:"lock_permissions"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	moves := make([]messaging.ChannelPosition, len(b))
	for i, m := range b {
		moves[i] = messaging.ChannelPosition{ID: m.ID, Position: m.Position, SetParent: m.ParentID.Set, ParentID: m.ParentID.Value,
			LockPermissions: m.LockPermissions != nil && *m.LockPermissions}
	}
	return noContent(h.svc.ReorderChannels(r.Context(), u, id, moves, reason))
}
