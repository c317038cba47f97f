package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// The guild_invites index and its key are in accounts.go, with the other
// indexes that old files get built when they open.

func (s *Store) PutInvite(ctx context.Context, inv guildhall.Invite) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bGuildInvites).Put(guildInviteKey(inv.GuildID, inv.Code), nil); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bInvites), []byte(inv.Code), inv)
	})
}

// JoinGuild checks and writes in one transaction, so concurrent joins share
// db.Batch commits instead of each waiting for two. The refusals are results, not
// errors of the closure: an error would roll back and re-run the whole batch.
func (s *Store) JoinGuild(ctx context.Context, m guildhall.Member, code string) (guildhall.Invite, bool, error) {
	var inv guildhall.Invite
	var joined bool
	var refused error
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		inv, joined, refused = guildhall.Invite{}, false, nil // db.Batch may run this twice
		invites := tx.Bucket(bInvites)
		if refused = getJSON(invites, []byte(code), &inv, "invite "+code); refused != nil {
			if errors.Is(refused, messaging.ErrNotFound) {
				return nil
			}
			return refused
		}
		if tx.Bucket(bMembers).Get(key2(m.GuildID, m.User.ID)) != nil {
			return nil
		}
		if inv.MaxUses > 0 && inv.Uses >= inv.MaxUses {
			refused = fmt.Errorf("invite %s: %w", code, messaging.ErrInviteUsedUp)
			return nil
		}
		if err := putMember(tx, m); err != nil {
			return err
		}
		inv.Uses++
		joined = true
		return putJSON(invites, []byte(code), inv)
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return guildhall.Invite{}, false, err
	}
	return inv, joined, nil
}

func (s *Store) Invite(ctx context.Context, code string) (guildhall.Invite, error) {
	var inv guildhall.Invite
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bInvites), []byte(code), &inv, "invite "+code)
	})
	return inv, err
}

func (s *Store) GuildInvites(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Invite, error) {
	out := []guildhall.Invite{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		invites := tx.Bucket(bInvites)
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bGuildInvites).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var inv guildhall.Invite
			if err := getJSON(invites, k[8:], &inv, "invite"); err != nil {
				return err
			}
			out = append(out, inv)
		}
		return nil
	})
	return out, err
}

func (s *Store) DeleteInvite(ctx context.Context, code string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		invites := tx.Bucket(bInvites)
		var inv guildhall.Invite
		if err := getJSON(invites, []byte(code), &inv, "invite "+code); err != nil {
			return err
		}
		if err := tx.Bucket(bGuildInvites).Delete(guildInviteKey(inv.GuildID, code)); err != nil {
			return err
		}
		return invites.Delete([]byte(code))
	})
}
