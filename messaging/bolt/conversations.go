package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Reactions, last message ids, read states and direct-message channels (the
// layout is in store.go).

var (
	bReactions           = []byte("reactions")
	bReactionClears      = []byte("reaction_clears")
	bChannelLast         = []byte("channel_last")
	bReadStates          = []byte("read_states")
	bPrivateChannels     = []byte("private_channels")
	bUserPrivateChannels = []byte("user_private_channels")
	bDMPairs             = []byte("dm_pairs")

	conversationBuckets = [][]byte{bReactions, bReactionClears, bChannelLast, bReadStates,
		bPrivateChannels, bUserPrivateChannels, bDMPairs}
)

// ---- reactions
//
// A reaction row keeps the Seq of the add or remove that decided it and whether
// the reaction is there, so a late write with a lower Seq loses. A clear (remove
// all, remove one emoji) keeps its Seq in reaction_clears and drops the rows it
// covers; a later add below that Seq is ignored, so the rows need not stay. The
// message's delete drops its rows and clears, and its tombstone stops any later
// write (applyMessage checks it first).

// reactionPrefix is channel|message, the prefix of every row of a message.
func reactionPrefix(channelID, messageID guildhall.Snowflake) []byte {
	return key2(channelID, messageID)
}

// emojiPrefix is channel|message|emoji|0, the prefix of an emoji's rows and the
// key of its clear. Emojis are validated text: they never contain a 0 byte.
func emojiPrefix(channelID, messageID guildhall.Snowflake, emoji string) []byte {
	k := reactionPrefix(channelID, messageID)
	k = append(k, emoji...)
	return append(k, 0)
}

func reactionKey(channelID, messageID guildhall.Snowflake, emoji string, user guildhall.Snowflake) []byte {
	return binary.BigEndian.AppendUint64(emojiPrefix(channelID, messageID, emoji), uint64(user))
}

// splitReactionKey reads the emoji and the user of a row key.
func splitReactionKey(k []byte) (emoji string, user guildhall.Snowflake) {
	return string(k[16 : len(k)-9]), idAt(k, len(k)-8)
}

func seqOf(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func applyReaction(tx *bbolt.Tx, channelID, messageID guildhall.Snowflake, seq uint64, r messaging.ReactionWrite) error {
	rows, clears := tx.Bucket(bReactions), tx.Bucket(bReactionClears)
	all := seqOf(clears.Get(reactionPrefix(channelID, messageID)))
	switch r.Op {
	case messaging.ReactionAdd, messaging.ReactionRemove:
		if r.Emoji == "" || r.UserID == 0 {
			return fmt.Errorf("reaction write seq %d: emoji and user are required", seq)
		}
		if seq <= all || seq <= seqOf(clears.Get(emojiPrefix(channelID, messageID, r.Emoji))) {
			return nil // cleared after it
		}
		k := reactionKey(channelID, messageID, r.Emoji, r.UserID)
		if cur := rows.Get(k); cur != nil && seqOf(cur) >= seq {
			return nil // stale or repeated
		}
		present := byte(0)
		if r.Op == messaging.ReactionAdd {
			present = 1
		}
		return rows.Put(k, append(u64(seq), present))
	case messaging.ReactionRemoveEmoji:
		if r.Emoji == "" {
			return fmt.Errorf("reaction write seq %d: emoji is required", seq)
		}
		p := emojiPrefix(channelID, messageID, r.Emoji)
		if seq <= seqOf(clears.Get(p)) {
			return nil
		}
		if err := clears.Put(p, u64(seq)); err != nil {
			return err
		}
		return dropRows(rows, p, seq)
	case messaging.ReactionRemoveAll:
		p := reactionPrefix(channelID, messageID)
		if seq <= all {
			return nil
		}
		if err := clears.Put(p, u64(seq)); err != nil {
			return err
		}
		return dropRows(rows, p, seq)
	}
	return fmt.Errorf("reaction write seq %d: unknown op %d", seq, r.Op)
}

// dropRows deletes the rows under prefix decided below seq.
func dropRows(rows *bbolt.Bucket, prefix []byte, seq uint64) error {
	var doomed [][]byte
	c := rows.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if seqOf(v) < seq {
			doomed = append(doomed, slices.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := rows.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteReactions drops every row and clear of a deleted message.
func deleteReactions(tx *bbolt.Tx, channelID, messageID guildhall.Snowflake) error {
	p := reactionPrefix(channelID, messageID)
	if err := dropRows(tx.Bucket(bReactions), p, ^uint64(0)); err != nil {
		return err
	}
	return dropRows(tx.Bucket(bReactionClears), p, ^uint64(0))
}

// liveReactions calls fn for each live reaction of a message, in key order
// (emoji, then user).
func liveReactions(tx *bbolt.Tx, prefix []byte, fn func(emoji string, user guildhall.Snowflake, seq uint64)) {
	clears := tx.Bucket(bReactionClears)
	all := seqOf(clears.Get(prefix[:16]))
	var lastEmoji string
	var emojiClear uint64
	have := false
	c := tx.Bucket(bReactions).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) < 16+1+8 || len(v) < 9 || v[8] != 1 {
			continue
		}
		emoji, user := splitReactionKey(k)
		if !have || emoji != lastEmoji { // rows come grouped by emoji
			lastEmoji, have = emoji, true
			emojiClear = seqOf(clears.Get(k[:len(k)-8]))
		}
		seq := seqOf(v)
		if seq <= all || seq <= emojiClear {
			continue
		}
		fn(emoji, user, seq)
	}
}

func (s *Store) Reactions(ctx context.Context, channelID guildhall.Snowflake, messageIDs []guildhall.Snowflake, me guildhall.Snowflake) (map[guildhall.Snowflake][]guildhall.Reaction, error) {
	if len(messageIDs) > messaging.MaxReactionsQuery {
		return nil, fmt.Errorf("reactions: %d messages, at most %d", len(messageIDs), messaging.MaxReactionsQuery)
	}
	out := map[guildhall.Snowflake][]guildhall.Reaction{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		for _, id := range messageIDs {
			if rs := countReactions(tx, reactionPrefix(channelID, id), me); len(rs) > 0 {
				out[id] = rs
			}
		}
		return nil
	})
	return out, err
}

// reactionTally is one emoji's live reactions while they are counted.
type reactionTally struct {
	r     guildhall.Reaction
	first uint64 // the lowest Seq: the order emojis are shown in
}

func countReactions(tx *bbolt.Tx, prefix []byte, me guildhall.Snowflake) []guildhall.Reaction {
	var tallies []*reactionTally
	byEmoji := map[string]*reactionTally{}
	liveReactions(tx, prefix, func(emoji string, user guildhall.Snowflake, seq uint64) {
		t := byEmoji[emoji]
		if t == nil {
			t = &reactionTally{r: guildhall.NewReaction(emoji), first: seq}
			byEmoji[emoji] = t
			tallies = append(tallies, t)
		}
		t.r.Count++
		t.r.CountDetails.Normal++
		t.first = min(t.first, seq)
		if user == me {
			t.r.Me = true
		}
	})
	slices.SortFunc(tallies, func(a, b *reactionTally) int { return cmp.Compare(a.first, b.first) })
	out := make([]guildhall.Reaction, len(tallies))
	for i, t := range tallies {
		out[i] = t.r
	}
	return out
}

func (s *Store) ReactionUsers(ctx context.Context, channelID, messageID guildhall.Snowflake, emoji string, after guildhall.Snowflake, limit int) ([]guildhall.Snowflake, error) {
	if limit < 1 || limit > 100 {
		return nil, fmt.Errorf("reaction users: limit %d out of 1..100", limit)
	}
	out := []guildhall.Snowflake{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		// Start the walk at the cursor: users come in id order within an emoji.
		p := emojiPrefix(channelID, messageID, emoji)
		clears := tx.Bucket(bReactionClears)
		floor := max(seqOf(clears.Get(p[:16])), seqOf(clears.Get(p)))
		c := tx.Bucket(bReactions).Cursor()
		start := reactionKey(channelID, messageID, emoji, after)
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, p) && len(out) < limit; k, v = c.Next() {
			_, user := splitReactionKey(k)
			if user <= after || len(v) < 9 || v[8] != 1 || seqOf(v) <= floor {
				continue
			}
			out = append(out, user)
		}
		return nil
	})
	return out, err
}

