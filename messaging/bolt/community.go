package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// messaging.CommunityStore: deletes, bans, the audit log, pins. A guild's
// invites are in invites.go.

// ---- deletes

func (s *Store) DeleteChannel(ctx context.Context, id guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		chans := tx.Bucket(bChannels)
		var c guildhall.Channel
		if err := getJSON(chans, u64(uint64(id)), &c, "channel "+id.String()); err != nil {
			return err
		}
		if err := tx.Bucket(bGuildChannels).Delete(key2(c.GuildID, c.ID)); err != nil {
			return err
		}
		return chans.Delete(u64(uint64(id)))
	})
}

func (s *Store) DeleteRole(ctx context.Context, guildID, roleID guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		roles := tx.Bucket(bRoles)
		k := key2(guildID, roleID)
		if roles.Get(k) == nil {
			return fmt.Errorf("role %v of guild %v: %w", roleID, guildID, messaging.ErrNotFound)
		}
		return roles.Delete(k)
	})
}

func (s *Store) RemoveMember(ctx context.Context, guildID, userID guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		removed, err := removeMember(tx, guildID, userID)
		if err == nil && !removed {
			err = fmt.Errorf("member %v of guild %v: %w", userID, guildID, messaging.ErrNotFound)
		}
		return err
	})
}

// removeMember deletes a membership, counts it out and drops the reverse index
// entry; removed is false when there was none.
func removeMember(tx *bbolt.Tx, guildID, userID guildhall.Snowflake) (removed bool, err error) {
	members := tx.Bucket(bMembers)
	k := key2(guildID, userID)
	if members.Get(k) == nil {
		return false, nil
	}
	if err := members.Delete(k); err != nil {
		return false, err
	}
	n := max(0, memberCount(tx, guildID)-1)
	if err := tx.Bucket(bMemberCounts).Put(u64(uint64(guildID)), u64(uint64(n))); err != nil {
		return false, err
	}
	return true, tx.Bucket(bUserGuilds).Delete(key2(userID, guildID))
}

// DeleteGuild runs in one transaction: the embedded store's guilds are as large
// as one process serves.
func (s *Store) DeleteGuild(ctx context.Context, id guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		gid := u64(uint64(id))
		for _, ch := range prefixKeys(tx.Bucket(bGuildChannels), gid) {
			if err := tx.Bucket(bChannels).Delete(ch[8:16]); err != nil {
				return err
			}
		}
		for _, k := range prefixKeys(tx.Bucket(bMembers), gid) {
			if err := tx.Bucket(bUserGuilds).Delete(key2(idAt(k, 8), id)); err != nil {
				return err
			}
		}
		for _, k := range prefixKeys(tx.Bucket(bGuildInvites), gid) {
			if err := tx.Bucket(bInvites).Delete(k[8:]); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bGuildChannels, bMembers, bGuildInvites, bRoles, bBans} {
			for _, k := range prefixKeys(tx.Bucket(b), gid) {
				if err := tx.Bucket(b).Delete(k); err != nil {
					return err
				}
			}
		}
		if err := tx.Bucket(bMemberCounts).Delete(gid); err != nil {
			return err
		}
		return tx.Bucket(bGuilds).Delete(gid)
	})
}

// prefixKeys copies the keys of b that start with prefix (deleting while a cursor
// walks would skip keys).
func prefixKeys(b *bbolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// ---- bans

func (s *Store) PutBan(ctx context.Context, b guildhall.Ban) (bool, error) {
	var wasMember bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		wasMember = false // db.Batch may run this twice
		if err := putJSON(tx.Bucket(bBans), key2(b.GuildID, b.User.ID), b); err != nil {
			return err
		}
		var err error
		wasMember, err = removeMember(tx, b.GuildID, b.User.ID)
		return err
	})
	return wasMember, err
}

func (s *Store) Ban(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Ban, error) {
	var b guildhall.Ban
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bBans), key2(guildID, userID), &b, "ban of "+userID.String())
	})
	return b, err
}

