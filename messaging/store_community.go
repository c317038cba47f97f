package messaging

import (
	"context"
	"errors"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// CommunityStore is the part of the Store that running a community needs:
// deleting what guilds are made of, bans, the guild's invites, the audit log and
// pins. Every Store is one (Store embeds it); package storetest holds both
// engines to the same contract.
type CommunityStore interface {
	// DeleteChannel removes a channel and its place in the guild's list. Its
	// messages stay in the store, unreachable. ErrNotFound if there was none.
	DeleteChannel(ctx context.Context, id guildhall.Snowflake) error
	// DeleteRole removes a role of a guild. Memberships keep listing its id;
	// readers ignore ids of roles that do not exist (guildhall.ExistingRoles).
	// ErrNotFound if there was none.
	DeleteRole(ctx context.Context, guildID, roleID guildhall.Snowflake) error
	// RemoveMember ends a membership: the member count counts it out and the
	// guild leaves the user's list. ErrNotFound if there was none.
	RemoveMember(ctx context.Context, guildID, userID guildhall.Snowflake) error
	// DeleteGuild removes a guild with its channels, roles, memberships (paging
	// through them, so every member's guild list loses it), invites and bans.
	// Messages and audit entries stay, unreachable. Deleting a guild that does
	// not exist is not an error.
	DeleteGuild(ctx context.Context, id guildhall.Snowflake) error

	// PutBan records a ban (b.GuildID and b.User.ID are the key; a second ban
	// replaces the first) and ends the user's membership if there is one, in
	// that order: a failure between the two leaves a banned member, whom the
	// next PutBan removes. wasMember reports whether a membership ended.
	PutBan(ctx context.Context, b guildhall.Ban) (wasMember bool, err error)
	// Ban returns one ban (User as it was when banned): ErrNotFound if none.
	Ban(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Ban, error)
	// DeleteBan lifts a ban: ErrNotFound if there was none.
	DeleteBan(ctx context.Context, guildID, userID guildhall.Snowflake) error
	// Bans pages a guild's bans by user id ascending; see BanQuery.
	Bans(ctx context.Context, guildID guildhall.Snowflake, q BanQuery) ([]guildhall.Ban, error)

	// GuildInvites lists every invite of a guild, each once, in no particular
	// order: expired and used-up ones included, until DeleteInvite. The invite
	// caps count them and the api's invite lists read them (both index the
	// guild's invites on the side; stores built before the index existed build
	// it when they open).
	GuildInvites(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Invite, error)
	// DeleteInvite removes an invite: ErrNotFound if there was none (callers
	// that only clean up ignore it).
	DeleteInvite(ctx context.Context, code string) error

	// PutAuditEntry records an audit log entry (e.GuildID and e.ID are the key).
	PutAuditEntry(ctx context.Context, e guildhall.AuditLogEntry) error
	// AuditLog pages a guild's audit log; see AuditQuery.
	AuditLog(ctx context.Context, guildID guildhall.Snowflake, q AuditQuery) ([]guildhall.AuditLogEntry, error)

	// Pins lists a channel's pinned messages (Pinned set), the most recently
	// pinned first, at most limit of them (1..MaxPinsRead). Pins are written by
	// ApplyMessages (MessageWrite.Pin).
	Pins(ctx context.Context, channelID guildhall.Snowflake, limit int) ([]PinnedMessage, error)
}

// MaxPinsRead bounds one Pins call. Guildhall allows 50 pins per channel;
// concurrent pins may pass that by a few.
const MaxPinsRead = 100

// PinnedMessage is a pinned message and when it was pinned.
type PinnedMessage struct {
	Message  guildhall.Message
	PinnedAt time.Time
}

// PinWrite changes only whether a message is pinned. Pins are versioned apart
// from the message's content: the pin with the highest Seq wins among pins, the
// upsert with the highest Seq among upserts, so an edit never unpins a message
// and a pin never undoes an edit. A delete is final for both.
type PinWrite struct {
	Pinned bool
	// At is when it was pinned (kept to the millisecond).
	At time.Time
}

// BanQuery selects at most Limit (1..1000) bans by user id ascending: with Before
// the Limit ids just below it, else those above After (0: from the first).
type BanQuery struct {
	Before, After guildhall.Snowflake
	Limit         int
}

// Validate checks what every Store requires of a query.
func (q BanQuery) Validate() error {
	if q.Limit < 1 || q.Limit > 1000 {
		return errors.New("bans: limit must be 1..1000")
	}
	return nil
}

// AuditQuery selects at most Limit (1..100) entries of a guild's audit log with
// After < id < Before, both required (the api never looks further back than
// guildhall.AuditLogRetention: the CQL engine reads one partition per 10-day
// bucket the range spans): the newest first, or the
// oldest first when Ascending. UserID and ActionType, when not zero, keep only
// the entries of that user and action.
type AuditQuery struct {
	Before, After guildhall.Snowflake
	Ascending     bool
	UserID        guildhall.Snowflake
	ActionType    int
	Limit         int
}

// Validate checks what every Store requires of a query.
func (q AuditQuery) Validate() error {
	if q.Limit < 1 || q.Limit > 100 {
		return errors.New("audit log: limit must be 1..100")
	}
	if q.After == 0 || q.After >= q.Before {
		return errors.New("audit log: need 0 < After < Before")
	}
	return nil
}
