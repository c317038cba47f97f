package messaging

import (
	"context"

	guildhall "github.com/guildhall/guildhall"
)

// ConversationStore is the part of Store that conversations need beyond
// messages: reactions, each channel's last message id, read states and
// direct-message channels. Both engines implement it and pass the same contract
// (package storetest).
type ConversationStore interface {
	// Reactions returns the live reactions of messages of a channel (at most
	// MaxReactionsQuery ids): per message, each emoji with its count and whether
	// user me reacted with it, emojis in the order of their earliest live
	// reaction. Messages without reactions are absent from the map.
	Reactions(ctx context.Context, channelID guildhall.Snowflake, messageIDs []guildhall.Snowflake, me guildhall.Snowflake) (map[guildhall.Snowflake][]guildhall.Reaction, error)
	// ReactionUsers pages the users who reacted to a message with emoji, by user
	// id ascending, strictly after the given id, at most limit (1..100) of them.
	ReactionUsers(ctx context.Context, channelID, messageID guildhall.Snowflake, emoji string, after guildhall.Snowflake, limit int) ([]guildhall.Snowflake, error)

	// LastMessageIDs returns, for each channel given (at most
	// MaxLastMessageQuery), the id of the newest message ever written to it,
	// deleted or not, as Discord's last_message_id. Channels without messages are
	// absent.
	LastMessageIDs(ctx context.Context, channelIDs []guildhall.Snowflake) (map[guildhall.Snowflake]guildhall.Snowflake, error)

	// PutReadState records how far a user has read a channel. Of two writes for
	// one (user, channel) the one with the higher Version wins (on a tie, the
	// higher LastMessageID), whatever order they arrive in. MentionCount is not
	// stored.
	PutReadState(ctx context.Context, userID guildhall.Snowflake, rs guildhall.ReadState) error
	// ReadStates lists a user's read states by channel id ascending, with
	// MentionCount zero (it is computed when read, see Service.ReadStates).
	ReadStates(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.ReadState, error)

	// CreatePrivateChannel stores a DM or group DM channel and lists it under
	// each recipient. A DM (ChannelTypeDM, two recipients) is unique per pair of
	// users: if the pair has one already, that one is returned with created
	// false and ch is not stored. LastMessageID is not stored.
	CreatePrivateChannel(ctx context.Context, ch guildhall.PrivateChannel) (out guildhall.PrivateChannel, created bool, err error)
	// PrivateChannel returns a DM or group DM channel; ErrNotFound if there is
	// none with that id.
	PrivateChannel(ctx context.Context, id guildhall.Snowflake) (guildhall.PrivateChannel, error)
	// UserPrivateChannels lists the DM and group DM channels a user takes part
	// in, newest first (by id descending: the time each was opened), at most
	// MaxPrivateChannels of them. Newest first is what keeps a user's new DMs
	// listed however many old ones pile up (someone adding them to group after
	// group).
	UserPrivateChannels(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.PrivateChannel, error)
	// LeavePrivateChannel takes userID out of group DM channelID: out of its
	// recipients and off the user's list. When the owner leaves, the first
	// remaining recipient becomes the owner. The channel is returned as it is
	// after; leaving a group one is not in changes nothing. ErrNotFound when
	// there is no such channel; a DM (ChannelTypeDM) cannot be left (an error):
	// its pair of users is what makes it unique.
	LeavePrivateChannel(ctx context.Context, channelID, userID guildhall.Snowflake) (guildhall.PrivateChannel, error)
}

// Bounds of the ConversationStore queries.
const (
	MaxReactionsQuery   = 100
	MaxLastMessageQuery = 1000
	MaxPrivateChannels  = 1000
)

// ReactionOp is what a ReactionWrite does.
type ReactionOp uint8

const (
	// ReactionAdd: UserID reacted to the message with Emoji.
	ReactionAdd ReactionOp = iota + 1
	// ReactionRemove: UserID's Emoji reaction to the message was removed.
	ReactionRemove
	// ReactionRemoveEmoji: every Emoji reaction to the message was removed.
	ReactionRemoveEmoji
	// ReactionRemoveAll: every reaction to the message was removed.
	ReactionRemoveAll
)

// ReactionWrite is one change to a message's reactions, applied by
// Store.ApplyMessages order-free by the write's stream sequence (Seq):
//   - for one (message, emoji, user), the ReactionAdd or ReactionRemove with the
//     highest Seq decides whether the reaction is there;
//   - a ReactionRemoveEmoji at Seq S removes every reaction with that emoji
//     decided at a Seq below S, and a ReactionRemoveAll every reaction decided
//     below S: an add with a lower Seq that arrives later stays removed, one
//     with a higher Seq counts;
//   - the delete of the message removes its reactions for good.
type ReactionWrite struct {
	Op     ReactionOp
	Emoji  string              // the emoji (ReactionAdd, ReactionRemove, ReactionRemoveEmoji)
	UserID guildhall.Snowflake // who reacted (ReactionAdd, ReactionRemove)
}
