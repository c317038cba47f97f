package messaging

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// The audit log. Every administrative action records an entry after its change
// is stored and its event published; an entry that cannot be written is logged
// and the action still succeeds (it happened, and clients were told). Entries
// are shown for guildhall.AuditLogRetention, as on Discord; older ones stay in
// the store.

// checkReason validates an X-Audit-Log-Reason (already URL-decoded): at most 512
// characters of valid UTF-8 without control characters other than newlines.
func checkReason(reason string) error {
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > guildhall.MaxAuditReason ||
		strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }) {
		return guildhall.FieldError("reason", "BASE_TYPE_MAX_LENGTH", "Must be 512 or fewer characters of text.")
	}
	return nil
}

// auditEntry is what an action records; audit fills in the rest.
type auditEntry struct {
	action  int
	target  string // id of the affected entity; "" for none
	changes []guildhall.AuditLogChange
	options *guildhall.AuditLogOptions
}

// audit records one entry of the guild's audit log made by the user of a.
func (s *Service) audit(ctx context.Context, a *guildAccess, reason string, e auditEntry) {
	uid := a.Member.User.ID
	ent := guildhall.AuditLogEntry{
		ID: s.ids.Next(), GuildID: a.Guild.ID, UserID: &uid, ActionType: e.action,
		Changes: e.changes, Options: e.options,
	}
	if e.target != "" {
		ent.TargetID = &e.target
	}
	if reason != "" {
		ent.Reason = &reason
	}
	// The action is done: record the entry even if the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.PutAuditEntry(ctx, ent); err != nil {
		s.log.Error("audit log: entry not recorded", "guild", a.Guild.ID, "user", uid, "action", e.action, "target", e.target, "err", err)
	}
}

// AuditLogQuery is what GET /guilds/{id}/audit-logs asks, as Discord defines
// it: with After (AfterSet, even 0) the oldest entries after it, oldest first;
// otherwise the newest before Before (0: now), newest first.
type AuditLogQuery struct {
	Before     guildhall.Snowflake
	After      guildhall.Snowflake
	AfterSet   bool
	UserID     guildhall.Snowflake
	ActionType int
	Limit      int
}

// AuditLog is a page of the audit log and the users its entries name.
type AuditLog struct {
	Entries []guildhall.AuditLogEntry
	Users   []guildhall.User
}

// GuildAuditLog reads a page of a guild's audit log (VIEW_AUDIT_LOG needed).
func (s *Service) GuildAuditLog(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, q AuditLogQuery) (AuditLog, error) {
	if q.Limit < 1 || q.Limit > 100 {
		return AuditLog{}, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
	}
	if _, err := s.accessNeeding(ctx, u, guildID, guildhall.PermViewAuditLog); err != nil {
		return AuditLog{}, err
	}
	now := s.now()
	floor := guildhall.SnowflakeAt(now.Add(-guildhall.AuditLogRetention))
	sq := AuditQuery{After: floor, Before: guildhall.SnowflakeAt(now.Add(time.Second)), UserID: q.UserID, ActionType: q.ActionType, Limit: q.Limit}
	if q.Before != 0 {
		sq.Before = min(sq.Before, q.Before)
	}
	if q.AfterSet {
		sq.Ascending = true
		sq.After = max(floor, q.After)
	}
	out := AuditLog{Entries: []guildhall.AuditLogEntry{}, Users: []guildhall.User{}}
	if sq.After >= sq.Before {
		return out, nil
	}
	ents, err := s.store.AuditLog(ctx, guildID, sq)
	if err != nil {
		return AuditLog{}, internal("audit log", err)
	}
	seen := map[guildhall.Snowflake]bool{}
	want := func(id guildhall.Snowflake) {
		if id == 0 || seen[id] {
			return
		}
		seen[id] = true
		usr, err := s.store.User(ctx, id)
		if err == nil {
			out.Users = append(out.Users, usr)
		} else if !errors.Is(err, ErrNotFound) {
			s.log.Warn("audit log: user", "user", id, "err", err)
		}
	}
	for _, e := range ents {
		e.GuildID = 0
		out.Entries = append(out.Entries, e)
		if e.UserID != nil {
			want(*e.UserID)
		}
		switch e.ActionType {
		case guildhall.AuditMemberKick, guildhall.AuditMemberBanAdd, guildhall.AuditMemberBanRemove,
			guildhall.AuditMemberUpdate, guildhall.AuditMemberRoleUpdate:
			if e.TargetID != nil {
				if id, err := guildhall.ParseSnowflake(*e.TargetID); err == nil {
					want(id)
				}
			}
		}
	}
	return out, nil
}
