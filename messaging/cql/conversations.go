package cql

// Reactions, last message ids, read states and direct-message channels.
//
//	reactions              ((channel_id, bucket), message_id DESC, emoji, user_id) -> seq
//	channel_last           (channel_id) -> message_id
//	read_states            (user_id, channel_id) -> message_id, version
//	private_channels       (id) -> data
//	user_private_channels  (user_id, channel_id)
//	dm_pairs               ((low, high)) -> channel_id         (LWT on creation)
//
// A user's list is read newest first, channel_id DESC (a reversed read of the
// partition). Leaving a group DM rewrites its row with compare-and-set (an LWT
// on data: two people leaving at once must both end up out), then deletes the
// leaver's index row; a leave that died between the two is completed by the
// next attempt.
//
// Reactions live in the partition of their message (the same (channel, 10-day
// bucket)), so one page of history needs one reaction read per bucket it spans.
// Like messages, they are versioned by write timestamps: an add is an INSERT USING
// TIMESTAMP <seq>, a remove a row DELETE USING TIMESTAMP <seq>, removing an emoji
// or all reactions a range DELETE (on (message_id, emoji) or on message_id) USING
// TIMESTAMP <seq>, and a message's delete the same range DELETE at
// cqlDeleteTimestamp. Cassandra's last-write-wins with tombstones then gives the
// ReactionWrite rules by itself, in any order and any number of times. Counts are
// computed when read (one row per reaction): a message with many thousands of
// reactions costs that many rows in every page that shows it.
//
// channel_last is written USING TIMESTAMP <message id>, so the newest id wins
// whatever the order; read_states USING TIMESTAMP <version> (microseconds), and
// on a tie Cassandra keeps the greater value, the higher message id.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// conversationMigration adds the tables of conversations.
var conversationMigration = cqlMigration{
	version: 4,
	name:    "reactions, last message ids, read states, private channels",
	stmts:   conversationTables,
}

var conversationTables = []string{
	`CREATE TABLE IF NOT EXISTS {ks}.reactions (
		channel_id bigint, bucket bigint, message_id bigint, emoji text, user_id bigint, seq bigint,
		PRIMARY KEY ((channel_id, bucket), message_id, emoji, user_id)
	) WITH CLUSTERING ORDER BY (message_id DESC, emoji ASC, user_id ASC)`,
	`CREATE TABLE IF NOT EXISTS {ks}.channel_last (channel_id bigint PRIMARY KEY, message_id bigint)`,
	`CREATE TABLE IF NOT EXISTS {ks}.read_states (
		user_id bigint, channel_id bigint, message_id bigint, version bigint,
		PRIMARY KEY (user_id, channel_id)
	)`,
	`CREATE TABLE IF NOT EXISTS {ks}.private_channels (id bigint PRIMARY KEY, data blob)`,
	`CREATE TABLE IF NOT EXISTS {ks}.user_private_channels (
		user_id bigint, channel_id bigint,
		PRIMARY KEY (user_id, channel_id)
	)`,
	`CREATE TABLE IF NOT EXISTS {ks}.dm_pairs (low bigint, high bigint, channel_id bigint, PRIMARY KEY ((low, high)))`,
}