func (s *Store) DeleteBan(ctx context.Context, guildID, userID guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		bans := tx.Bucket(bBans)
		k := key2(guildID, userID)
		if bans.Get(k) == nil {
			return fmt.Errorf("ban of %v in guild %v: %w", userID, guildID, messaging.ErrNotFound)
		}
		return bans.Delete(k)
	})
}

func (s *Store) Bans(ctx context.Context, guildID guildhall.Snowflake, q messaging.BanQuery) ([]guildhall.Ban, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []guildhall.Ban{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bBans).Cursor()
		var k, v []byte
		step := c.Next
		if q.Before != 0 {
			// The Limit bans just below Before, walked down then flipped.
			if k, _ = c.Seek(key2(guildID, q.Before)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			step = c.Prev
		} else {
			k, v = c.Seek(key2(guildID, q.After))
			if k != nil && bytes.HasPrefix(k, prefix) && idAt(k, 8) == q.After {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < q.Limit; k, v = step() {
			var b guildhall.Ban
			if err := json.Unmarshal(v, &b); err != nil {
				return err
			}
			out = append(out, b)
		}
		if q.Before != 0 {
			slices.Reverse(out)
		}
		return nil
	})
	return out, err
}

// ---- audit log

func (s *Store) PutAuditEntry(ctx context.Context, e guildhall.AuditLogEntry) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bAudit), key2(e.GuildID, e.ID), e)
	})
}

func (s *Store) AuditLog(ctx context.Context, guildID guildhall.Snowflake, q messaging.AuditQuery) ([]guildhall.AuditLogEntry, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []guildhall.AuditLogEntry{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bAudit).Cursor()
		var k, v []byte
		var step func() ([]byte, []byte)
		if q.Ascending {
			k, v = c.Seek(key2(guildID, q.After+1))
			step = c.Next
		} else {
			if k, _ = c.Seek(key2(guildID, q.Before)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			step = c.Prev
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < q.Limit; k, v = step() {
			id := idAt(k, 8)
			if id <= q.After || id >= q.Before {
				break
			}
			var e guildhall.AuditLogEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if auditMatches(e, q) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

func auditMatches(e guildhall.AuditLogEntry, q messaging.AuditQuery) bool {
	if q.ActionType != 0 && e.ActionType != q.ActionType {
		return false
	}
	return q.UserID == 0 || (e.UserID != nil && *e.UserID == q.UserID)
}

// ---- pins

// applyPin writes a pin's state unless a pin of a later Seq is there already.
func applyPin(pins *bbolt.Bucket, k []byte, w messaging.MessageWrite) error {
	if cur := pins.Get(k); cur != nil && binary.BigEndian.Uint64(cur) >= w.Seq {
		return nil
	}
	var at uint64
	if w.Pin.Pinned {
		at = uint64(max(1, w.Pin.At.UnixMilli())) // 0 means unpinned
	}
	return pins.Put(k, append(u64(w.Seq), u64(at)...))
}

// pinnedAt reads a message_pins value.
func pinnedAt(v []byte) (time.Time, bool) {
	if len(v) < 16 {
		return time.Time{}, false
	}
	ms := binary.BigEndian.Uint64(v[8:16])
	if ms == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}

func (s *Store) Pins(ctx context.Context, channelID guildhall.Snowflake, limit int) ([]messaging.PinnedMessage, error) {
	if limit < 1 || limit > messaging.MaxPinsRead {
		return nil, fmt.Errorf("pins: limit must be 1..%d", messaging.MaxPinsRead)
	}
	out := []messaging.PinnedMessage{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		msgs, pins := tx.Bucket(bMessages), tx.Bucket(bPins)
		prefix := u64(uint64(channelID))
		c := pins.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			at, ok := pinnedAt(v)
			if !ok {
				continue
			}
			mv := msgs.Get(k)
			if mv == nil {
				continue // pinned before its create was applied (a redelivery)
			}
			m, err := decodeMessage(pins, k, mv)
			if err != nil {
				return err
			}
			out = append(out, messaging.PinnedMessage{Message: m, PinnedAt: at})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b messaging.PinnedMessage) int {
		if c := b.PinnedAt.Compare(a.PinnedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.Message.ID, a.Message.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}
