package rest

import (
	"net/http"

	guildhall "github.com/guildhall/guildhall"
)

// inviteWithCounts is GET /invites/{code}: Discord's invite object, with the
// guild's approximate counts when with_counts=true.
type inviteWithCounts struct {
	inviteObject
	ApproximateMemberCount   *int `json:"approximate_member_count,omitempty"`
	ApproximatePresenceCount *int `json:"approximate_presence_count,omitempty"`
}

// invite answers GET /invites/{code}: anyone signed in who has the code may look
// (Discord lets anyone); nothing is counted as a use.
func (h *handler) invite(r *http.Request, _ guildhall.User) (int, any, error) {
	info, err := h.svc.GetInvite(r.Context(), r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	members := info.Guild.MemberCount
	info.Guild.MemberCount = 0
	o := inviteWithCounts{inviteObject: newInviteObject(info)}
	if queryBool(r, "with_counts") {
		o.ApproximateMemberCount = &members
		if h.cfg.Presence != nil {
			if n, err := h.cfg.Presence.ApproximatePresenceCount(r.Context(), info.Guild.ID); err == nil {
				o.ApproximatePresenceCount = &n
			} else {
				h.log.Warn("rest: presence count", "guild", info.Guild.ID, "err", err)
			}
		}
	}
	return http.StatusOK, o, nil
}
