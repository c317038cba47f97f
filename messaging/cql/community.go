package cql

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// messaging.CommunityStore on CQL (the tables are listed in store.go): pins,
// deletes, bans, the audit log. A guild's invites are in invites.go.
//
// Pins are versioned by write timestamp like messages: a pin or unpin is written
// USING TIMESTAMP <stream seq> to the messages row's pinned_at cell (so a
// message read says whether it is pinned without a second query) and to the
// channel's channel_pins partition (the list); the message's data cell and its
// pinned_at cell carry their own timestamps, so an edit and a pin never undo each
// other, and a message delete (a row tombstone at 2^62) removes both.
//
// The audit log is partitioned by (guild, 10-day bucket of the entry id); reads
// walk the buckets of the asked range, which the api bounds to 45 days.

// communityMigration adds what running a community needs. (A guild's invites
// are indexed by accountsMigration, which came first.)
var communityMigration = cqlMigration{
	version: 3,
	name:    "community: pins, bans, audit log",
	stmts:   cqlCommunitySchema,
}

var cqlCommunitySchema = []string{
	`ALTER TABLE {ks}.messages ADD pinned_at timestamp`,
	`CREATE TABLE IF NOT EXISTS {ks}.channel_pins (
		channel_id bigint, message_id bigint, pinned_at timestamp,
		PRIMARY KEY (channel_id, message_id)
	)`,
	`CREATE TABLE IF NOT EXISTS {ks}.bans (
		guild_id bigint, user_id bigint, data blob,
		PRIMARY KEY (guild_id, user_id)
	)`,
	`CREATE TABLE IF NOT EXISTS {ks}.audit_log (
		guild_id bigint, bucket bigint, id bigint, data blob,
		PRIMARY KEY ((guild_id, bucket), id)
	) WITH CLUSTERING ORDER BY (id DESC)`,
}

// cqlAlreadyAdded: an ALTER TABLE ... ADD of a migration that ran before it was
// recorded (interrupted) finds its column there; that is success.
func cqlAlreadyAdded(stmt string, err error) bool {
	return strings.HasPrefix(stmt, "ALTER TABLE") && strings.Contains(strings.ToLower(err.Error()), "already exist")
}

// ---- pins (the writes are part of ApplyMessages)

// pinEntries are a pin write's two statements: the message row's pinned_at cell
// and the channel's list.
func (s *Store) pinEntries(p cqlPartition, w messaging.MessageWrite) (row, list gocql.BatchEntry) {
	var at *time.Time
	if w.Pin.Pinned {
		t := w.Pin.At.UTC().Truncate(time.Millisecond)
		at = &t
	}
	row = gocql.BatchEntry{
		Stmt:       s.cql(`UPDATE {ks}.messages USING TIMESTAMP ? SET pinned_at = ? WHERE channel_id = ? AND bucket = ? AND message_id = ?`),
		Args:       []any{int64(w.Seq), at, cqlID(p.channel), p.bucket, cqlID(w.Message.ID)},
		Idempotent: true,
	}
	if at == nil {
		return row, s.unpinEntry(p.channel, w.Message.ID, int64(w.Seq))
	}
	return row, gocql.BatchEntry{
		Stmt:       s.cql(`INSERT INTO {ks}.channel_pins (channel_id, message_id, pinned_at) VALUES (?, ?, ?) USING TIMESTAMP ?`),
		Args:       []any{cqlID(p.channel), cqlID(w.Message.ID), *at, int64(w.Seq)},
		Idempotent: true,
	}
}

func (s *Store) unpinEntry(channel, id guildhall.Snowflake, ts int64) gocql.BatchEntry {
	return gocql.BatchEntry{
		Stmt:       s.cql(`DELETE FROM {ks}.channel_pins USING TIMESTAMP ? WHERE channel_id = ? AND message_id = ?`),
		Args:       []any{ts, cqlID(channel), cqlID(id)},
		Idempotent: true,
	}
}

