package rest

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Running a community over REST: roles, members, moderation, guild and channel
// management, pins, invites and the audit log, with Discord's routes and shapes.

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

// ---- roles

type roleBody struct {
	Name        *string                `json:"name"`
	Permissions *guildhall.Permissions `json:"permissions"`
	Color       *int                   `json:"color"`
	Hoist       *bool                  `json:"hoist"`
	Mentionable *bool                  `json:"mentionable"`
}

func (b roleBody) params() messaging.RoleParams {
	return messaging.RoleParams{Name: b.Name, Permissions: b.Permissions, Color: b.Color, Hoist: b.Hoist, Mentionable: b.Mentionable}
}

func (h *handler) roles(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.guild(); p.err == nil {
		return ok(h.svc.GuildRoles(r.Context(), u, id))
	}
	return 0, nil, p.err
}

func (h *handler) role(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if g, id := p.guild(), p.role(); p.err == nil {
		return ok(h.svc.GuildRole(r.Context(), u, g, id))
	}
	return 0, nil, p.err
}

func (h *handler) createRole(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b roleBody
	if p.body(&b, true); p.err != nil {
		return 0, nil, p.err
	}
	return ok(h.svc.CreateRole(r.Context(), u, id, b.params(), reason))
}

func (h *handler) modifyRole(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	g, id, reason := p.guild(), p.role(), p.reason()
	var b roleBody
	if p.body(&b, true); p.err != nil {
		return 0, nil, p.err
	}
	return ok(h.svc.ModifyRole(r.Context(), u, g, id, b.params(), reason))
}

