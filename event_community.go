package guildhall

import "time"

// Dispatch event names of running a community (Discord's).
const (
	EventGuildBanAdd       = "GUILD_BAN_ADD"
	EventGuildBanRemove    = "GUILD_BAN_REMOVE"
	EventChannelPinsUpdate = "CHANNEL_PINS_UPDATE"
	EventMessageDeleteBulk = "MESSAGE_DELETE_BULK"
	EventInviteCreate      = "INVITE_CREATE"
	EventInviteDelete      = "INVITE_DELETE"
)

// GuildRoleEvent is the payload of GUILD_ROLE_CREATE and GUILD_ROLE_UPDATE.
type GuildRoleEvent struct {
	GuildID Snowflake `json:"guild_id"`
	Role    Role      `json:"role"`
}

// GuildRoleDelete is the payload of GUILD_ROLE_DELETE.
type GuildRoleDelete struct {
	GuildID Snowflake `json:"guild_id"`
	RoleID  Snowflake `json:"role_id"`
}

// GuildBanEvent is the payload of GUILD_BAN_ADD and GUILD_BAN_REMOVE.
type GuildBanEvent struct {
	GuildID Snowflake `json:"guild_id"`
	User    User      `json:"user"`
}

// GuildDelete is the payload of GUILD_DELETE: the guild was deleted (Unavailable
// false), or the session's user left or was removed from it.
type GuildDelete struct {
	ID          Snowflake `json:"id"`
	Unavailable bool      `json:"unavailable,omitempty"`
}

// MessageDeleteBulk is the payload of MESSAGE_DELETE_BULK.
type MessageDeleteBulk struct {
	IDs       []Snowflake `json:"ids"`
	ChannelID Snowflake   `json:"channel_id"`
	GuildID   Snowflake   `json:"guild_id,omitempty"`
}

// ChannelPinsUpdate is the payload of CHANNEL_PINS_UPDATE: the time of the
// channel's newest pin, nil when none is left.
type ChannelPinsUpdate struct {
	GuildID          Snowflake  `json:"guild_id,omitempty"`
	ChannelID        Snowflake  `json:"channel_id"`
	LastPinTimestamp *time.Time `json:"last_pin_timestamp"`
}

// MessagePin is what a CHANNEL_PINS_UPDATE event carries for the Writer beside
// its payload (Discord's payload does not name the message): which message was
// pinned or unpinned, and when. It is never sent to clients.
type MessagePin struct {
	MessageID Snowflake `json:"message_id"`
	Pinned    bool      `json:"pinned"`
	At        time.Time `json:"at"`
}

// InviteCreate is the payload of INVITE_CREATE.
type InviteCreate struct {
	ChannelID Snowflake `json:"channel_id"`
	Code      string    `json:"code"`
	CreatedAt time.Time `json:"created_at"`
	GuildID   Snowflake `json:"guild_id"`
	Inviter   *User     `json:"inviter,omitempty"`
	MaxAge    int       `json:"max_age"`
	MaxUses   int       `json:"max_uses"`
	Temporary bool      `json:"temporary"`
	Uses      int       `json:"uses"`
}

// InviteDelete is the payload of INVITE_DELETE.
type InviteDelete struct {
	ChannelID Snowflake `json:"channel_id"`
	GuildID   Snowflake `json:"guild_id"`
	Code      string    `json:"code"`
}
