package rest

import (
	"math"
	"net/http"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Moderation over REST: bans (one, bulk, paged) and the audit log.

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