func (h *handler) reorderRoles(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b []struct {
		ID       guildhall.Snowflake `json:"id"`
		Position *int                `json:"position"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	moves := make([]messaging.RolePosition, len(b))
	for i, m := range b {
		moves[i] = messaging.RolePosition{ID: m.ID, Position: m.Position}
	}
	return ok(h.svc.ReorderRoles(r.Context(), u, id, moves, reason))
}

func (h *handler) deleteRole(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if g, id, reason := p.guild(), p.role(), p.reason(); p.err == nil {
		return noContent(h.svc.DeleteRole(r.Context(), u, g, id, reason))
	}
	return 0, nil, p.err
}

// ---- members

func (h *handler) member(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	g, id := p.guild(), p.user(guildhall.ErrUnknownMember)
	if p.err != nil {
		return 0, nil, p.err
	}
	m, err := h.svc.GuildMember(r.Context(), u, g, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, restMember(m), nil
}

func (h *handler) searchMembers(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, limit := p.guild(), p.queryInt("limit", 1, 1, 1000)
	if p.err != nil {
		return 0, nil, p.err
	}
	ms, err := h.svc.SearchMembers(r.Context(), u, id, r.URL.Query().Get("query"), limit)
	if err != nil {
		return 0, nil, err
	}
	for i := range ms {
		ms[i] = restMember(ms[i])
	}
	return http.StatusOK, ms, nil
}

func (h *handler) modifyMember(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	g, id, reason := p.guild(), p.user(guildhall.ErrUnknownMember), p.reason()
	var b struct {
		Nick      optional[string]                `json:"nick"`
		Roles     optional[[]guildhall.Snowflake] `json:"roles"`
		Timeout   optional[time.Time]             `json:"communication_disabled_until"`
		Mute      *bool                           `json:"mute"`
		Deaf      *bool                           `json:"deaf"`
		ChannelID optional[guildhall.Snowflake]   `json:"channel_id"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	mp := messaging.MemberParams{
		SetNick: b.Nick.Set, Nick: b.Nick.Value,
		SetRoles: b.Roles.Set, SetTimeout: b.Timeout.Set, Timeout: b.Timeout.Value,
		Voice: b.Mute != nil || b.Deaf != nil || b.ChannelID.Value != nil,
	}
	if b.Roles.Value != nil {
		mp.Roles = *b.Roles.Value
	}
	m, err := h.svc.ModifyMember(r.Context(), u, g, id, mp, reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, restMember(m), nil
}

type nickBody struct {
	Nick optional[string] `json:"nick"`
}

func (h *handler) modifyCurrentMember(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b nickBody
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	m, err := h.svc.ModifyCurrentMember(r.Context(), u, id, b.Nick.Set, b.Nick.Value, reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, restMember(m), nil
}

// modifyCurrentNick is Discord's deprecated PATCH /members/@me/nick: it answers
// {"nick": ...}.
func (h *handler) modifyCurrentNick(r *http.Request, u guildhall.User) (int, any, error) {
	status, body, err := h.modifyCurrentMember(r, u)
	if err != nil {
		return 0, nil, err
	}
	return status, map[string]*string{"nick": body.(guildhall.Member).Nick}, nil
}

func (h *handler) kick(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if g, id, reason := p.guild(), p.user(guildhall.ErrUnknownMember), p.reason(); p.err == nil {
		return noContent(h.svc.KickMember(r.Context(), u, g, id, reason))
	}
	return 0, nil, p.err
}

func (h *handler) memberRole(r *http.Request, u guildhall.User, add bool) (int, any, error) {
	p := newParams(r)
	g, id, role, reason := p.guild(), p.user(guildhall.ErrUnknownMember), p.role(), p.reason()
	// Discord's libraries send no body, or an empty object; reading it bounds it.
	if p.body(&struct{}{}, true); p.err != nil {
		return 0, nil, p.err
	}
	if add {
		return noContent(h.svc.AddMemberRole(r.Context(), u, g, id, role, reason))
	}
	return noContent(h.svc.RemoveMemberRole(r.Context(), u, g, id, role, reason))
}

func (h *handler) addMemberRole(r *http.Request, u guildhall.User) (int, any, error) {
	return h.memberRole(r, u, true)
}

func (h *handler) removeMemberRole(r *http.Request, u guildhall.User) (int, any, error) {
	return h.memberRole(r, u, false)
}

// ---- bans

func (h *handler) bans(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.guild()
	q := messaging.BanQuery{Limit: p.queryInt("limit", 1000, 1, 1000), Before: p.queryID("before"), After: p.queryID("after")}
	if p.err != nil {
		return 0, nil, p.err
	}
	bs, err := h.svc.GuildBans(r.Context(), u, id, q)
	if err != nil {
		return 0, nil, err
	}
	out := make([]banObject, len(bs))
	for i, b := range bs {
		out[i] = newBanObject(b)
	}
	return http.StatusOK, out, nil
}

func (h *handler) ban(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	g, id := p.guild(), p.user(guildhall.ErrUnknownBan)
	if p.err != nil {
		return 0, nil, p.err
	}
	b, err := h.svc.GuildBan(r.Context(), u, g, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newBanObject(b), nil
}

// deleteSeconds reads delete_message_seconds, or the deprecated
// delete_message_days (0..7) when only that is given.
func deleteSeconds(secs, days *int) (int, error) {
	switch {
	case secs != nil:
		return *secs, nil
	case days != nil:
		if *days < 0 || *days > 7 {
			return 0, guildhall.FieldError("delete_message_days", "NUMBER_TYPE_MAX", "Must be between 0 and 7.")
		}
		return *days * 86400, nil
	}
	return 0, nil
}

func (h *handler) createBan(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	g, id, reason := p.guild(), p.user(guildhall.ErrUnknownUser), p.reason()
	var b struct {
		DeleteMessageSeconds *int `json:"delete_message_seconds"`
		DeleteMessageDays    *int `json:"delete_message_days"`
	}
	if p.body(&b, true); p.err != nil {
		return 0, nil, p.err
	}
	// The query string, as older clients (discordgo) send them.
	for name, dst := range map[string]**int{"delete_message_seconds": &b.DeleteMessageSeconds, "delete_message_days": &b.DeleteMessageDays} {
		if *dst == nil && r.URL.Query().Has(name) {
			n, err := queryInt(r, name, 0, math.MinInt32, math.MaxInt32)
			if err != nil {
				return 0, nil, err
			}
			*dst = &n
		}
	}
	secs, err := deleteSeconds(b.DeleteMessageSeconds, b.DeleteMessageDays)
	if err != nil {
		return 0, nil, err
	}
	return noContent(h.svc.BanMember(r.Context(), u, g, id, secs, reason))
}

func (h *handler) removeBan(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if g, id, reason := p.guild(), p.user(guildhall.ErrUnknownBan), p.reason(); p.err == nil {
		return noContent(h.svc.UnbanMember(r.Context(), u, g, id, reason))
	}
	return 0, nil, p.err
}

func (h *handler) bulkBan(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b struct {
		UserIDs              []guildhall.Snowflake `json:"user_ids"`
		DeleteMessageSeconds *int                  `json:"delete_message_seconds"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	secs, _ := deleteSeconds(b.DeleteMessageSeconds, nil)
	banned, failed, err := h.svc.BulkBan(r.Context(), u, id, b.UserIDs, secs, reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct {
		BannedUsers []guildhall.Snowflake `json:"banned_users"`
		FailedUsers []guildhall.Snowflake `json:"failed_users"`
	}{banned, failed}, nil
}

// ---- audit log

func (h *handler) auditLog(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.guild()
	q := messaging.AuditLogQuery{
		Limit: p.queryInt("limit", 50, 1, 100), Before: p.queryID("before"), After: p.queryID("after"),
		AfterSet: r.URL.Query().Has("after") && !r.URL.Query().Has("before"),
		UserID:   p.queryID("user_id"), ActionType: p.queryInt("action_type", 0, 0, 1000),
	}
	if p.err != nil {
		return 0, nil, p.err
	}
	log, err := h.svc.GuildAuditLog(r.Context(), u, id, q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct {
		ApplicationCommands  []struct{}                `json:"application_commands"`
		Entries              []guildhall.AuditLogEntry `json:"audit_log_entries"`
		AutoModerationRules  []struct{}                `json:"auto_moderation_rules"`
		GuildScheduledEvents []struct{}                `json:"guild_scheduled_events"`
		Integrations         []struct{}                `json:"integrations"`
		Threads              []struct{}                `json:"threads"`
		Users                []guildhall.User          `json:"users"`
		Webhooks             []struct{}                `json:"webhooks"`
	}{[]struct{}{}, log.Entries, []struct{}{}, []struct{}{}, []struct{}{}, []struct{}{}, log.Users, []struct{}{}}, nil
}

// ---- channels

func (h *handler) modifyChannel(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.channel(), p.reason()
	var b struct {
		Name                 *string                                   `json:"name"`
		Type                 *int                                      `json:"type"`
		Position             *int                                      `json:"position"`
		Topic                optional[string]                          `json:"topic"`
		NSFW                 *bool                                     `json:"nsfw"`
		RateLimitPerUser     *int                                      `json:"rate_limit_per_user"`
		PermissionOverwrites optional[[]guildhall.PermissionOverwrite] `json:"permission_overwrites"`
		ParentID             optional[guildhall.Snowflake]             `json:"parent_id"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	cp := messaging.ChannelParams{
		Name: b.Name, Type: b.Type, Position: b.Position, SetTopic: b.Topic.Set, Topic: b.Topic.Value,
		NSFW: b.NSFW, RateLimitPerUser: b.RateLimitPerUser,
		SetOverwrites: b.PermissionOverwrites.Set, SetParent: b.ParentID.Set, ParentID: b.ParentID.Value,
	}
	if b.PermissionOverwrites.Value != nil {
		cp.Overwrites = *b.PermissionOverwrites.Value
	}
	return ok(h.svc.ModifyChannel(r.Context(), u, id, cp, reason))
}

func (h *handler) deleteChannel(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.channel(), p.reason()
	if p.err != nil {
		return 0, nil, p.err
	}
	ch, err := h.svc.DeleteChannel(r.Context(), u, id, reason)
	if errors.Is(err, guildhall.ErrUnknownChannel) {
		// Not a guild channel: on a group DM, DELETE is leaving it (Discord's).
		return ok(h.svc.LeaveGroupDM(r.Context(), u, id))
	}
	return ok(ch, err)
}

func (h *handler) editOverwrite(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, target, reason := p.channel(), p.overwrite(), p.reason()
	var b struct {
		Allow *guildhall.Permissions `json:"allow"`
		Deny  *guildhall.Permissions `json:"deny"`
		Type  *int                   `json:"type"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	if b.Type == nil {
		return 0, nil, guildhall.FieldError("type", "BASE_TYPE_REQUIRED", "This field is required")
	}
	o := guildhall.PermissionOverwrite{ID: target, Type: *b.Type}
	if b.Allow != nil {
		o.Allow = *b.Allow
	}
	if b.Deny != nil {
		o.Deny = *b.Deny
	}
	return noContent(h.svc.EditOverwrite(r.Context(), u, id, o, reason))
}

func (h *handler) deleteOverwrite(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id, target, reason := p.channel(), p.overwrite(), p.reason(); p.err == nil {
		return noContent(h.svc.DeleteOverwrite(r.Context(), u, id, target, reason))
	}
	return 0, nil, p.err
}

func (h *handler) bulkDelete(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.channel(), p.reason()
	var b struct {
		Messages []guildhall.Snowflake `json:"messages"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	return noContent(h.svc.BulkDelete(r.Context(), u, id, b.Messages, reason))
}

// ---- pins

func (h *handler) pin(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if ch, id, reason := p.channel(), p.message(), p.reason(); p.err == nil {
		return noContent(h.svc.PinMessage(r.Context(), u, ch, id, reason))
	}
	return 0, nil, p.err
}

func (h *handler) unpin(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if ch, id, reason := p.channel(), p.message(), p.reason(); p.err == nil {
		return noContent(h.svc.UnpinMessage(r.Context(), u, ch, id, reason))
	}
	return 0, nil, p.err
}

// pinsLegacy is GET /channels/{id}/pins: the pinned messages, the most recently
// pinned first (Discord's older endpoint, still what discordgo calls).
func (h *handler) pinsLegacy(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.channel()
	if p.err != nil {
		return 0, nil, p.err
	}
	ps, _, err := h.svc.ChannelPins(r.Context(), u, id, time.Time{}, messaging.MaxPins)
	if err != nil {
		return 0, nil, err
	}
	out := make([]guildhall.Message, len(ps))
	for i, pm := range ps {
		out[i] = pm.Message
	}
	return http.StatusOK, out, nil
}

// pins is GET /channels/{id}/messages/pins: {items: [{pinned_at, message}],
// has_more}, paged by before (an ISO8601 time) and limit (1..50).
func (h *handler) pins(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, limit := p.channel(), p.queryInt("limit", 50, 1, 50)
	if p.err != nil {
		return 0, nil, p.err
	}
	var before time.Time
	if v := r.URL.Query().Get("before"); v != "" {
		var err error
		if before, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return 0, nil, guildhall.FieldError("before", "DATE_TIME_TYPE_PARSE", "Could not interpret \""+truncate(v, 40)+"\" as a date time.")
		}
	}
	ps, more, err := h.svc.ChannelPins(r.Context(), u, id, before, limit)
	if err != nil {
		return 0, nil, err
	}
	type item struct {
		PinnedAt time.Time         `json:"pinned_at"`
		Message  guildhall.Message `json:"message"`
	}
	items := make([]item, len(ps))
	for i, pm := range ps {
		items[i] = item{pm.PinnedAt, pm.Message}
	}
	return http.StatusOK, struct {
		Items   []item `json:"items"`
		HasMore bool   `json:"has_more"`
	}{items, more}, nil
}

// ---- invites

// inviteWithCounts is an invite with with_counts' approximate counts.
type inviteWithCounts struct {
	inviteObject
	ApproximateMemberCount   *int `json:"approximate_member_count,omitempty"`
	ApproximatePresenceCount *int `json:"approximate_presence_count,omitempty"`
}

func (h *handler) invite(r *http.Request, u guildhall.User) (int, any, error) {
	info, err := h.svc.GetInvite(r.Context(), r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	n := info.Guild.MemberCount
	info.Guild.MemberCount = 0
	o := inviteWithCounts{inviteObject: newInviteObject(info)}
	if queryBool(r, "with_counts") {
		o.ApproximateMemberCount = &n
		if h.cfg.Presence != nil {
			if p, err := h.cfg.Presence.ApproximatePresenceCount(r.Context(), info.Guild.ID); err == nil {
				o.ApproximatePresenceCount = &p
			} else {
				h.log.Warn("rest: presence count", "guild", info.Guild.ID, "err", err)
			}
		}
	}
	return http.StatusOK, o, nil
}

func (h *handler) deleteInvite(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	reason := p.reason()
	if p.err != nil {
		return 0, nil, p.err
	}
	info, err := h.svc.DeleteInvite(r.Context(), u, r.PathValue("code"), reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newInviteObject(info), nil
}

func inviteList(infos []messaging.InviteInfo, err error) ([]inviteObject, error) {
	if err != nil {
		return nil, err
	}
	out := make([]inviteObject, len(infos))
	for i, info := range infos {
		out[i] = newInviteObject(info)
	}
	return out, nil
}

func (h *handler) channelInvites(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.channel(); p.err == nil {
		return ok(inviteList(h.svc.ChannelInvites(r.Context(), u, id)))
	}
	return 0, nil, p.err
}

func (h *handler) guildInvites(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.guild(); p.err == nil {
		return ok(inviteList(h.svc.GuildInvites(r.Context(), u, id)))
	}
	return 0, nil, p.err
}