func (s *Store) Pins(ctx context.Context, channelID guildhall.Snowflake, limit int) ([]messaging.PinnedMessage, error) {
	if limit < 1 || limit > messaging.MaxPinsRead {
		return nil, fmt.Errorf("pins: limit must be 1..%d", messaging.MaxPinsRead)
	}
	type pin struct {
		id int64
		at time.Time
	}
	var pins []pin
	iter := s.query(ctx, `SELECT message_id, pinned_at FROM {ks}.channel_pins WHERE channel_id = ? LIMIT ?`,
		cqlID(channelID), 10*messaging.MaxPinsRead).Iter()
	var p pin
	for iter.Scan(&p.id, &p.at) {
		pins = append(pins, p)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("pins of channel %v: %w", channelID, err)
	}
	slices.SortFunc(pins, func(a, b pin) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(b.id, a.id)
	})
	// Read the newest pins' messages, a few more than asked in case some are
	// not readable yet.
	pins = pins[:min(len(pins), limit+limit/4+1)]
	out := make([]messaging.PinnedMessage, len(pins))
	found := make([]bool, len(pins))
	err := s.eachParallel(len(pins), func(i int) error {
		m, err := s.Message(ctx, channelID, guildhall.Snowflake(pins[i].id))
		if errors.Is(err, messaging.ErrNotFound) {
			return nil // pinned before its create was applied (a redelivery)
		}
		if err != nil {
			return err
		}
		m.Pinned = true
		out[i], found[i] = messaging.PinnedMessage{Message: m, PinnedAt: pins[i].at.UTC()}, true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pins of channel %v: %w", channelID, err)
	}
	res := make([]messaging.PinnedMessage, 0, len(out))
	for i := range out {
		if found[i] && len(res) < limit {
			res = append(res, out[i])
		}
	}
	return res, nil
}

// eachParallel runs f(0..n-1), cfg.Parallelism at a time, and returns the first
// error after all have returned.
func (s *Store) eachParallel(n int, f func(i int) error) error {
	sem := make(chan struct{}, s.cfg.Parallelism)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ---- deletes

func (s *Store) DeleteChannel(ctx context.Context, id guildhall.Snowflake) error {
	c, err := s.Channel(ctx, id)
	if err != nil {
		return err
	}
	b := s.s.NewBatch(gocql.LoggedBatch).WithContext(ctx)
	b.Entries = append(b.Entries,
		gocql.BatchEntry{Stmt: s.cql(`DELETE FROM {ks}.channels WHERE id = ?`), Args: []any{cqlID(id)}, Idempotent: true},
		gocql.BatchEntry{Stmt: s.cql(`DELETE FROM {ks}.channels_by_guild WHERE guild_id = ? AND channel_id = ?`),
			Args: []any{cqlID(c.GuildID), cqlID(id)}, Idempotent: true})
	if err := s.s.ExecuteBatch(b); err != nil {
		return fmt.Errorf("delete channel %v: %w", id, err)
	}
	return nil
}

func (s *Store) DeleteRole(ctx context.Context, guildID, roleID guildhall.Snowflake) error {
	var one int64
	if err := s.query(ctx, `SELECT role_id FROM {ks}.roles WHERE guild_id = ? AND role_id = ?`, cqlID(guildID), cqlID(roleID)).Scan(&one); err != nil {
		return cqlNotFound(err, "role %v of guild %v", roleID, guildID)
	}
	return s.write(ctx, `DELETE FROM {ks}.roles WHERE guild_id = ? AND role_id = ?`, cqlID(guildID), cqlID(roleID))
}

// RemoveMember decides with a lightweight transaction (DELETE ... IF EXISTS)
// whether the membership existed, so that of two concurrent removals one counts
// it out. The decrement, like PutMember's increment, is not retried.
func (s *Store) RemoveMember(ctx context.Context, guildID, userID guildhall.Snowflake) error {
	removed, err := s.removeMember(ctx, guildID, userID)
	if err == nil && !removed {
		err = fmt.Errorf("member %v of guild %v: %w", userID, guildID, messaging.ErrNotFound)
	}
	return err
}

func (s *Store) removeMember(ctx context.Context, guildID, userID guildhall.Snowflake) (bool, error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("remove member %v of guild %v: %w", userID, guildID, err)
	}
	g, u := cqlID(guildID), cqlID(userID)
	applied, err := s.query(ctx, `DELETE FROM {ks}.members WHERE guild_id = ? AND bucket = ? AND user_id = ? IF EXISTS`,
		g, cqlMemberBucket(userID), u).MapScanCAS(map[string]any{})
	if err != nil {
		return fail(err)
	}
	// Also when nothing was removed: a removal that failed after its delete left
	// the reverse index behind.
	if err := s.write(ctx, `DELETE FROM {ks}.user_guilds WHERE user_id = ? AND guild_id = ?`, u, g); err != nil {
		return fail(err)
	}
	if !applied {
		return false, nil
	}
	if err := s.query(ctx, `UPDATE {ks}.guild_member_counts SET members = members - 1 WHERE guild_id = ?`, g).
		Idempotent(false).RetryPolicy(nil).Exec(); err != nil {
		return fail(fmt.Errorf("count: %w (the membership is gone; RecountMembers repairs the count)", err))
	}
	return true, nil
}

