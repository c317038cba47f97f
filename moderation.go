package guildhall

import (
	"encoding/json"
	"time"
)

// Ban keeps a user out of a guild: a banned user is not a member and cannot join
// again by any invite until unbanned. Discord's ban object is {reason, user};
// GuildID and CreatedAt are Guildhall's.
type Ban struct {
	GuildID   Snowflake `json:"guild_id"`
	User      User      `json:"user"`
	Reason    *string   `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
}

// Audit log action types (Discord's numbering) that Guildhall records.
const (
	AuditGuildUpdate            = 1
	AuditChannelCreate          = 10
	AuditChannelUpdate          = 11
	AuditChannelDelete          = 12
	AuditChannelOverwriteCreate = 13
	AuditChannelOverwriteUpdate = 14
	AuditChannelOverwriteDelete = 15
	AuditMemberKick             = 20
	AuditMemberBanAdd           = 22
	AuditMemberBanRemove        = 23
	AuditMemberUpdate           = 24
	AuditMemberRoleUpdate       = 25
	AuditRoleCreate             = 30
	AuditRoleUpdate             = 31
	AuditRoleDelete             = 32
	AuditInviteCreate           = 40
	AuditInviteDelete           = 42
	AuditMessageDelete          = 72
	AuditMessageBulkDelete      = 73
	AuditMessagePin             = 74
	AuditMessageUnpin           = 75
)

// MaxAuditReason is Discord's limit on X-Audit-Log-Reason, in characters.
const MaxAuditReason = 512

// AuditLogRetention is how long Discord keeps audit log entries; older ones are
// not shown.
const AuditLogRetention = 45 * 24 * time.Hour

// AuditLogEntry is one administrative action in Discord's shape. GuildID is
// Guildhall's (the REST list leaves it out).
type AuditLogEntry struct {
	ID         Snowflake        `json:"id"`
	GuildID    Snowflake        `json:"guild_id,omitempty"`
	TargetID   *string          `json:"target_id"`
	UserID     *Snowflake       `json:"user_id"`
	ActionType int              `json:"action_type"`
	Changes    []AuditLogChange `json:"changes,omitempty"`
	Options    *AuditLogOptions `json:"options,omitempty"`
	Reason     *string          `json:"reason,omitempty"`
}

// AuditLogChange is one changed key: its value before and after, each absent
// when it was or became null.
type AuditLogChange struct {
	Key      string          `json:"key"`
	NewValue json.RawMessage `json:"new_value,omitempty"`
	OldValue json.RawMessage `json:"old_value,omitempty"`
}

// AuditLogOptions is Discord's "optional audit entry info": ids and counts as
// strings.
type AuditLogOptions struct {
	ChannelID string `json:"channel_id,omitempty"`
	Count     string `json:"count,omitempty"`
	ID        string `json:"id,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	RoleName  string `json:"role_name,omitempty"`
	Type      string `json:"type,omitempty"`
}

// Change builds an AuditLogChange of key from old to new; a nil value (or nil
// pointer) is left out, as Discord does for null.
func Change(key string, old, new any) AuditLogChange {
	return AuditLogChange{Key: key, OldValue: rawOrNil(old), NewValue: rawOrNil(new)}
}

func rawOrNil(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}
