package cql

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Messages. A history partition is (channel, 10-day bucket of the snowflake), as
// Discord does. Every message upsert carries USING TIMESTAMP <stream seq> and every
// delete USING TIMESTAMP 2^62 (above any seq): Cassandra resolves cells and row
// tombstones by write timestamp (last write wins, a tombstone wins a tie), so "the
// highest Seq wins and a delete is final" is what the database does by itself,
// whatever the order and the number of times writes arrive. Only this table uses
// Seq timestamps; everything else uses the driver's client-side wall-clock
// timestamps. Tombstones are kept gc_grace_seconds (10 days by default): a
// redelivery older than that could resurrect a deleted message, far beyond any
// JetStream redelivery. Writes are unlogged batches per partition.
//
// Sparse channels. Each upsert also writes its (channel, bucket) to channel_buckets,
// so a history page walks only buckets that have held a message (newest first, or
// oldest first for "after"), never probing empty 10-day windows one by one: a
// channel quiet for two years costs one extra small read, not 73. A bucket whose
// messages were all deleted stays listed (it costs one empty read).

// Batches of one partition: at most this many statements and about this many bytes
// of values, well under Cassandra's batch_size_fail_threshold (50 KiB, applied to
// multi-partition batches) and ScyllaDB's, whichever checks single partitions.
const (
	cqlMaxBatchStatements = 64
	cqlMaxBatchBytes      = 40 << 10
)

type cqlPartition struct {
	channel guildhall.Snowflake
	bucket  int64
}

// cqlDeleteTimestamp is the write timestamp of every message delete: above any
// stream sequence, so a delete shadows every upsert of the message, earlier or
// later (a delete is final; see Store.ApplyMessages).
const cqlDeleteTimestamp = 1 << 62

// cqlMsgKey names one message's content (upserts and deletes) or, with pin,
// its pin state: the two are versioned apart (see messaging.PinWrite).
type cqlMsgKey struct {
	channel, id guildhall.Snowflake
	pin         bool
}