// DeleteGuild deletes what the guild is made of first and the guild row last, so
// that a failure part-way leaves a guild that a second DeleteGuild finishes.
func (s *Store) DeleteGuild(ctx context.Context, id guildhall.Snowflake) error {
	fail := func(err error) error { return fmt.Errorf("delete guild %v: %w", id, err) }
	g := cqlID(id)
	// Channels.
	var chs []int64
	iter := s.query(ctx, `SELECT channel_id FROM {ks}.channels_by_guild WHERE guild_id = ?`, g).Iter()
	var ch int64
	for iter.Scan(&ch) {
		chs = append(chs, ch)
	}
	if err := iter.Close(); err != nil {
		return fail(err)
	}
	if err := s.eachParallel(len(chs), func(i int) error {
		return s.write(ctx, `DELETE FROM {ks}.channels WHERE id = ?`, chs[i])
	}); err != nil {
		return fail(err)
	}
	// Members, bucket by bucket, each member's reverse index first.
	buckets := s.query(ctx, `SELECT bucket FROM {ks}.member_buckets WHERE guild_id = ?`, g).Iter()
	var b int64
	for buckets.Scan(&b) {
		members := s.query(ctx, `SELECT user_id FROM {ks}.members WHERE guild_id = ? AND bucket = ?`, g, b).PageSize(1000).Iter()
		var uids []int64
		var uid int64
		for members.Scan(&uid) {
			uids = append(uids, uid)
			if len(uids) == 1000 {
				if err := s.dropUserGuilds(ctx, g, uids); err != nil {
					members.Close()
					buckets.Close()
					return fail(err)
				}
				uids = uids[:0]
			}
		}
		if err := members.Close(); err != nil {
			buckets.Close()
			return fail(err)
		}
		if err := s.dropUserGuilds(ctx, g, uids); err != nil {
			buckets.Close()
			return fail(err)
		}
		if err := s.write(ctx, `DELETE FROM {ks}.members WHERE guild_id = ? AND bucket = ?`, g, b); err != nil {
			buckets.Close()
			return fail(err)
		}
	}
	if err := buckets.Close(); err != nil {
		return fail(err)
	}
	// Invites.
	invites, err := s.inviteCodes(ctx, id)
	if err != nil {
		return fail(err)
	}
	if err := s.eachParallel(len(invites), func(i int) error {
		return s.write(ctx, `DELETE FROM {ks}.invites WHERE code = ?`, invites[i])
	}); err != nil {
		return fail(err)
	}
	for _, stmt := range []string{
		`DELETE FROM {ks}.channels_by_guild WHERE guild_id = ?`,
		`DELETE FROM {ks}.roles WHERE guild_id = ?`,
		`DELETE FROM {ks}.member_buckets WHERE guild_id = ?`,
		`DELETE FROM {ks}.invites_by_guild WHERE guild_id = ?`,
		`DELETE FROM {ks}.bans WHERE guild_id = ?`,
	} {
		if err := s.write(ctx, stmt, g); err != nil {
			return fail(err)
		}
	}
	if err := s.query(ctx, `DELETE FROM {ks}.guild_member_counts WHERE guild_id = ?`, g).Exec(); err != nil {
		return fail(err)
	}
	if err := s.write(ctx, `DELETE FROM {ks}.guilds WHERE id = ?`, g); err != nil {
		return fail(err)
	}
	return nil
}

