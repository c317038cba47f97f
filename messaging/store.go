package messaging

import (
	"context"
	"errors"
	"fmt"

	guildhall "github.com/guildhall/guildhall"
)

// Store errors, for errors.Is.
var (
	// ErrNotFound: no such user, guild, channel, member, invite or message.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique value is taken (a username).
	ErrConflict = errors.New("store: conflict")
	// ErrInviteUsedUp: the invite has MaxUses and has been used that many times.
	ErrInviteUsedUp = errors.New("store: invite used up")
)

// Store keeps what must outlive every process: accounts, guilds and their channels,
// roles, members and invites, and every message. The api owns it (gateways never
// open it). Two implementations pass the same contract tests (package storetest):
// the embedded bbolt store (package bolt) and CQL for ScyllaDB/Cassandra
// (package cql).
type Store interface {
	// CreateUser adds an account; ErrConflict if the username is taken (usernames
	// compare case-insensitively).
	CreateUser(ctx context.Context, u UserRecord) error
	// UserByName finds an account by username, case-insensitively.
	UserByName(ctx context.Context, username string) (UserRecord, error)
	// User returns the public part of an account.
	User(ctx context.Context, id guildhall.Snowflake) (guildhall.User, error)
	// PutToken maps the hash of a token to its user.
	PutToken(ctx context.Context, tokenHash string, userID guildhall.Snowflake) error
	// UserByToken returns the user a token hash belongs to.
	UserByToken(ctx context.Context, tokenHash string) (guildhall.Snowflake, error)

	// PutGuild creates or replaces a guild's own fields (not its channels or roles).
	PutGuild(ctx context.Context, g guildhall.Guild) error
	Guild(ctx context.Context, id guildhall.Snowflake) (guildhall.Guild, error)
	// PutChannel creates or replaces a channel.
	PutChannel(ctx context.Context, c guildhall.Channel) error
	Channel(ctx context.Context, id guildhall.Snowflake) (guildhall.Channel, error)
	// Channels lists a guild's channels ordered by position, then id.
	Channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error)
	// PutRole creates or replaces a role of a guild.
	PutRole(ctx context.Context, guildID guildhall.Snowflake, r guildhall.Role) error
	Roles(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Role, error)

	// PutMember creates or replaces a membership; m.GuildID and m.User.ID are the key.
	// The guild's member count counts distinct members.
	PutMember(ctx context.Context, m guildhall.Member) error
	// Member returns one membership (with its User filled in).
	Member(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, error)
	// Members pages a guild's members by user id ascending, starting after the given
	// id (0 for the start), at most limit of them. It never loads the whole guild.
	Members(ctx context.Context, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error)
	// MemberCount is the number of members of a guild.
	MemberCount(ctx context.Context, guildID guildhall.Snowflake) (int, error)
	// UserGuilds lists the ids of the guilds a user is a member of, ascending.
	UserGuilds(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.Snowflake, error)

	// PutInvite creates or replaces an invite.
	PutInvite(ctx context.Context, inv guildhall.Invite) error
	Invite(ctx context.Context, code string) (guildhall.Invite, error)
	// JoinGuild is a join by invite: it creates membership m and counts one use of
	// the invite, as one step (so a join costs one commit, not two), and returns the
	// invite after the use. A user who is a member already changes nothing: joined
	// is false and no use is counted. ErrNotFound: no such invite; ErrInviteUsedUp:
	// it has MaxUses uses (expiry by time is the caller's to check). Within one
	// process concurrent joins never count past MaxUses.
	JoinGuild(ctx context.Context, m guildhall.Member, code string) (inv guildhall.Invite, joined bool, err error)

	// ApplyMessages applies message writes in one batch. Each write carries the
	// stream sequence of the event it comes from, and the result must not depend on
	// the order or the number of times writes are applied: for each message the
	// upsert with the highest Seq wins, and a delete is final: once a message is
	// deleted no upsert brings it back, whatever its Seq (message ids are never
	// reused, so an upsert after a delete can only be an edit that raced the
	// delete, or a redelivery). Pins are versioned apart (PinWrite); an upsert's
	// Message.Pinned is not stored, reads fill it from the pin. Reaction writes
	// follow the rules of ReactionWrite, and a message's delete removes its pin
	// and its reactions for good. Every upsert (not a pin or a reaction) also
	// raises the channel's last message id (LastMessageIDs). That is what lets
	// the writer retry and redeliver freely.
	ApplyMessages(ctx context.Context, writes []MessageWrite) error
	// Message returns one message of a channel.
	Message(ctx context.Context, channelID, id guildhall.Snowflake) (guildhall.Message, error)
	// History pages a channel's messages; see HistoryQuery.
	History(ctx context.Context, channelID guildhall.Snowflake, q HistoryQuery) ([]guildhall.Message, error)

	// Reactions, last message ids, read states and direct-message channels: see
	// store_conversations.go.
	ConversationStore

	// Tokens, passwords and bots (store_accounts.go says why: logout, token
	// reset, password change, bots owned by users).
	AccountStore

	// Roles, members, bans, invites, the audit log and pins: store_community.go.
	CommunityStore

	// Close releases the store.
	Close() error
}

// UserRecord is an account with its secret.
type UserRecord struct {
	User         guildhall.User
	PasswordHash string // empty for bots, which log in with tokens only
	// OwnerID is the user who owns a bot (0: the operators, who mint bots with
	// the CLI); Store.Bots lists a user's bots by it. Zero for humans.
	OwnerID guildhall.Snowflake
}

// MessageWrite is one upsert or delete of a message, or one change to its
// reactions, tagged with the stream sequence it comes from.
type MessageWrite struct {
	Seq     uint64
	Delete  bool
	Message guildhall.Message // for a delete, a pin or a reaction, ID and ChannelID are enough
	// Pin, when set, pins or unpins the message and changes nothing else (see
	// PinWrite).
	Pin *PinWrite
	// Reaction, when set, makes the write a change to the reactions of the
	// message (see ReactionWrite) and nothing else: Delete is false, Pin nil.
	Reaction *ReactionWrite
}

// HistoryQuery selects at most Limit messages of a channel, newest first:
//   - Before: messages with id < Before;
//   - After: messages with id > After (the Limit oldest of them, returned newest first,
//     as Discord does);
//   - Around: up to Limit messages around the id, Limit/2 older than it and the rest
//     at or newer than it (the message itself included if it exists), newest first;
//   - none: the newest Limit messages.
//
// At most one of Before, After and Around is set. Limit is 1..100.
type HistoryQuery struct {
	Before, After, Around guildhall.Snowflake
	Limit                 int
}

// Validate checks what every Store requires of a query: Limit in 1..100 and at
// most one of Before, After and Around.
func (q HistoryQuery) Validate() error {
	if q.Limit < 1 || q.Limit > 100 {
		return fmt.Errorf("history: limit %d out of 1..100", q.Limit)
	}
	set := 0
	for _, c := range []guildhall.Snowflake{q.Before, q.After, q.Around} {
		if c != 0 {
			set++
		}
	}
	if set > 1 {
		return errors.New("history: at most one of before, after and around")
	}
	return nil
}
