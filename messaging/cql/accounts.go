package cql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// accountsMigration adds the indexes behind messaging.AccountStore and a
// guild's invites (GuildInvites, invites.go). Tokens and bots written before
// it are not in them: such tokens are not revoked by DeleteUserTokens
// (DeleteToken still removes them), such bots have no owner. Invites are
// indexed by cqlIndexInvites, so the caps count them and the lists show them.
var accountsMigration = cqlMigration{
	version: 2,
	name:    "account indexes",
	stmts: []string{
		`CREATE TABLE IF NOT EXISTS {ks}.tokens_by_user (
			user_id bigint, token_hash text,
			PRIMARY KEY (user_id, token_hash)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.bots_by_owner (
			owner_id bigint, bot_id bigint,
			PRIMARY KEY (owner_id, bot_id)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.invites_by_guild (
			guild_id bigint, code text,
			PRIMARY KEY (guild_id, code)
		)`,
	},
	then: cqlIndexInvites,
}

// cqlIndexInvites fills invites_by_guild for invites written before it existed:
// one scan of the invites table, once.
func cqlIndexInvites(ctx context.Context, s *Store) error {
	iter := s.query(ctx, `SELECT code, data FROM {ks}.invites`).PageSize(500).Iter()
	var code string
	var data []byte
	for iter.Scan(&code, &data) {
		var inv guildhall.Invite
		if err := json.Unmarshal(data, &inv); err != nil {
			iter.Close()
			return fmt.Errorf("invite %q: %w", code, err)
		}
		if err := s.write(ctx, `INSERT INTO {ks}.invites_by_guild (guild_id, code) VALUES (?, ?)`, cqlID(inv.GuildID), code); err != nil {
			iter.Close()
			return err
		}
	}
	return iter.Close()
}

var _ messaging.AccountStore = (*Store)(nil)

func (s *Store) CreateUser(ctx context.Context, u messaging.UserRecord) error {
	data, err := json.Marshal(u.User)
	if err != nil {
		return err
	}
	// The username is claimed first, with a lightweight transaction: registration
	// is rare, and uniqueness needs consensus. A retry of the same registration (same
	// id) finds its own claim and carries on.
	name := strings.ToLower(u.User.Username)
	existing := map[string]any{}
	applied, err := s.query(ctx, `INSERT INTO {ks}.usernames (name, user_id) VALUES (?, ?) IF NOT EXISTS`, name, cqlID(u.User.ID)).
		MapScanCAS(existing)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.User.Username, err)
	}
	if owner, _ := existing["user_id"].(int64); !applied && owner != cqlID(u.User.ID) {
		return fmt.Errorf("create user %q: username taken: %w", u.User.Username, messaging.ErrConflict)
	}
	if err := s.write(ctx, `INSERT INTO {ks}.users (id, data, password_hash) VALUES (?, ?, ?)`,
		cqlID(u.User.ID), data, u.PasswordHash); err != nil {
		return fmt.Errorf("create user %q: %w", u.User.Username, err)
	}
	if u.User.Bot && u.OwnerID != 0 {
		if err := s.write(ctx, `INSERT INTO {ks}.bots_by_owner (owner_id, bot_id) VALUES (?, ?)`, cqlID(u.OwnerID), cqlID(u.User.ID)); err != nil {
			return fmt.Errorf("create bot %q: %w", u.User.Username, err)
		}
	}
	return nil
}

func (s *Store) UserByName(ctx context.Context, username string) (messaging.UserRecord, error) {
	var uid int64
	if err := s.query(ctx, `SELECT user_id FROM {ks}.usernames WHERE name = ?`, strings.ToLower(username)).Scan(&uid); err != nil {
		return messaging.UserRecord{}, cqlNotFound(err, "user %q", username)
	}
	return s.userRecord(ctx, guildhall.Snowflake(uid))
}

