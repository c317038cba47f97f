package rest

import (
	"net/http"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// A guild's members over REST: read, search, modify (nick, roles, timeout), kick.

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
