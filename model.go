package guildhall

import (
	"cmp"
	"slices"
	"time"
)

// User is an account, human or bot, in Discord's JSON shape.
type User struct {
	ID            Snowflake `json:"id"`
	Username      string    `json:"username"`
	Discriminator string    `json:"discriminator"`
	GlobalName    *string   `json:"global_name"`
	Avatar        *string   `json:"avatar"`
	Bot           bool      `json:"bot,omitempty"`
}

// Guild is a server: a named set of channels, roles and members.
type Guild struct {
	ID      Snowflake `json:"id"`
	Name    string    `json:"name"`
	Icon    *string   `json:"icon"`
	OwnerID Snowflake `json:"owner_id"`
	// MemberCount is maintained by the store; 0 when unknown.
	MemberCount int `json:"member_count,omitempty"`
}

// Channel types used by Guildhall (Discord's numbering).
const (
	ChannelTypeGuildText     = 0
	ChannelTypeGuildCategory = 4
)

// Overwrite types.
const (
	OverwriteRole   = 0
	OverwriteMember = 1
)

// PermissionOverwrite allows or denies permissions on one channel for a role or a
// member. Allow and Deny are bit sets, strings on the wire.
type PermissionOverwrite struct {
	ID    Snowflake   `json:"id"`
	Type  int         `json:"type"`
	Allow Permissions `json:"allow"`
	Deny  Permissions `json:"deny"`
}

// Channel is a guild channel.
type Channel struct {
	ID                   Snowflake             `json:"id"`
	Type                 int                   `json:"type"`
	GuildID              Snowflake             `json:"guild_id"`
	Name                 string                `json:"name"`
	Position             int                   `json:"position"`
	Topic                *string               `json:"topic"`
	ParentID             *Snowflake            `json:"parent_id"`
	PermissionOverwrites []PermissionOverwrite `json:"permission_overwrites"`
	NSFW                 bool                  `json:"nsfw"`
	RateLimitPerUser     int                   `json:"rate_limit_per_user"`
	// LastMessageID is the newest message ever sent to the channel (it may be
	// deleted since); kept by the store, filled in when the channel is read.
	LastMessageID *Snowflake `json:"last_message_id,omitempty"`
}

// SortChannels orders channels as Discord lists them: by position, then by id.
func SortChannels(chs []Channel) {
	slices.SortFunc(chs, func(a, b Channel) int {
		if a.Position != b.Position {
			return cmp.Compare(a.Position, b.Position)
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// Role is a named permission set. The @everyone role has the guild's id.
type Role struct {
	ID          Snowflake   `json:"id"`
	Name        string      `json:"name"`
	Color       int         `json:"color"`
	Hoist       bool        `json:"hoist"`
	Position    int         `json:"position"`
	Permissions Permissions `json:"permissions"`
	Managed     bool        `json:"managed"`
	Mentionable bool        `json:"mentionable"`
}

// Member is a user's membership of a guild.
type Member struct {
	GuildID  Snowflake   `json:"guild_id,omitempty"`
	User     User        `json:"user"`
	Nick     *string     `json:"nick"`
	Roles    []Snowflake `json:"roles"`
	JoinedAt time.Time   `json:"joined_at"`
	Deaf     bool        `json:"deaf"`
	Mute     bool        `json:"mute"`
	// CommunicationDisabledUntil is the end of the member's timeout; nil or past
	// means none (see TimedOut).
	CommunicationDisabledUntil *time.Time `json:"communication_disabled_until"`
}

// Message is a chat message in Discord's JSON shape.
type Message struct {
	ID               Snowflake         `json:"id"`
	ChannelID        Snowflake         `json:"channel_id"`
	GuildID          Snowflake         `json:"guild_id,omitempty"`
	Author           User              `json:"author"`
	Content          string            `json:"content"`
	Timestamp        time.Time         `json:"timestamp"`
	EditedTimestamp  *time.Time        `json:"edited_timestamp"`
	TTS              bool              `json:"tts"`
	MentionEveryone  bool              `json:"mention_everyone"`
	Mentions         []User            `json:"mentions"`
	MentionRoles     []Snowflake       `json:"mention_roles"`
	Attachments      []Attachment      `json:"attachments"`
	Embeds           []Embed           `json:"embeds"`
	Pinned           bool              `json:"pinned"`
	Type             int               `json:"type"`
	Nonce            any               `json:"nonce,omitempty"`
	Flags            int               `json:"flags"`
	Components       []struct{}        `json:"components"`
	Reactions        []Reaction        `json:"reactions,omitempty"`
	Member           *Member           `json:"member,omitempty"`
	MessageReference *MessageReference `json:"message_reference,omitempty"`
	// ReferencedMessage is the message a reply answers (type MessageTypeReply),
	// without its own referenced message; nil once it was deleted (null on the
	// wire, see MarshalJSON).
	ReferencedMessage *Message `json:"referenced_message,omitempty"`
}

// MaxMessageContent is Discord's limit on message content, in characters.
const MaxMessageContent = 2000

// Invite lets a user join a guild.
type Invite struct {
	Code      string     `json:"code"`
	GuildID   Snowflake  `json:"guild_id"`
	ChannelID Snowflake  `json:"channel_id"`
	InviterID Snowflake  `json:"inviter_id"`
	MaxUses   int        `json:"max_uses"`
	Uses      int        `json:"uses"`
	MaxAge    int        `json:"max_age"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Expired reports whether the invite can no longer be used at now.
func (i Invite) Expired(now time.Time) bool {
	if i.ExpiresAt != nil && !now.Before(*i.ExpiresAt) {
		return true
	}
	return i.MaxUses > 0 && i.Uses >= i.MaxUses
}