// reactionEntry is the statement of one reaction write, in its message's
// partition.
func (s *Store) reactionEntry(w messaging.MessageWrite) (gocql.BatchEntry, error) {
	r := w.Reaction
	ch, b, mid := cqlID(w.Message.ChannelID), w.Message.ID.Bucket(), cqlID(w.Message.ID)
	ts := int64(w.Seq)
	switch r.Op {
	case messaging.ReactionAdd:
		return gocql.BatchEntry{
			Stmt: s.cql(`INSERT INTO {ks}.reactions (channel_id, bucket, message_id, emoji, user_id, seq) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
			Args: []any{ch, b, mid, r.Emoji, cqlID(r.UserID), ts, ts}, Idempotent: true,
		}, nil
	case messaging.ReactionRemove:
		return gocql.BatchEntry{
			Stmt: s.cql(`DELETE FROM {ks}.reactions USING TIMESTAMP ? WHERE channel_id = ? AND bucket = ? AND message_id = ? AND emoji = ? AND user_id = ?`),
			Args: []any{ts, ch, b, mid, r.Emoji, cqlID(r.UserID)}, Idempotent: true,
		}, nil
	case messaging.ReactionRemoveEmoji:
		return gocql.BatchEntry{
			Stmt: s.cql(`DELETE FROM {ks}.reactions USING TIMESTAMP ? WHERE channel_id = ? AND bucket = ? AND message_id = ? AND emoji = ?`),
			Args: []any{ts, ch, b, mid, r.Emoji}, Idempotent: true,
		}, nil
	case messaging.ReactionRemoveAll:
		return s.clearReactions(w.Message.ChannelID, w.Message.ID, ts), nil
	}
	return gocql.BatchEntry{}, fmt.Errorf("reaction write seq %d: unknown op %d", w.Seq, r.Op)
}

// clearReactions removes every reaction of a message written below ts.
func (s *Store) clearReactions(channelID, messageID guildhall.Snowflake, ts int64) gocql.BatchEntry {
	return gocql.BatchEntry{
		Stmt: s.cql(`DELETE FROM {ks}.reactions USING TIMESTAMP ? WHERE channel_id = ? AND bucket = ? AND message_id = ?`),
		Args: []any{ts, cqlID(channelID), messageID.Bucket(), cqlID(messageID)}, Idempotent: true,
	}
}

// lastMessageEntry raises a channel's last message id.
func (s *Store) lastMessageEntry(channelID, messageID guildhall.Snowflake) gocql.BatchEntry {
	return gocql.BatchEntry{
		Stmt: s.cql(`INSERT INTO {ks}.channel_last (channel_id, message_id) VALUES (?, ?) USING TIMESTAMP ?`),
		Args: []any{cqlID(channelID), cqlID(messageID), cqlID(messageID)}, Idempotent: true,
	}
}

func (s *Store) Reactions(ctx context.Context, channelID guildhall.Snowflake, messageIDs []guildhall.Snowflake, me guildhall.Snowflake) (map[guildhall.Snowflake][]guildhall.Reaction, error) {
	if len(messageIDs) > messaging.MaxReactionsQuery {
		return nil, fmt.Errorf("reactions: %d messages, at most %d", len(messageIDs), messaging.MaxReactionsQuery)
	}
	byBucket := map[int64][]int64{}
	for _, id := range messageIDs {
		byBucket[id.Bucket()] = append(byBucket[id.Bucket()], cqlID(id))
	}
	type row struct {
		message, user int64
		emoji         string
		seq           int64
	}
	var mu sync.Mutex
	var rows []row
	var fns []func() error
	for b, ids := range byBucket {
		fns = append(fns, func() error {
			iter := s.query(ctx, `SELECT message_id, emoji, user_id, seq FROM {ks}.reactions WHERE channel_id = ? AND bucket = ? AND message_id IN ?`,
				cqlID(channelID), b, ids).PageSize(5000).Iter()
			var r row
			var local []row
			for iter.Scan(&r.message, &r.emoji, &r.user, &r.seq) {
				local = append(local, r)
			}
			if err := iter.Close(); err != nil {
				return fmt.Errorf("reactions of channel %v: %w", channelID, err)
			}
			mu.Lock()
			rows = append(rows, local...)
			mu.Unlock()
			return nil
		})
	}
	if err := cqlParallel(fns...); err != nil {
		return nil, err
	}
	type tally struct {
		r     guildhall.Reaction
		first int64
	}
	tallies := map[guildhall.Snowflake]map[string]*tally{}
	for _, r := range rows {
		m := guildhall.Snowflake(r.message)
		if tallies[m] == nil {
			tallies[m] = map[string]*tally{}
		}
		t := tallies[m][r.emoji]
		if t == nil {
			t = &tally{r: guildhall.NewReaction(r.emoji), first: r.seq}
			tallies[m][r.emoji] = t
		}
		t.r.Count++
		t.r.CountDetails.Normal++
		t.first = min(t.first, r.seq)
		if guildhall.Snowflake(r.user) == me {
			t.r.Me = true
		}
	}
	out := make(map[guildhall.Snowflake][]guildhall.Reaction, len(tallies))
	for m, byEmoji := range tallies {
		ts := make([]*tally, 0, len(byEmoji))
		for _, t := range byEmoji {
			ts = append(ts, t)
		}
		slices.SortFunc(ts, func(a, b *tally) int { return cmp.Compare(a.first, b.first) })
		rs := make([]guildhall.Reaction, len(ts))
		for i, t := range ts {
			rs[i] = t.r
		}
		out[m] = rs
	}
	return out, nil
}

func (s *Store) ReactionUsers(ctx context.Context, channelID, messageID guildhall.Snowflake, emoji string, after guildhall.Snowflake, limit int) ([]guildhall.Snowflake, error) {
	if limit < 1 || limit > 100 {
		return nil, fmt.Errorf("reaction users: limit %d out of 1..100", limit)
	}
	out := []guildhall.Snowflake{}
	iter := s.query(ctx, `SELECT user_id FROM {ks}.reactions WHERE channel_id = ? AND bucket = ? AND message_id = ? AND emoji = ? AND user_id > ? LIMIT ?`,
		cqlID(channelID), messageID.Bucket(), cqlID(messageID), emoji, cqlID(after), limit).Iter()
	var u int64
	for iter.Scan(&u) {
		out = append(out, guildhall.Snowflake(u))
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("reaction users of message %v: %w", messageID, err)
	}
	return out, nil
}

func (s *Store) LastMessageIDs(ctx context.Context, channelIDs []guildhall.Snowflake) (map[guildhall.Snowflake]guildhall.Snowflake, error) {
	if len(channelIDs) > messaging.MaxLastMessageQuery {
		return nil, fmt.Errorf("last message ids: %d channels, at most %d", len(channelIDs), messaging.MaxLastMessageQuery)
	}
	out := make(map[guildhall.Snowflake]guildhall.Snowflake, len(channelIDs))
	var mu sync.Mutex
	var fns []func() error
	// IN over a few partitions at a time: one coordinator does not gather
	// hundreds of partitions for one query.
	for chunk := range slices.Chunk(channelIDs, 50) {
		ids := make([]int64, len(chunk))
		for i, id := range chunk {
			ids[i] = cqlID(id)
		}
		fns = append(fns, func() error {
			iter := s.query(ctx, `SELECT channel_id, message_id FROM {ks}.channel_last WHERE channel_id IN ?`, ids).Iter()
			var c, m int64
			for iter.Scan(&c, &m) {
				mu.Lock()
				out[guildhall.Snowflake(c)] = guildhall.Snowflake(m)
				mu.Unlock()
			}
			if err := iter.Close(); err != nil {
				return fmt.Errorf("last message ids: %w", err)
			}
			return nil
		})
	}
	if err := cqlParallel(fns...); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) PutReadState(ctx context.Context, userID guildhall.Snowflake, rs guildhall.ReadState) error {
	if userID == 0 || rs.ChannelID == 0 {
		return errors.New("put read state: user and channel are required")
	}
	return s.write(ctx, `INSERT INTO {ks}.read_states (user_id, channel_id, message_id, version) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`,
		cqlID(userID), cqlID(rs.ChannelID), cqlID(rs.LastMessageID), rs.Version, rs.Version)
}

func (s *Store) ReadStates(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.ReadState, error) {
	out := []guildhall.ReadState{}
	iter := s.query(ctx, `SELECT channel_id, message_id, version FROM {ks}.read_states WHERE user_id = ?`, cqlID(userID)).PageSize(1000).Iter()
	var c, m, v int64
	for iter.Scan(&c, &m, &v) {
		out = append(out, guildhall.ReadState{ChannelID: guildhall.Snowflake(c), LastMessageID: guildhall.Snowflake(m), Version: v})
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read states of user %v: %w", userID, err)
	}
	return out, nil
}

func (s *Store) CreatePrivateChannel(ctx context.Context, ch guildhall.PrivateChannel) (guildhall.PrivateChannel, bool, error) {
	if ch.ID == 0 || len(ch.Recipients) == 0 {
		return ch, false, errors.New("create private channel: id and recipients are required")
	}
	if ch.Type == guildhall.ChannelTypeDM && len(ch.Recipients) != 2 {
		return ch, false, fmt.Errorf("create private channel: a DM has 2 recipients, not %d", len(ch.Recipients))
	}
	ch.LastMessageID = nil
	data, err := json.Marshal(ch)
	if err != nil {
		return ch, false, err
	}
	// The channel row first: the pair and the user index never point at nothing.
	if err := s.write(ctx, `INSERT INTO {ks}.private_channels (id, data) VALUES (?, ?)`, cqlID(ch.ID), data); err != nil {
		return ch, false, fmt.Errorf("create private channel %v: %w", ch.ID, err)
	}
	out, created := ch, true
	if ch.Type == guildhall.ChannelTypeDM {
		a, b := ch.Recipients[0].ID, ch.Recipients[1].ID
		existing := map[string]any{}
		applied, err := s.query(ctx, `INSERT INTO {ks}.dm_pairs (low, high, channel_id) VALUES (?, ?, ?) IF NOT EXISTS`,
			cqlID(min(a, b)), cqlID(max(a, b)), cqlID(ch.ID)).MapScanCAS(existing)
		if err != nil {
			return ch, false, fmt.Errorf("create private channel %v: %w", ch.ID, err)
		}
		if !applied {
			id, _ := existing["channel_id"].(int64)
			if out, err = s.PrivateChannel(ctx, guildhall.Snowflake(id)); err != nil {
				return ch, false, fmt.Errorf("create private channel: the pair's channel %v: %w", id, err)
			}
			created = false
			// The row written above is an orphan nobody lists. The index below is
			// rewritten: a creation that died half-way is completed by the next one.
		}
	}
	var fns []func() error
	for _, u := range out.Recipients {
		fns = append(fns, func() error {
			return s.write(ctx, `INSERT INTO {ks}.user_private_channels (user_id, channel_id) VALUES (?, ?)`, cqlID(u.ID), cqlID(out.ID))
		})
	}
	if err := cqlParallel(fns...); err != nil {
		return ch, false, fmt.Errorf("create private channel %v: %w", out.ID, err)
	}
	return out, created, nil
}

func (s *Store) PrivateChannel(ctx context.Context, id guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	var ch guildhall.PrivateChannel
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.private_channels WHERE id = ?`, cqlID(id)).Scan(&data); err != nil {
		return ch, cqlNotFound(err, "private channel %v", id)
	}
	if err := json.Unmarshal(data, &ch); err != nil {
		return ch, fmt.Errorf("private channel %v: %w", id, err)
	}
	return ch, nil
}

func (s *Store) UserPrivateChannels(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.PrivateChannel, error) {
	iter := s.query(ctx, `SELECT channel_id FROM {ks}.user_private_channels WHERE user_id = ? ORDER BY channel_id DESC LIMIT ?`,
		cqlID(userID), messaging.MaxPrivateChannels).PageSize(1000).Iter()
	var ids []guildhall.Snowflake
	var c int64
	for iter.Scan(&c) {
		ids = append(ids, guildhall.Snowflake(c))
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("private channels of user %v: %w", userID, err)
	}
	out := make([]guildhall.PrivateChannel, len(ids))
	found := make([]bool, len(ids))
	var fns []func() error
	for i, id := range ids {
		fns = append(fns, func() error {
			ch, err := s.PrivateChannel(ctx, id)
			if errors.Is(err, messaging.ErrNotFound) {
				return nil
			}
			out[i], found[i] = ch, err == nil
			return err
		})
	}
	for chunk := range slices.Chunk(fns, 32) {
		if err := cqlParallel(chunk...); err != nil {
			return nil, err
		}
	}
	kept := out[:0]
	for i, ch := range out {
		if found[i] {
			kept = append(kept, ch)
		}
	}
	return kept, nil
}

// leaveAttempts bounds the compare-and-set retries of a leave: each failed one
// means another leave (or a creation) changed the row in between.
const leaveAttempts = 16

func (s *Store) LeavePrivateChannel(ctx context.Context, channelID, userID guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	// A stale read costs one failed compare-and-set, which answers the row as it is.
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.private_channels WHERE id = ?`, cqlID(channelID)).Scan(&data); err != nil {
		return guildhall.PrivateChannel{}, cqlNotFound(err, "private channel %v", channelID)
	}
	for range leaveAttempts {
		var ch guildhall.PrivateChannel
		if err := json.Unmarshal(data, &ch); err != nil {
			return ch, fmt.Errorf("private channel %v: %w", channelID, err)
		}
		if ch.Type != guildhall.ChannelTypeGroupDM {
			return guildhall.PrivateChannel{}, fmt.Errorf("leave private channel %v: not a group DM", channelID)
		}
		out := ch
		if ch.Has(userID) {
			out = ch.Without(userID)
			next, err := json.Marshal(out)
			if err != nil {
				return guildhall.PrivateChannel{}, err
			}
			var current []byte
			applied, err := s.query(ctx, `UPDATE {ks}.private_channels SET data = ? WHERE id = ? IF data = ?`,
				next, cqlID(channelID), data).ScanCAS(&current)
			if err != nil {
				return guildhall.PrivateChannel{}, fmt.Errorf("leave private channel %v: %w", channelID, err)
			}
			if !applied {
				data = current
				continue
			}
		}
		if err := s.write(ctx, `DELETE FROM {ks}.user_private_channels WHERE user_id = ? AND channel_id = ?`,
			cqlID(userID), cqlID(channelID)); err != nil {
			return guildhall.PrivateChannel{}, fmt.Errorf("leave private channel %v: %w", channelID, err)
		}
		return out, nil
	}
	return guildhall.PrivateChannel{}, fmt.Errorf("leave private channel %v: row contended", channelID)
}
