package rest

import (
	"net/http"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Invites over REST: read, delete, and a channel's or guild's list.

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
