package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// ApplyMessages commits the whole batch in one transaction (one fsync for the
// batch, and a failed batch leaves nothing half-applied for the writer to
// reason about). Versioning, per message key:
//
//   - the messages bucket holds the live version with the Seq that wrote it;
//   - the tombstones bucket holds the Seq of the delete of a deleted message;
//   - at most one of the two exists for a key. A delete is final (see messaging.Store):
//     once a tombstone exists no upsert is applied, so the outcome does not
//     depend on order or repetition.
//
// Tombstones are never collected: a message id is 24+8 bytes forever after its
// delete. They could be dropped once older than the stream's redelivery horizon,
// if that ever matters.
func (s *Store) ApplyMessages(ctx context.Context, writes []messaging.MessageWrite) error {
	if len(writes) == 0 {
		return nil
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		msgs, tombs, pins := tx.Bucket(bMessages), tx.Bucket(bTombstones), tx.Bucket(bPins)
		for _, w := range writes {
			if err := applyMessage(msgs, tombs, pins, w); err != nil {
				return err
			}
		}
		return nil
	})
}

func applyMessage(msgs, tombs, pins *bbolt.Bucket, w messaging.MessageWrite) error {
	m := w.Message
	if m.ID == 0 || m.ChannelID == 0 {
		return fmt.Errorf("apply message write seq %d: message id and channel id are required", w.Seq)
	}
	k := msgKey(m.ChannelID, m.ID)
	if !w.Delete && w.Reaction == nil && w.Pin == nil {
		// Written, even if deleted already: the channel's last message id counts it.
		if err := raiseLastMessage(msgs.Tx(), m.ChannelID, m.ID); err != nil {
			return err
		}
	}
	if tombs.Get(k) != nil {
		return nil // deleted: final
	}
	if w.Reaction != nil {
		return applyReaction(msgs.Tx(), m.ChannelID, m.ID, w.Seq, *w.Reaction)
	}
	if w.Delete {
		if err := msgs.Delete(k); err != nil {
			return err
		}
		if err := pins.Delete(k); err != nil {
			return err
		}
		if err := deleteReactions(msgs.Tx(), m.ChannelID, m.ID); err != nil {
			return err
		}
		return tombs.Put(k, u64(w.Seq))
	}
	if w.Pin != nil {
		return applyPin(pins, k, w)
	}
	if cur := msgs.Get(k); cur != nil && binary.BigEndian.Uint64(cur) >= w.Seq {
		return nil // stale or repeated
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return msgs.Put(k, append(u64(w.Seq), data...))
}

// decodeMessage reads a stored message and whether it is pinned (pins is the
// message_pins bucket, k the message's key).
func decodeMessage(pins *bbolt.Bucket, k, v []byte) (guildhall.Message, error) {
	var m guildhall.Message
	err := json.Unmarshal(v[8:], &m)
	_, m.Pinned = pinnedAt(pins.Get(k))
	return m, err
}

func (s *Store) Message(ctx context.Context, channelID, id guildhall.Snowflake) (guildhall.Message, error) {
	var m guildhall.Message
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		k := msgKey(channelID, id)
		v := tx.Bucket(bMessages).Get(k)
		if v == nil {
			return fmt.Errorf("message %v in channel %v: %w", id, channelID, messaging.ErrNotFound)
		}
		var err error
		m, err = decodeMessage(tx.Bucket(bPins), k, v)
		return err
	})
	return m, err
}

// History walks the messages bucket from a Seek. Empty buckets: we keep no
// per-channel index of non-empty buckets, because the B+tree already is one —
// a bucket without messages has no keys, so Seek lands on the nearest existing
// key and a channel quiet for two years costs the same as a busy one (one seek,
// O(log n)). The CQL store cannot do this (a partition is addressed by its exact
// bucket), which is why it keeps an index of a channel's non-empty buckets (package cql).
func (s *Store) History(ctx context.Context, channelID guildhall.Snowflake, q messaging.HistoryQuery) ([]guildhall.Message, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []guildhall.Message{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c, pins := tx.Bucket(bMessages).Cursor(), tx.Bucket(bPins)
		var err error
		switch {
		case q.After != 0:
			if q.After == ^guildhall.Snowflake(0) {
				return nil // nothing can be newer
			}
			out, err = historyUp(c, pins, channelID, q.After+1, q.Limit, out)
			slices.Reverse(out)
		case q.Around != 0:
			// Newer half first (walk up, then flip to newest first), then the
			// older half continues the newest-first order below it.
			out, err = historyUp(c, pins, channelID, q.Around, q.Limit-q.Limit/2, out)
			slices.Reverse(out)
			if err == nil {
				out, err = historyDown(c, pins, channelID, q.Around, q.Limit/2, out)
			}
		default: // Before, or the newest page when Before is 0
			out, err = historyDown(c, pins, channelID, q.Before, q.Limit, out)
		}
		return err
	})
	return out, err
}

// historyDown appends up to n messages of the channel with id < below, newest
// first; below == 0 means no bound (start at the newest).
func historyDown(c *bbolt.Cursor, pins *bbolt.Bucket, channelID, below guildhall.Snowflake, n int, out []guildhall.Message) ([]guildhall.Message, error) {
	if n <= 0 {
		return out, nil
	}
	var seek []byte
	if below == 0 {
		// channel|ff..ff sorts after every real key of the channel (no real
		// bucket is all ones), so Seek lands on the next channel or the end.
		seek = append(u64(uint64(channelID)), bytes.Repeat([]byte{0xff}, 16)...)
	} else {
		seek = msgKey(channelID, below)
	}
	// Seek finds the first key >= seek; the one before it is the newest < seek.
	var k, v []byte
	if first, _ := c.Seek(seek); first == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	prefix := seek[:8]
	for ; k != nil && bytes.HasPrefix(k, prefix) && n > 0; k, v = c.Prev() {
		m, err := decodeMessage(pins, k, v)
		if err != nil {
			return out, err
		}
		out = append(out, m)
		n--
	}
	return out, nil
}

// historyUp appends up to n messages of the channel with id >= from, oldest first.
func historyUp(c *bbolt.Cursor, pins *bbolt.Bucket, channelID, from guildhall.Snowflake, n int, out []guildhall.Message) ([]guildhall.Message, error) {
	if n <= 0 {
		return out, nil
	}
	prefix := u64(uint64(channelID))
	for k, v := c.Seek(msgKey(channelID, from)); k != nil && bytes.HasPrefix(k, prefix) && n > 0; k, v = c.Next() {
		m, err := decodeMessage(pins, k, v)
		if err != nil {
			return out, err
		}
		out = append(out, m)
		n--
	}
	return out, nil
}
