package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// memberCount reads the maintained count; 0 for a guild nobody joined.
func memberCount(tx *bbolt.Tx, guildID guildhall.Snowflake) int {
	v := tx.Bucket(bMemberCounts).Get(u64(uint64(guildID)))
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

func (s *Store) PutMember(ctx context.Context, m guildhall.Member) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return putMember(tx, m) })
}

func putMember(tx *bbolt.Tx, m guildhall.Member) error {
	members := tx.Bucket(bMembers)
	k := key2(m.GuildID, m.User.ID)
	// Count only new keys: a replace (nick change, role change) must not
	// inflate the count. This read-then-write is safe because bbolt
	// serializes writers.
	if members.Get(k) == nil {
		n := memberCount(tx, m.GuildID) + 1
		if err := tx.Bucket(bMemberCounts).Put(u64(uint64(m.GuildID)), u64(uint64(n))); err != nil {
			return err
		}
		if err := tx.Bucket(bUserGuilds).Put(key2(m.User.ID, m.GuildID), []byte{}); err != nil {
			return err
		}
	}
	return putJSON(members, k, m)
}

// fillMember decodes a stored membership and refreshes its User from the users
// bucket: the copy taken at join time goes stale when the user renames, the
// account is the source of truth. A member without an account (imported, or a
// test) keeps the stored copy.
func fillMember(tx *bbolt.Tx, k, v []byte) (guildhall.Member, error) {
	var m guildhall.Member
	if err := json.Unmarshal(v, &m); err != nil {
		return m, err
	}
	m.GuildID, m.User.ID = idAt(k, 0), idAt(k, 8)
	if data := tx.Bucket(bUsers).Get(k[8:16]); data != nil {
		var rec boltUser
		if err := json.Unmarshal(data, &rec); err != nil {
			return m, err
		}
		m.User = rec.User
	}
	return m, nil
}

func (s *Store) Member(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, error) {
	var m guildhall.Member
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		k := key2(guildID, userID)
		v := tx.Bucket(bMembers).Get(k)
		if v == nil {
			return fmt.Errorf("member %v of guild %v: %w", userID, guildID, messaging.ErrNotFound)
		}
		var err error
		m, err = fillMember(tx, k, v)
		return err
	})
	return m, err
}

func (s *Store) Members(ctx context.Context, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error) {
	out := []guildhall.Member{}
	if limit <= 0 {
		return out, nil
	}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bMembers).Cursor()
		k, v := c.Seek(key2(guildID, after))
		if k != nil && bytes.HasPrefix(k, prefix) && idAt(k, 8) == after {
			k, v = c.Next() // strictly after
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			m, err := fillMember(tx, k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

func (s *Store) MemberCount(ctx context.Context, guildID guildhall.Snowflake) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = memberCount(tx, guildID)
		return nil
	})
	return n, err
}

func (s *Store) UserGuilds(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.Snowflake, error) {
	out := []guildhall.Snowflake{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(userID))
		c := tx.Bucket(bUserGuilds).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, idAt(k, 8))
		}
		return nil
	})
	return out, err
}
