package bolt

import (
	"bytes"
	"context"
	"encoding/json"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
)

func (s *Store) PutGuild(ctx context.Context, g guildhall.Guild) error {
	// The count belongs to member_counts (kept by PutMember); storing the
	// caller's copy would let a stale value shadow it.
	g.MemberCount = 0
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bGuilds), u64(uint64(g.ID)), g)
	})
}

func (s *Store) Guild(ctx context.Context, id guildhall.Snowflake) (guildhall.Guild, error) {
	var g guildhall.Guild
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if err := getJSON(tx.Bucket(bGuilds), u64(uint64(id)), &g, "guild "+id.String()); err != nil {
			return err
		}
		g.MemberCount = memberCount(tx, id)
		return nil
	})
	return g, err
}

func (s *Store) PutChannel(ctx context.Context, c guildhall.Channel) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		chans, index := tx.Bucket(bChannels), tx.Bucket(bGuildChannels)
		id := u64(uint64(c.ID))
		// A replace may move the channel to another guild: drop the old index
		// entry or the old guild would keep listing it.
		var old guildhall.Channel
		if err := getJSON(chans, id, &old, "channel"); err == nil && old.GuildID != c.GuildID {
			if err := index.Delete(key2(old.GuildID, old.ID)); err != nil {
				return err
			}
		}
		if err := index.Put(key2(c.GuildID, c.ID), []byte{}); err != nil {
			return err
		}
		return putJSON(chans, id, c)
	})
}

func (s *Store) Channel(ctx context.Context, id guildhall.Snowflake) (guildhall.Channel, error) {
	var c guildhall.Channel
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bChannels), u64(uint64(id)), &c, "channel "+id.String())
	})
	return c, err
}

func (s *Store) Channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	var out []guildhall.Channel
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		chans := tx.Bucket(bChannels)
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bGuildChannels).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var ch guildhall.Channel
			if err := getJSON(chans, k[8:16], &ch, "channel"); err != nil {
				return err
			}
			out = append(out, ch)
		}
		return nil
	})
	// Positions change on every reorder, so they are not part of the key; a
	// guild has at most a few hundred channels, sorting them here is cheap.
	guildhall.SortChannels(out)
	return out, err
}

func (s *Store) PutRole(ctx context.Context, guildID guildhall.Snowflake, r guildhall.Role) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bRoles), key2(guildID, r.ID), r)
	})
}

// Roles lists a guild's roles by id ascending (key order; the contract does not
// fix an order, callers sort by Position when they care).
func (s *Store) Roles(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Role, error) {
	var out []guildhall.Role
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bRoles).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r guildhall.Role
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
