package guildhall

import "encoding/json"

// Dispatch event names (Discord's), the t field of gateway op 0.
const (
	EventReady             = "READY"
	EventResumed           = "RESUMED"
	EventGuildCreate       = "GUILD_CREATE"
	EventGuildUpdate       = "GUILD_UPDATE"
	EventGuildDelete       = "GUILD_DELETE"
	EventChannelCreate     = "CHANNEL_CREATE"
	EventChannelUpdate     = "CHANNEL_UPDATE"
	EventChannelDelete     = "CHANNEL_DELETE"
	EventGuildMemberAdd    = "GUILD_MEMBER_ADD"
	EventGuildMemberUpdate = "GUILD_MEMBER_UPDATE"
	EventGuildMemberRemove = "GUILD_MEMBER_REMOVE"
	EventGuildMembersChunk = "GUILD_MEMBERS_CHUNK"
	EventGuildRoleCreate   = "GUILD_ROLE_CREATE"
	EventGuildRoleUpdate   = "GUILD_ROLE_UPDATE"
	EventGuildRoleDelete   = "GUILD_ROLE_DELETE"
	EventMessageCreate     = "MESSAGE_CREATE"
	EventMessageUpdate     = "MESSAGE_UPDATE"
	EventMessageDelete     = "MESSAGE_DELETE"
	EventTypingStart       = "TYPING_START"
	EventPresenceUpdate    = "PRESENCE_UPDATE"

	EventMessageReactionAdd         = "MESSAGE_REACTION_ADD"
	EventMessageReactionRemove      = "MESSAGE_REACTION_REMOVE"
	EventMessageReactionRemoveAll   = "MESSAGE_REACTION_REMOVE_ALL"
	EventMessageReactionRemoveEmoji = "MESSAGE_REACTION_REMOVE_EMOJI"
	EventMessageAck                 = "MESSAGE_ACK"
	EventChannelRecipientRemove     = "CHANNEL_RECIPIENT_REMOVE"
)

// EventGuildJoin is no dispatch of Discord's but a user event of Guildhall's: the
// user joined (or created) a guild, Data is its Member (GuildID set). Gateways
// turn it into GUILD_CREATE from the guild's state, which the event does not
// carry: a guild's state can be larger than one stream message.
const EventGuildJoin = "GUILD_JOIN"

// Event is one change as it travels from the api to the stream and from there to
// gateways and the writer. Data is the dispatch payload exactly as clients receive it
// in the d field, so a gateway can frame it without decoding it.
//
// A guild event has GuildID set and goes to every member that may see ChannelID (or
// the whole guild when ChannelID is zero). A user event has GuildID zero and UserID
// set and goes to that user's sessions only (for example the GUILD_CREATE a user
// receives on joining a guild).
type Event struct {
	Type      string
	GuildID   Snowflake
	ChannelID Snowflake
	UserID    Snowflake
	Data      json.RawMessage
	// Requires, when not zero, narrows a guild event to members who have these
	// permissions in ChannelID (or guild-wide): INVITE_CREATE and INVITE_DELETE
	// go only to members who may manage the channel, as on Discord.
	Requires Permissions
	// Pin is set on CHANNEL_PINS_UPDATE for the Writer (see MessagePin).
	Pin *MessagePin
	// Mentions are the users a MESSAGE_CREATE or MESSAGE_UPDATE mentions: they
	// receive its content whatever their intents, as on Discord.
	Mentions []Snowflake
	// Attachments are the files of the messages a MESSAGE_DELETE or
	// MESSAGE_DELETE_BULK deletes: the Writer deletes them once the deletes are
	// stored.
	Attachments []Snowflake
}

// MessageDelete is the payload of MESSAGE_DELETE.
type MessageDelete struct {
	ID        Snowflake `json:"id"`
	ChannelID Snowflake `json:"channel_id"`
	GuildID   Snowflake `json:"guild_id,omitempty"`
}

// GuildMemberRemove is the payload of GUILD_MEMBER_REMOVE.
type GuildMemberRemove struct {
	GuildID Snowflake `json:"guild_id"`
	User    User      `json:"user"`
}

// TypingStart is the payload of TYPING_START.
type TypingStart struct {
	ChannelID Snowflake `json:"channel_id"`
	GuildID   Snowflake `json:"guild_id,omitempty"`
	UserID    Snowflake `json:"user_id"`
	Timestamp int64     `json:"timestamp"`
	Member    *Member   `json:"member,omitempty"`
}

// GuildState is what a gateway needs to know of a guild to route its events and to
// greet a session with GUILD_CREATE: the guild, its channels and its roles. It comes
// from the api (snapshot over NATS request-reply) and is kept current by the guild's
// events. Members are not in it: a guild may have millions.
type GuildState struct {
	Guild    Guild     `json:"guild"`
	Channels []Channel `json:"channels"`
	Roles    []Role    `json:"roles"`
}

// Channel returns the channel with id, if the guild has it.
func (g *GuildState) Channel(id Snowflake) (Channel, bool) {
	for _, c := range g.Channels {
		if c.ID == id {
			return c, true
		}
	}
	return Channel{}, false
}

// CanView reports whether a member with roles may view channel ch of this guild.
func (g *GuildState) CanView(ch Channel, userID Snowflake, memberRoles []Snowflake) bool {
	base := BasePermissions(g.Guild, g.Roles, memberRoles, userID)
	return ChannelPermissions(base, g.Guild.ID, ch, memberRoles, userID).Has(PermViewChannel)
}
