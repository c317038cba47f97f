package guildhall

import (
	"encoding/json"
	"time"
)

// What a conversation carries beyond text, in Discord's JSON shapes: replies,
// attachments, embeds, reactions, direct-message channels and read states.

// Message types used by Guildhall (Discord's numbering).
const (
	MessageTypeDefault = 0
	MessageTypeReply   = 19
)

// MessageReference points a reply at the message it answers. When sending, only
// MessageID is needed; FailIfNotExists (default true) decides whether a reply to
// a message that does not exist is refused or sent as a plain message.
type MessageReference struct {
	Type            int       `json:"type"`
	MessageID       Snowflake `json:"message_id,omitempty"`
	ChannelID       Snowflake `json:"channel_id,omitempty"`
	GuildID         Snowflake `json:"guild_id,omitempty"`
	FailIfNotExists *bool     `json:"fail_if_not_exists,omitempty"`
}

// Attachment is a file attached to a message. URL (and ProxyURL, the same) is
// where the api serves it; Width and Height are set for images.
type Attachment struct {
	ID          Snowflake `json:"id"`
	Filename    string    `json:"filename"`
	Description string    `json:"description,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Size        int64     `json:"size"`
	URL         string    `json:"url"`
	ProxyURL    string    `json:"proxy_url"`
	Height      *int      `json:"height,omitempty"`
	Width       *int      `json:"width,omitempty"`
}

// MaxAttachments is Discord's limit on files per message.
const MaxAttachments = 10

// Embed is a rich embed (Discord's embed object; Type is always "rich" for
// embeds a user or bot sends).
type Embed struct {
	Title       string         `json:"title,omitempty"`
	Type        string         `json:"type,omitempty"`
	Description string         `json:"description,omitempty"`
	URL         string         `json:"url,omitempty"`
	Timestamp   *time.Time     `json:"timestamp,omitempty"`
	Color       *int           `json:"color,omitempty"`
	Footer      *EmbedFooter   `json:"footer,omitempty"`
	Image       *EmbedMedia    `json:"image,omitempty"`
	Thumbnail   *EmbedMedia    `json:"thumbnail,omitempty"`
	Video       *EmbedMedia    `json:"video,omitempty"`
	Provider    *EmbedProvider `json:"provider,omitempty"`
	Author      *EmbedAuthor   `json:"author,omitempty"`
	Fields      []EmbedField   `json:"fields,omitempty"`
}

// EmbedFooter is an embed's footer.
type EmbedFooter struct {
	Text         string `json:"text"`
	IconURL      string `json:"icon_url,omitempty"`
	ProxyIconURL string `json:"proxy_icon_url,omitempty"`
}

// EmbedMedia is an embed's image, thumbnail or video.
type EmbedMedia struct {
	URL      string `json:"url,omitempty"`
	ProxyURL string `json:"proxy_url,omitempty"`
	Height   int    `json:"height,omitempty"`
	Width    int    `json:"width,omitempty"`
}

// EmbedProvider is an embed's provider.
type EmbedProvider struct {
	Name string `json:"name,omitempty"`
	URL  string `json:"url,omitempty"`
}

// EmbedAuthor is an embed's author.
type EmbedAuthor struct {
	Name         string `json:"name"`
	URL          string `json:"url,omitempty"`
	IconURL      string `json:"icon_url,omitempty"`
	ProxyIconURL string `json:"proxy_icon_url,omitempty"`
}

// EmbedField is one name/value field of an embed.
type EmbedField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

// Discord's embed limits, in characters.
const (
	MaxEmbeds           = 10
	MaxEmbedTitle       = 256
	MaxEmbedDescription = 4096
	MaxEmbedFields      = 25
	MaxEmbedFieldName   = 256
	MaxEmbedFieldValue  = 1024
	MaxEmbedFooter      = 2048
	MaxEmbedAuthorName  = 256
	MaxEmbedTotal       = 6000
)

// Emoji is the partial emoji of a reaction. Guildhall has no custom emojis, so
// ID is always null and Name is the unicode emoji.
type Emoji struct {
	ID   *Snowflake `json:"id"`
	Name string     `json:"name"`
}

// Reaction is one emoji's reactions to a message as the message object shows
// them: how many, and whether the user reading it is among them (Me).
type Reaction struct {
	Count        int                  `json:"count"`
	CountDetails ReactionCountDetails `json:"count_details"`
	Me           bool                 `json:"me"`
	MeBurst      bool                 `json:"me_burst"`
	Emoji        Emoji                `json:"emoji"`
	BurstColors  []string             `json:"burst_colors"`
}

// NewReaction is an emoji's reaction counted zero times, its slices non-nil.
func NewReaction(emoji string) Reaction {
	return Reaction{Emoji: Emoji{Name: emoji}, BurstColors: []string{}}
}

// ReactionCountDetails splits a reaction count into super and normal ones
// (Guildhall has only normal reactions).
type ReactionCountDetails struct {
	Burst  int `json:"burst"`
	Normal int `json:"normal"`
}

// MaxReactionEmojis is Discord's limit on distinct emojis reacted to one message.
const MaxReactionEmojis = 20

// MessageReactionAdd is the payload of MESSAGE_REACTION_ADD.
type MessageReactionAdd struct {
	UserID          Snowflake `json:"user_id"`
	ChannelID       Snowflake `json:"channel_id"`
	MessageID       Snowflake `json:"message_id"`
	GuildID         Snowflake `json:"guild_id,omitempty"`
	Member          *Member   `json:"member,omitempty"`
	Emoji           Emoji     `json:"emoji"`
	MessageAuthorID Snowflake `json:"message_author_id,omitempty"`
	Burst           bool      `json:"burst"`
	BurstColors     []string  `json:"burst_colors"`
	Type            int       `json:"type"`
}

// MessageReactionRemove is the payload of MESSAGE_REACTION_REMOVE.
type MessageReactionRemove struct {
	UserID    Snowflake `json:"user_id"`
	ChannelID Snowflake `json:"channel_id"`
	MessageID Snowflake `json:"message_id"`
	GuildID   Snowflake `json:"guild_id,omitempty"`
	Emoji     Emoji     `json:"emoji"`
	Burst     bool      `json:"burst"`
	Type      int       `json:"type"`
}

// MessageReactionRemoveAll is the payload of MESSAGE_REACTION_REMOVE_ALL.
type MessageReactionRemoveAll struct {
	ChannelID Snowflake `json:"channel_id"`
	MessageID Snowflake `json:"message_id"`
	GuildID   Snowflake `json:"guild_id,omitempty"`
}

// MessageReactionRemoveEmoji is the payload of MESSAGE_REACTION_REMOVE_EMOJI.
type MessageReactionRemoveEmoji struct {
	ChannelID Snowflake `json:"channel_id"`
	GuildID   Snowflake `json:"guild_id,omitempty"`
	MessageID Snowflake `json:"message_id"`
	Emoji     Emoji     `json:"emoji"`
}

// MessageAck is the payload of MESSAGE_ACK, sent to a user's sessions when one
// of them marks a channel read up to a message (Discord does not document it;
// this is what its clients receive).
type MessageAck struct {
	ChannelID Snowflake `json:"channel_id"`
	MessageID Snowflake `json:"message_id"`
	Version   int64     `json:"version"`
}

// ReadState is how far a user has read one channel: the last message acknowledged
// and how many messages after it mention the user. It is an entry of READY's
// read_state.
type ReadState struct {
	ChannelID     Snowflake `json:"id"`
	LastMessageID Snowflake `json:"last_message_id"`
	MentionCount  int       `json:"mention_count"`
	// Version orders a user's acks of one channel: the highest wins.
	Version int64 `json:"-"`
}

// Channel types of direct messages (Discord's numbering).
const (
	ChannelTypeDM      = 1
	ChannelTypeGroupDM = 3
)

// MaxGroupDMRecipients is Discord's limit on the members of a group DM, its
// creator included.
const MaxGroupDMRecipients = 10

// PrivateChannel is a direct-message channel: a DM between two users, or a group
// DM. It belongs to no guild. Recipients are every participant; the JSON a user
// receives (see For) lists the others only, as Discord does.
type PrivateChannel struct {
	ID            Snowflake  `json:"id"`
	Type          int        `json:"type"`
	LastMessageID *Snowflake `json:"last_message_id"`
	Recipients    []User     `json:"recipients"`
	Name          *string    `json:"name,omitempty"`
	Icon          *string    `json:"icon,omitempty"`
	OwnerID       Snowflake  `json:"owner_id,omitempty"`
	Flags         int        `json:"flags"`
}

// Has reports whether user id takes part in the channel.
func (c *PrivateChannel) Has(id Snowflake) bool {
	for _, u := range c.Recipients {
		if u.ID == id {
			return true
		}
	}
	return false
}

// For is the channel as viewer sees it: every participant but the viewer.
func (c PrivateChannel) For(viewer Snowflake) PrivateChannel {
	others := make([]User, 0, len(c.Recipients))
	for _, u := range c.Recipients {
		if u.ID != viewer {
			others = append(others, u)
		}
	}
	c.Recipients = others
	return c
}

// ChannelRecipientRemove is the data of CHANNEL_RECIPIENT_REMOVE: user left
// (or was taken out of) the group DM channel_id. The other participants
// receive it; the one who left receives CHANNEL_DELETE.
type ChannelRecipientRemove struct {
	ChannelID Snowflake `json:"channel_id"`
	User      User      `json:"user"`
}

// Without is the group DM after user id left it: id is no longer a recipient,
// and if id owned it, the first remaining recipient owns it (Discord passes a
// group on the same way). The recipients are copied, never shared with c.
func (c PrivateChannel) Without(id Snowflake) PrivateChannel {
	rest := make([]User, 0, len(c.Recipients))
	for _, u := range c.Recipients {
		if u.ID != id {
			rest = append(rest, u)
		}
	}
	c.Recipients = rest
	if c.OwnerID == id {
		c.OwnerID = 0
		if len(rest) > 0 {
			c.OwnerID = rest[0].ID
		}
	}
	return c
}

// MarshalJSON writes a message in Discord's shape: a reply whose message is
// gone has "referenced_message": null (Discord's way of saying it was deleted;
// the field left out means "not looked up").
func (m Message) MarshalJSON() ([]byte, error) {
	type plain Message // the same fields, without this method
	b, err := json.Marshal(plain(m))
	if err != nil || m.Type != MessageTypeReply || m.MessageReference == nil || m.ReferencedMessage != nil {
		return b, err
	}
	return append(b[:len(b)-1], `,"referenced_message":null}`...), nil
}