func (s *Store) dropUserGuilds(ctx context.Context, guild int64, users []int64) error {
	return s.eachParallel(len(users), func(i int) error {
		return s.write(ctx, `DELETE FROM {ks}.user_guilds WHERE user_id = ? AND guild_id = ?`, users[i], guild)
	})
}

// ---- bans

func (s *Store) PutBan(ctx context.Context, b guildhall.Ban) (bool, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	if err := s.write(ctx, `INSERT INTO {ks}.bans (guild_id, user_id, data) VALUES (?, ?, ?)`,
		cqlID(b.GuildID), cqlID(b.User.ID), data); err != nil {
		return false, fmt.Errorf("put ban of %v in guild %v: %w", b.User.ID, b.GuildID, err)
	}
	return s.removeMember(ctx, b.GuildID, b.User.ID)
}

func (s *Store) Ban(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Ban, error) {
	var b guildhall.Ban
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.bans WHERE guild_id = ? AND user_id = ?`, cqlID(guildID), cqlID(userID)).Scan(&data); err != nil {
		return b, cqlNotFound(err, "ban of %v in guild %v", userID, guildID)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("ban of %v in guild %v: %w", userID, guildID, err)
	}
	return b, nil
}

func (s *Store) DeleteBan(ctx context.Context, guildID, userID guildhall.Snowflake) error {
	if _, err := s.Ban(ctx, guildID, userID); err != nil {
		return err
	}
	return s.write(ctx, `DELETE FROM {ks}.bans WHERE guild_id = ? AND user_id = ?`, cqlID(guildID), cqlID(userID))
}

func (s *Store) Bans(ctx context.Context, guildID guildhall.Snowflake, q messaging.BanQuery) ([]guildhall.Ban, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var iter *gocql.Iter
	if q.Before != 0 {
		iter = s.query(ctx, `SELECT data FROM {ks}.bans WHERE guild_id = ? AND user_id < ? ORDER BY user_id DESC LIMIT ?`,
			cqlID(guildID), cqlID(q.Before), q.Limit).Iter()
	} else {
		iter = s.query(ctx, `SELECT data FROM {ks}.bans WHERE guild_id = ? AND user_id > ? LIMIT ?`,
			cqlID(guildID), cqlID(q.After), q.Limit).Iter()
	}
	out := []guildhall.Ban{}
	var data []byte
	for iter.Scan(&data) {
		var b guildhall.Ban
		if err := json.Unmarshal(data, &b); err != nil {
			iter.Close()
			return nil, fmt.Errorf("bans of guild %v: %w", guildID, err)
		}
		out = append(out, b)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("bans of guild %v: %w", guildID, err)
	}
	if q.Before != 0 {
		slices.Reverse(out)
	}
	return out, nil
}

// ---- audit log

func (s *Store) PutAuditEntry(ctx context.Context, e guildhall.AuditLogEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.audit_log (guild_id, bucket, id, data) VALUES (?, ?, ?, ?)`,
		cqlID(e.GuildID), e.ID.Bucket(), cqlID(e.ID), data)
}

func (s *Store) AuditLog(ctx context.Context, guildID guildhall.Snowflake, q messaging.AuditQuery) ([]guildhall.AuditLogEntry, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []guildhall.AuditLogEntry{}
	lo, hi := q.After.Bucket(), q.Before.Bucket()
	for i := range hi - lo + 1 {
		b := hi - i
		stmt := `SELECT data FROM {ks}.audit_log WHERE guild_id = ? AND bucket = ? AND id > ? AND id < ?`
		if q.Ascending {
			b = lo + i
			stmt += ` ORDER BY id ASC`
		}
		iter := s.query(ctx, stmt, cqlID(guildID), b, cqlID(q.After), cqlID(q.Before)).PageSize(100).Iter()
		var data []byte
		for len(out) < q.Limit && iter.Scan(&data) {
			var e guildhall.AuditLogEntry
			if err := json.Unmarshal(data, &e); err != nil {
				iter.Close()
				return nil, fmt.Errorf("audit log of guild %v: %w", guildID, err)
			}
			if (q.ActionType == 0 || e.ActionType == q.ActionType) && (q.UserID == 0 || (e.UserID != nil && *e.UserID == q.UserID)) {
				out = append(out, e)
			}
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("audit log of guild %v: %w", guildID, err)
		}
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}
