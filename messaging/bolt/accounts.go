package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Indexes added after the first layout: a user's tokens and a user's bots
// (messaging.AccountStore), a guild's invites (messaging.CommunityStore's
// GuildInvites, invites.go). Files written before they existed get them
// built from the tokens and invites buckets at the first Open that lacks them
// (bots of that time have no owner to index).
var (
	bUserTokens   = []byte("user_tokens")
	bBotOwners    = []byte("bot_owners")
	bGuildInvites = []byte("guild_invites")
)

func userTokenKey(userID guildhall.Snowflake, hash string) []byte {
	return append(u64(uint64(userID)), hash...)
}

func guildInviteKey(guildID guildhall.Snowflake, code string) []byte {
	return append(u64(uint64(guildID)), code...)
}

// openIndexes creates the indexes above, building each from its source bucket
// when it is new.
func openIndexes(tx *bbolt.Tx) error {
	if tx.Bucket(bUserTokens) == nil {
		idx, err := tx.CreateBucket(bUserTokens)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bTokens).ForEach(func(hash, user []byte) error {
			return idx.Put(userTokenKey(idAt(user, 0), string(hash)), nil)
		}); err != nil {
			return err
		}
	}
	if tx.Bucket(bGuildInvites) == nil {
		idx, err := tx.CreateBucket(bGuildInvites)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bInvites).ForEach(func(code, v []byte) error {
			var inv guildhall.Invite
			if err := json.Unmarshal(v, &inv); err != nil {
				return fmt.Errorf("invite %s: %w", code, err)
			}
			return idx.Put(guildInviteKey(inv.GuildID, string(code)), nil)
		}); err != nil {
			return err
		}
	}
	_, err := tx.CreateBucketIfNotExists(bBotOwners)
	return err
}

// boltUser is the stored account. It has its own JSON tags (messaging.UserRecord has none)
// so renaming a Go field does not change the file format.
type boltUser struct {
	User         guildhall.User `json:"user"`
	PasswordHash string         `json:"password_hash,omitempty"`
}

// foldUsername is the uniqueness key of a username. strings.ToLower, not full
// Unicode case folding: the CQL store must compute the very same key, and ToLower
// is the simplest rule both can share.
func foldUsername(name string) []byte { return []byte(strings.ToLower(name)) }

func (s *Store) CreateUser(ctx context.Context, u messaging.UserRecord) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		names, users := tx.Bucket(bUsernames), tx.Bucket(bUsers)
		name := foldUsername(u.User.Username)
		if names.Get(name) != nil {
			return fmt.Errorf("username %q: %w", u.User.Username, messaging.ErrConflict)
		}
		id := u64(uint64(u.User.ID))
		if users.Get(id) != nil {
			// Overwriting would orphan the old username's index entry.
			return fmt.Errorf("user %v: %w", u.User.ID, messaging.ErrConflict)
		}
		if err := names.Put(name, id); err != nil {
			return err
		}
		if u.User.Bot && u.OwnerID != 0 {
			if err := tx.Bucket(bBotOwners).Put(key2(u.OwnerID, u.User.ID), nil); err != nil {
				return err
			}
		}
		return putJSON(users, id, boltUser{User: u.User, PasswordHash: u.PasswordHash})
	})
}

func (s *Store) UserByName(ctx context.Context, username string) (messaging.UserRecord, error) {
	var rec boltUser
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bUsernames).Get(foldUsername(username))
		if id == nil {
			return fmt.Errorf("username %q: %w", username, messaging.ErrNotFound)
		}
		return getJSON(tx.Bucket(bUsers), id, &rec, "user")
	})
	return messaging.UserRecord{User: rec.User, PasswordHash: rec.PasswordHash}, err
}

func (s *Store) User(ctx context.Context, id guildhall.Snowflake) (guildhall.User, error) {
	var rec boltUser
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bUsers), u64(uint64(id)), &rec, "user "+id.String())
	})
	return rec.User, err
}

func (s *Store) PutToken(ctx context.Context, tokenHash string, userID guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bUserTokens).Put(userTokenKey(userID, tokenHash), nil); err != nil {
			return err
		}
		return tx.Bucket(bTokens).Put([]byte(tokenHash), u64(uint64(userID)))
	})
}

func (s *Store) UserByToken(ctx context.Context, tokenHash string) (guildhall.Snowflake, error) {
	var id guildhall.Snowflake
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bTokens).Get([]byte(tokenHash))
		if v == nil {
			return fmt.Errorf("token: %w", messaging.ErrNotFound)
		}
		id = idAt(v, 0)
		return nil
	})
	return id, err
}

func (s *Store) DeleteToken(ctx context.Context, tokenHash string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		tokens := tx.Bucket(bTokens)
		user := tokens.Get([]byte(tokenHash))
		if user == nil {
			return nil
		}
		if err := tx.Bucket(bUserTokens).Delete(userTokenKey(idAt(user, 0), tokenHash)); err != nil {
			return err
		}
		return tokens.Delete([]byte(tokenHash))
	})
}

func (s *Store) DeleteUserTokens(ctx context.Context, userID guildhall.Snowflake, keep string) ([]string, error) {
	var removed []string
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		removed = removed[:0] // db.Batch may run this twice
		idx, tokens := tx.Bucket(bUserTokens), tx.Bucket(bTokens)
		prefix := u64(uint64(userID))
		var keys [][]byte
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if h := string(k[8:]); h != keep {
				keys = append(keys, bytes.Clone(k))
			}
		}
		for _, k := range keys {
			if err := idx.Delete(k); err != nil {
				return err
			}
			if err := tokens.Delete(k[8:]); err != nil {
				return err
			}
			removed = append(removed, string(k[8:]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

func (s *Store) SetPasswordHash(ctx context.Context, userID guildhall.Snowflake, hash string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		users := tx.Bucket(bUsers)
		var rec boltUser
		if err := getJSON(users, u64(uint64(userID)), &rec, "user "+userID.String()); err != nil {
			return err
		}
		rec.PasswordHash = hash
		return putJSON(users, u64(uint64(userID)), rec)
	})
}

func (s *Store) Bots(ctx context.Context, ownerID guildhall.Snowflake) ([]guildhall.User, error) {
	var out []guildhall.User
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		users := tx.Bucket(bUsers)
		prefix := u64(uint64(ownerID))
		c := tx.Bucket(bBotOwners).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var rec boltUser
			if err := getJSON(users, k[8:16], &rec, "bot"); err != nil {
				return err
			}
			out = append(out, rec.User)
		}
		return nil
	})
	return out, err
}

var _ messaging.AccountStore = (*Store)(nil)