func (s *Store) userRecord(ctx context.Context, uid guildhall.Snowflake) (messaging.UserRecord, error) {
	var data []byte
	var rec messaging.UserRecord
	if err := s.query(ctx, `SELECT data, password_hash FROM {ks}.users WHERE id = ?`, cqlID(uid)).Scan(&data, &rec.PasswordHash); err != nil {
		return rec, cqlNotFound(err, "user %v", uid)
	}
	if err := json.Unmarshal(data, &rec.User); err != nil {
		return rec, fmt.Errorf("user %v: %w", uid, err)
	}
	rec.User.ID = uid
	return rec, nil
}

func (s *Store) User(ctx context.Context, uid guildhall.Snowflake) (guildhall.User, error) {
	rec, err := s.userRecord(ctx, uid)
	return rec.User, err
}

func (s *Store) PutToken(ctx context.Context, tokenHash string, userID guildhall.Snowflake) error {
	// The index first: a token the index does not list could not be revoked
	// with the rest of the user's.
	if err := s.write(ctx, `INSERT INTO {ks}.tokens_by_user (user_id, token_hash) VALUES (?, ?)`, cqlID(userID), tokenHash); err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.tokens (token_hash, user_id) VALUES (?, ?)`, tokenHash, cqlID(userID))
}

func (s *Store) UserByToken(ctx context.Context, tokenHash string) (guildhall.Snowflake, error) {
	var uid int64
	if err := s.query(ctx, `SELECT user_id FROM {ks}.tokens WHERE token_hash = ?`, tokenHash).Scan(&uid); err != nil {
		return 0, cqlNotFound(err, "token")
	}
	return guildhall.Snowflake(uid), nil
}

func (s *Store) DeleteToken(ctx context.Context, tokenHash string) error {
	var uid int64
	err := s.query(ctx, `SELECT user_id FROM {ks}.tokens WHERE token_hash = ?`, tokenHash).Scan(&uid)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	// The token first: once it is gone nobody authenticates with it, whatever
	// happens to the index row.
	if err := s.write(ctx, `DELETE FROM {ks}.tokens WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return s.write(ctx, `DELETE FROM {ks}.tokens_by_user WHERE user_id = ? AND token_hash = ?`, uid, tokenHash)
}

func (s *Store) DeleteUserTokens(ctx context.Context, userID guildhall.Snowflake, keep string) ([]string, error) {
	iter := s.query(ctx, `SELECT token_hash FROM {ks}.tokens_by_user WHERE user_id = ?`, cqlID(userID)).Iter()
	var hashes []string
	var h string
	for iter.Scan(&h) {
		if h != keep {
			hashes = append(hashes, h)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("tokens of user %v: %w", userID, err)
	}
	for i, h := range hashes {
		if err := s.write(ctx, `DELETE FROM {ks}.tokens WHERE token_hash = ?`, h); err != nil {
			return hashes[:i], fmt.Errorf("delete token: %w", err)
		}
		if err := s.write(ctx, `DELETE FROM {ks}.tokens_by_user WHERE user_id = ? AND token_hash = ?`, cqlID(userID), h); err != nil {
			return hashes[:i+1], fmt.Errorf("delete token index: %w", err)
		}
	}
	return hashes, nil
}

func (s *Store) SetPasswordHash(ctx context.Context, userID guildhall.Snowflake, hash string) error {
	var id int64
	if err := s.query(ctx, `SELECT id FROM {ks}.users WHERE id = ?`, cqlID(userID)).Scan(&id); err != nil {
		return cqlNotFound(err, "user %v", userID)
	}
	return s.write(ctx, `UPDATE {ks}.users SET password_hash = ? WHERE id = ?`, hash, cqlID(userID))
}

func (s *Store) Bots(ctx context.Context, ownerID guildhall.Snowflake) ([]guildhall.User, error) {
	iter := s.query(ctx, `SELECT bot_id FROM {ks}.bots_by_owner WHERE owner_id = ?`, cqlID(ownerID)).Iter()
	var ids []int64
	var id int64
	for iter.Scan(&id) {
		ids = append(ids, id)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("bots of %v: %w", ownerID, err)
	}
	out := make([]guildhall.User, 0, len(ids))
	for _, id := range ids {
		u, err := s.User(ctx, guildhall.Snowflake(id))
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
