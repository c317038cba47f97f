package messaging

import (
	"context"

	guildhall "github.com/guildhall/guildhall"
)

// AccountStore is the part of the Store that revoking tokens, changing
// passwords and listing a user's bots need. Every Store has it. (A guild's
// invites, which the invite caps count, are CommunityStore's.)
type AccountStore interface {
	// DeleteToken removes one token (by its hash). Removing a token that does
	// not exist is no error.
	DeleteToken(ctx context.Context, tokenHash string) error
	// DeleteUserTokens removes every token of the user except keep ("" keeps
	// none) and returns the hashes it removed. Tokens put concurrently with it
	// may survive; callers revoke before they mint.
	DeleteUserTokens(ctx context.Context, userID guildhall.Snowflake, keep string) ([]string, error)
	// SetPasswordHash replaces an account's password hash; ErrNotFound if there
	// is no such account.
	SetPasswordHash(ctx context.Context, userID guildhall.Snowflake, hash string) error
	// Bots lists the bot accounts whose UserRecord.OwnerID is ownerID, by id.
	Bots(ctx context.Context, ownerID guildhall.Snowflake) ([]guildhall.User, error)
}
