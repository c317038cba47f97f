package guildhall

// Intents is a gateway session's subscription to groups of dispatch events, the
// intents field of IDENTIFY (bit values are Discord's).
type Intents int64

const (
	IntentGuilds                      Intents = 1 << 0
	IntentGuildMembers                Intents = 1 << 1 // privileged on Discord
	IntentGuildModeration             Intents = 1 << 2
	IntentGuildExpressions            Intents = 1 << 3
	IntentGuildIntegrations           Intents = 1 << 4
	IntentGuildWebhooks               Intents = 1 << 5
	IntentGuildInvites                Intents = 1 << 6
	IntentGuildVoiceStates            Intents = 1 << 7
	IntentGuildPresences              Intents = 1 << 8 // privileged on Discord
	IntentGuildMessages               Intents = 1 << 9
	IntentGuildMessageReactions       Intents = 1 << 10
	IntentGuildMessageTyping          Intents = 1 << 11
	IntentDirectMessages              Intents = 1 << 12
	IntentDirectMessageReactions      Intents = 1 << 13
	IntentDirectMessageTyping         Intents = 1 << 14
	IntentMessageContent              Intents = 1 << 15 // privileged on Discord
	IntentGuildScheduledEvents        Intents = 1 << 16
	IntentAutoModerationConfiguration Intents = 1 << 20
	IntentAutoModerationExecution     Intents = 1 << 21
	IntentGuildMessagePolls           Intents = 1 << 24
	IntentDirectMessagePolls          Intents = 1 << 25

	// IntentsAll is every bit Discord defines; IDENTIFY with any other bit is
	// refused (close 4013).
	IntentsAll = 1<<17 - 1 | IntentAutoModerationConfiguration | IntentAutoModerationExecution |
		IntentGuildMessagePolls | IntentDirectMessagePolls
)

// Valid reports whether every bit of i is one Discord defines.
func (i Intents) Valid() bool { return i >= 0 && i&^IntentsAll == 0 }

// EventIntent is the intent a session needs to receive a dispatch of type t; inGuild
// tells guild events from direct-message ones. Zero means none is needed: READY,
// RESUMED, GUILD_MEMBERS_CHUNK (an answer to the session's own request),
// MESSAGE_ACK and a DM's CHANNEL_CREATE (the user's own), and types no intent
// governs.
func EventIntent(t string, inGuild bool) Intents {
	switch t {
	case EventGuildCreate, EventGuildUpdate, EventGuildDelete,
		EventGuildRoleCreate, EventGuildRoleUpdate, EventGuildRoleDelete:
		return IntentGuilds
	case EventChannelCreate, EventChannelUpdate, EventChannelDelete:
		if inGuild {
			return IntentGuilds
		}
		return 0 // a DM channel opened: its participants' own business
	case EventGuildMemberAdd, EventGuildMemberUpdate, EventGuildMemberRemove:
		return IntentGuildMembers
	case EventGuildBanAdd, EventGuildBanRemove:
		return IntentGuildModeration
	case EventInviteCreate, EventInviteDelete:
		return IntentGuildInvites
	case EventChannelPinsUpdate:
		if inGuild {
			return IntentGuilds
		}
		return IntentDirectMessages
	case EventMessageCreate, EventMessageUpdate, EventMessageDelete, EventMessageDeleteBulk:
		if inGuild {
			return IntentGuildMessages
		}
		return IntentDirectMessages
	case EventTypingStart:
		if inGuild {
			return IntentGuildMessageTyping
		}
		return IntentDirectMessageTyping
	case EventPresenceUpdate:
		return IntentGuildPresences
	case EventMessageReactionAdd, EventMessageReactionRemove,
		EventMessageReactionRemoveAll, EventMessageReactionRemoveEmoji:
		if inGuild {
			return IntentGuildMessageReactions
		}
		return IntentDirectMessageReactions
	}
	return 0
}

// CarriesContent reports whether dispatches of type t carry message content, which
// MESSAGE_CONTENT governs.
func CarriesContent(t string) bool { return t == EventMessageCreate || t == EventMessageUpdate }