// ---- last message ids

func raiseLastMessage(tx *bbolt.Tx, channelID, messageID guildhall.Snowflake) error {
	b := tx.Bucket(bChannelLast)
	k := u64(uint64(channelID))
	if cur := b.Get(k); cur != nil && idAt(cur, 0) >= messageID {
		return nil
	}
	return b.Put(k, u64(uint64(messageID)))
}

func (s *Store) LastMessageIDs(ctx context.Context, channelIDs []guildhall.Snowflake) (map[guildhall.Snowflake]guildhall.Snowflake, error) {
	if len(channelIDs) > messaging.MaxLastMessageQuery {
		return nil, fmt.Errorf("last message ids: %d channels, at most %d", len(channelIDs), messaging.MaxLastMessageQuery)
	}
	out := make(map[guildhall.Snowflake]guildhall.Snowflake, len(channelIDs))
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bChannelLast)
		for _, id := range channelIDs {
			if v := b.Get(u64(uint64(id))); v != nil {
				out[id] = idAt(v, 0)
			}
		}
		return nil
	})
	return out, err
}

// ---- read states

func (s *Store) PutReadState(ctx context.Context, userID guildhall.Snowflake, rs guildhall.ReadState) error {
	if userID == 0 || rs.ChannelID == 0 {
		return fmt.Errorf("put read state: user and channel are required")
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bReadStates)
		k := key2(userID, rs.ChannelID)
		if cur := b.Get(k); len(cur) == 16 {
			v, m := int64(binary.BigEndian.Uint64(cur)), idAt(cur, 8)
			if v > rs.Version || v == rs.Version && m >= rs.LastMessageID {
				return nil
			}
		}
		return b.Put(k, append(u64(uint64(rs.Version)), u64(uint64(rs.LastMessageID))...))
	})
}

