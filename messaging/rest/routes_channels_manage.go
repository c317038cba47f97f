package rest

import (
	"errors"
	"net/http"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Channel management over REST: modify, delete, permission overwrites, bulk
// delete and pins.

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