// ApplyMessages writes each message with USING TIMESTAMP <Seq> (see the file
// comment), grouped into one unlogged batch per (channel, bucket) partition, the
// partitions in parallel. Within one call a message written twice keeps only its
// highest-Seq write (a delete on a tie), because two writes with one timestamp
// would be resolved by value, not by Seq. The bucket index rows are written in the
// same round.
func (s *Store) ApplyMessages(ctx context.Context, writes []messaging.MessageWrite) error {
	if len(writes) == 0 {
		return nil
	}
	best := make(map[cqlMsgKey]int, len(writes))
	var reactions []int
	last := map[guildhall.Snowflake]guildhall.Snowflake{} // channel -> newest upserted id
	for i, w := range writes {
		if w.Seq > math.MaxInt64 {
			return fmt.Errorf("apply messages: seq %d out of range", w.Seq)
		}
		if w.Message.ChannelID == 0 || w.Message.ID == 0 {
			return fmt.Errorf("apply messages: write %d (seq %d) has no channel or message id", i, w.Seq)
		}
		if w.Reaction != nil {
			reactions = append(reactions, i) // versioned per row by its own timestamp
			continue
		}
		if !w.Delete && w.Pin == nil { // written, even if deleted already: it counts as the channel's last
			last[w.Message.ChannelID] = max(last[w.Message.ChannelID], w.Message.ID)
		}
		k := cqlMsgKey{w.Message.ChannelID, w.Message.ID, w.Pin != nil && !w.Delete}
		j, ok := best[k]
		if !ok || (w.Delete && !writes[j].Delete) || (w.Delete == writes[j].Delete && w.Seq > writes[j].Seq) {
			best[k] = i
		}
	}
	keep := make([]int, 0, len(best))
	for _, i := range best {
		keep = append(keep, i)
	}
	slices.Sort(keep) // deterministic batches, in the caller's order
	type sized struct {
		e    gocql.BatchEntry
		size int // bytes of values, roughly
	}
	parts := map[cqlPartition][]sized{}
	var order []cqlPartition
	indexed := map[cqlPartition]bool{}
	pinStmts := map[guildhall.Snowflake][]gocql.BatchEntry{} // channel_pins, one partition per channel
	add := func(p cqlPartition, e gocql.BatchEntry, size int) {
		if _, ok := parts[p]; !ok {
			order = append(order, p)
		}
		parts[p] = append(parts[p], sized{e, size})
	}
	for _, i := range reactions {
		w := writes[i]
		e, err := s.reactionEntry(w)
		if err != nil {
			return fmt.Errorf("apply messages: %w", err)
		}
		add(cqlPartition{w.Message.ChannelID, w.Message.ID.Bucket()}, e, 60+len(w.Reaction.Emoji))
	}
	for _, i := range keep {
		w := writes[i]
		p := cqlPartition{w.Message.ChannelID, w.Message.ID.Bucket()}
		var e gocql.BatchEntry
		size := 40
		switch {
		case w.Delete:
			e = gocql.BatchEntry{
				Stmt:       s.cql(`DELETE FROM {ks}.messages USING TIMESTAMP ? WHERE channel_id = ? AND bucket = ? AND message_id = ?`),
				Args:       []any{int64(cqlDeleteTimestamp), cqlID(p.channel), p.bucket, cqlID(w.Message.ID)},
				Idempotent: true,
			}
			pinStmts[p.channel] = append(pinStmts[p.channel], s.unpinEntry(p.channel, w.Message.ID, cqlDeleteTimestamp))
		case w.Pin != nil:
			var pe gocql.BatchEntry
			e, pe = s.pinEntries(p, w)
			pinStmts[p.channel] = append(pinStmts[p.channel], pe)
		default:
			data, err := json.Marshal(w.Message)
			if err != nil {
				return fmt.Errorf("apply messages: encode %v: %w", w.Message.ID, err)
			}
			e = gocql.BatchEntry{
				Stmt:       s.cql(`INSERT INTO {ks}.messages (channel_id, bucket, message_id, data) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`),
				Args:       []any{cqlID(p.channel), p.bucket, cqlID(w.Message.ID), data, int64(w.Seq)},
				Idempotent: true,
			}
			size += len(data)
			indexed[p] = true
		}
		add(p, e, size)
		if w.Delete { // its reactions go with it, for good
			add(p, s.clearReactions(w.Message.ChannelID, w.Message.ID, cqlDeleteTimestamp), 40)
		}
	}

	// Bucket index: one small unlogged batch per channel (one partition each).
	byChannel := map[guildhall.Snowflake][]int64{}
	for _, p := range order {
		if indexed[p] {
			byChannel[p.channel] = append(byChannel[p.channel], p.bucket)
		}
	}
	var jobs []*gocql.Batch
	for ch, bs := range byChannel {
		b := s.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
		for _, bucket := range bs {
			b.Entries = append(b.Entries, gocql.BatchEntry{
				Stmt: s.cql(`INSERT INTO {ks}.channel_buckets (channel_id, bucket) VALUES (?, ?)`),
				Args: []any{cqlID(ch), bucket}, Idempotent: true,
			})
		}
		jobs = append(jobs, b)
	}
	// A channel's pin list: one partition per channel, in batches of bounded size.
	for _, es := range pinStmts {
		for len(es) > 0 {
			n := min(len(es), cqlMaxBatchStatements)
			b := s.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
			b.Entries = append(b.Entries, es[:n]...)
			jobs = append(jobs, b)
			es = es[n:]
		}
	}
	for ch, id := range last {
		b := s.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
		b.Entries = append(b.Entries, s.lastMessageEntry(ch, id))
		jobs = append(jobs, b)
	}
	// The index and the messages go together: ApplyMessages succeeds only when
	// both have, and a retry rewrites both, so a reader can never be promised a
	// message that History cannot find.
	for _, p := range order {
		var b *gocql.Batch
		size := 0
		for _, e := range parts[p] {
			if b == nil || len(b.Entries) == cqlMaxBatchStatements || size+e.size > cqlMaxBatchBytes {
				b = s.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
				jobs = append(jobs, b)
				size = 0
			}
			b.Entries = append(b.Entries, e.e)
			size += e.size
		}
	}
	if err := s.runBatches(jobs); err != nil {
		return fmt.Errorf("apply messages: %w", err)
	}
	return nil
}

// runBatches executes batches, cfg.Parallelism at a time; a batch of one statement
// goes as a plain query. It returns the first error after all have finished.
func (s *Store) runBatches(jobs []*gocql.Batch) error {
	if len(jobs) == 1 {
		return s.execBatch(jobs[0])
	}
	sem := make(chan struct{}, s.cfg.Parallelism)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, b := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.execBatch(b); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func (s *Store) execBatch(b *gocql.Batch) error {
	if len(b.Entries) == 1 {
		e := b.Entries[0]
		return s.s.Query(e.Stmt, e.Args...).WithContext(b.Context()).Idempotent(e.Idempotent).Exec()
	}
	return s.s.ExecuteBatch(b)
}

func decodeCQLMessage(data []byte, channelID guildhall.Snowflake, mid int64) (guildhall.Message, error) {
	var m guildhall.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("message %v of channel %v: %w", mid, channelID, err)
	}
	m.ChannelID, m.ID = channelID, guildhall.Snowflake(mid)
	return m, nil
}

func (s *Store) Message(ctx context.Context, channelID, mid guildhall.Snowflake) (guildhall.Message, error) {
	var data []byte
	var pinned *time.Time
	if err := s.query(ctx, `SELECT data, pinned_at FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id = ?`,
		cqlID(channelID), mid.Bucket(), cqlID(mid)).Scan(&data, &pinned); err != nil {
		return guildhall.Message{}, cqlNotFound(err, "message %v of channel %v", mid, channelID)
	}
	if data == nil { // only a pin: its create is not applied yet
		return guildhall.Message{}, fmt.Errorf("message %v of channel %v: %w", mid, channelID, messaging.ErrNotFound)
	}
	m, err := decodeCQLMessage(data, channelID, cqlID(mid))
	m.Pinned = pinned != nil
	return m, err
}