func (s *Store) ReadStates(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.ReadState, error) {
	out := []guildhall.ReadState{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(userID))
		c := tx.Bucket(bReadStates).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != 16 {
				continue
			}
			out = append(out, guildhall.ReadState{
				ChannelID: idAt(k, 8), LastMessageID: idAt(v, 8), Version: int64(binary.BigEndian.Uint64(v)),
			})
		}
		return nil
	})
	return out, err
}

// ---- direct-message channels

// dmPair is the key of the DM between two users, the lower id first.
func dmPair(a, b guildhall.Snowflake) []byte { return key2(min(a, b), max(a, b)) }

func (s *Store) CreatePrivateChannel(ctx context.Context, ch guildhall.PrivateChannel) (guildhall.PrivateChannel, bool, error) {
	if ch.ID == 0 || len(ch.Recipients) == 0 {
		return ch, false, fmt.Errorf("create private channel: id and recipients are required")
	}
	if ch.Type == guildhall.ChannelTypeDM && len(ch.Recipients) != 2 {
		return ch, false, fmt.Errorf("create private channel: a DM has 2 recipients, not %d", len(ch.Recipients))
	}
	ch.LastMessageID = nil
	var out guildhall.PrivateChannel
	var created bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out, created = ch, false // db.Batch may run this twice
		chans := tx.Bucket(bPrivateChannels)
		if ch.Type == guildhall.ChannelTypeDM {
			pairs := tx.Bucket(bDMPairs)
			pk := dmPair(ch.Recipients[0].ID, ch.Recipients[1].ID)
			if v := pairs.Get(pk); v != nil {
				return getJSON(chans, v, &out, "private channel")
			}
			if err := pairs.Put(pk, u64(uint64(ch.ID))); err != nil {
				return err
			}
		}
		for _, u := range ch.Recipients {
			if err := tx.Bucket(bUserPrivateChannels).Put(key2(u.ID, ch.ID), []byte{}); err != nil {
				return err
			}
		}
		created = true
		return putJSON(chans, u64(uint64(ch.ID)), ch)
	})
	if err != nil {
		return guildhall.PrivateChannel{}, false, err
	}
	return out, created, nil
}

func (s *Store) PrivateChannel(ctx context.Context, id guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	var ch guildhall.PrivateChannel
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bPrivateChannels), u64(uint64(id)), &ch, "private channel "+id.String())
	})
	return ch, err
}

func (s *Store) UserPrivateChannels(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.PrivateChannel, error) {
	out := []guildhall.PrivateChannel{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		chans := tx.Bucket(bPrivateChannels)
		prefix := u64(uint64(userID))
		// Newest first: from the last key of the user's prefix backwards.
		c := tx.Bucket(bUserPrivateChannels).Cursor()
		k, _ := c.Seek(u64(uint64(userID) + 1))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < messaging.MaxPrivateChannels; k, _ = c.Prev() {
			var ch guildhall.PrivateChannel
			data := chans.Get(k[8:16])
			if data == nil {
				continue // the index is written with the channel; never alone
			}
			if err := json.Unmarshal(data, &ch); err != nil {
				return fmt.Errorf("private channel %v: %w", idAt(k, 8), err)
			}
			out = append(out, ch)
		}
		return nil
	})
	return out, err
}

func (s *Store) LeavePrivateChannel(ctx context.Context, channelID, userID guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	var out guildhall.PrivateChannel
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		chans := tx.Bucket(bPrivateChannels)
		var ch guildhall.PrivateChannel
		if err := getJSON(chans, u64(uint64(channelID)), &ch, "private channel "+channelID.String()); err != nil {
			return err
		}
		if ch.Type != guildhall.ChannelTypeGroupDM {
			return fmt.Errorf("leave private channel %v: not a group DM", channelID)
		}
		out = ch
		if !ch.Has(userID) {
			return nil
		}
		out = ch.Without(userID)
		if err := tx.Bucket(bUserPrivateChannels).Delete(key2(userID, channelID)); err != nil {
			return err
		}
		return putJSON(chans, u64(uint64(channelID)), out)
	})
	if err != nil {
		return guildhall.PrivateChannel{}, err
	}
	return out, nil
}