func (s *Store) History(ctx context.Context, channelID guildhall.Snowflake, q messaging.HistoryQuery) ([]guildhall.Message, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []guildhall.Message{}
	var err error
	switch {
	case q.After != 0:
		if q.After >= math.MaxInt64 {
			return out, nil // nothing can be newer
		}
		out, err = s.historyUp(ctx, channelID, q.After+1, q.Limit, out)
		slices.Reverse(out)
	case q.Around != 0:
		out, err = s.historyUp(ctx, channelID, q.Around, q.Limit-q.Limit/2, out)
		slices.Reverse(out)
		if err == nil {
			out, err = s.historyDown(ctx, channelID, q.Around, q.Limit/2, out)
		}
	default: // Before, or the newest page when Before is 0
		out, err = s.historyDown(ctx, channelID, q.Before, q.Limit, out)
	}
	if err != nil {
		return nil, fmt.Errorf("history of channel %v: %w", channelID, err)
	}
	return out, nil
}

// historyDown appends up to n messages with id < below (any id if below is 0),
// newest first, walking the channel's non-empty buckets downwards.
func (s *Store) historyDown(ctx context.Context, channelID, below guildhall.Snowflake, n int, out []guildhall.Message) ([]guildhall.Message, error) {
	if n <= 0 {
		return out, nil
	}
	var buckets *gocql.Iter
	if below == 0 {
		buckets = s.query(ctx, `SELECT bucket FROM {ks}.channel_buckets WHERE channel_id = ?`, cqlID(channelID)).PageSize(16).Iter()
	} else {
		buckets = s.query(ctx, `SELECT bucket FROM {ks}.channel_buckets WHERE channel_id = ? AND bucket <= ?`,
			cqlID(channelID), below.Bucket()).PageSize(16).Iter()
	}
	want := len(out) + n
	var b int64
	for len(out) < want && buckets.Scan(&b) {
		var iter *gocql.Iter
		if below == 0 || b < below.Bucket() {
			iter = s.query(ctx, `SELECT message_id, data, pinned_at FROM {ks}.messages WHERE channel_id = ? AND bucket = ? LIMIT ?`,
				cqlID(channelID), b, want-len(out)).Iter()
		} else {
			iter = s.query(ctx, `SELECT message_id, data, pinned_at FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id < ? LIMIT ?`,
				cqlID(channelID), b, cqlID(below), want-len(out)).Iter()
		}
		var err error
		if out, err = scanMessages(iter, channelID, out); err != nil {
			buckets.Close()
			return nil, err
		}
	}
	return out, buckets.Close()
}

// historyUp appends up to n messages with id >= from, oldest first, walking the
// channel's non-empty buckets upwards.
func (s *Store) historyUp(ctx context.Context, channelID, from guildhall.Snowflake, n int, out []guildhall.Message) ([]guildhall.Message, error) {
	if n <= 0 {
		return out, nil
	}
	buckets := s.query(ctx, `SELECT bucket FROM {ks}.channel_buckets WHERE channel_id = ? AND bucket >= ? ORDER BY bucket ASC`,
		cqlID(channelID), from.Bucket()).PageSize(16).Iter()
	want := len(out) + n
	var b int64
	for len(out) < want && buckets.Scan(&b) {
		var iter *gocql.Iter
		if b > from.Bucket() {
			iter = s.query(ctx, `SELECT message_id, data, pinned_at FROM {ks}.messages WHERE channel_id = ? AND bucket = ? ORDER BY message_id ASC LIMIT ?`,
				cqlID(channelID), b, want-len(out)).Iter()
		} else {
			iter = s.query(ctx, `SELECT message_id, data, pinned_at FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id >= ? ORDER BY message_id ASC LIMIT ?`,
				cqlID(channelID), b, cqlID(from), want-len(out)).Iter()
		}
		var err error
		if out, err = scanMessages(iter, channelID, out); err != nil {
			buckets.Close()
			return nil, err
		}
	}
	return out, buckets.Close()
}

// scanMessages reads rows of message_id, data, pinned_at. A row with no data
// holds only a pin whose message's create is not applied yet (a redelivery out of
// order): it is skipped, so such a page can come out one short until the create
// is applied.
func scanMessages(iter *gocql.Iter, channelID guildhall.Snowflake, out []guildhall.Message) ([]guildhall.Message, error) {
	var mid int64
	var data []byte
	var pinned *time.Time
	for iter.Scan(&mid, &data, &pinned) {
		if data == nil {
			continue
		}
		m, err := decodeCQLMessage(data, channelID, mid)
		if err != nil {
			iter.Close()
			return nil, err
		}
		m.Pinned = pinned != nil
		out = append(out, m)
		pinned = nil
	}
	return out, iter.Close()
}
