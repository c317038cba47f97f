package cql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Members. A 1,000,000-member guild must not be one partition read at once, and
// should not be one 300 MB partition either. Members are partitioned by (guild,
// 90-day window of the user id's creation time) with member_buckets listing the
// non-empty windows, so Members(after, limit) is a walk up from after's window, at
// most limit rows read, and partitions stay bounded by how many accounts created in
// one quarter joined the guild. The member row holds the User as it was when the
// membership was put (from users if the account exists): the Store has no way to
// change an account, so the copy cannot go stale today.
//
// Member counts. A counter table, incremented only when a membership is created.
// "Created" is decided by INSERT ... IF NOT EXISTS (a lightweight transaction) on the
// member row: exactly one of two concurrent joins of the same user applies, so
// distinct members are counted once; the replace path is a plain upsert. Joining a
// guild is not the message hot path, so the LWT is affordable there. Counter updates
// are not idempotent: the increment is sent with no driver retry, so a timeout can
// lose (never double) one count; RecountMembers repairs a guild's counter from its
// rows. Counting rows at read time instead would scan a million rows per Guild().

// cqlMemberBucketWindow is the width of one member partition, in user-id time.
const cqlMemberBucketWindow = 90 * 24 * time.Hour

func cqlMemberBucket(userID guildhall.Snowflake) int64 {
	return int64(userID>>22) / cqlMemberBucketWindow.Milliseconds()
}

func (s *Store) PutMember(ctx context.Context, m guildhall.Member) error {
	fail := func(err error) error {
		return fmt.Errorf("put member %v of guild %v: %w", m.User.ID, m.GuildID, err)
	}
	g, u, b := cqlID(m.GuildID), cqlID(m.User.ID), cqlMemberBucket(m.User.ID)
	// One round trip for what does not depend on anything: the account (the source
	// of the user's fields; a member without one, an import or a test, keeps what it
	// was given), whether the membership exists, and the two index rows. The index
	// rows are idempotent and land before the member row, so a retry of a half-done
	// PutMember completes it.
	var rec messaging.UserRecord
	var userErr, existsErr error
	var exists bool
	err := cqlParallel(
		func() error { rec, userErr = s.userRecord(ctx, m.User.ID); return nil },
		func() error {
			var one int64
			existsErr = s.query(ctx, `SELECT user_id FROM {ks}.members WHERE guild_id = ? AND bucket = ? AND user_id = ?`, g, b, u).Scan(&one)
			exists = existsErr == nil
			if errors.Is(existsErr, gocql.ErrNotFound) {
				existsErr = nil
			}
			return nil
		},
		func() error {
			return s.write(ctx, `INSERT INTO {ks}.member_buckets (guild_id, bucket) VALUES (?, ?)`, g, b)
		},
		func() error {
			return s.write(ctx, `INSERT INTO {ks}.user_guilds (user_id, guild_id) VALUES (?, ?)`, u, g)
		},
	)
	if err == nil {
		err = existsErr
	}
	if err == nil && userErr != nil && !errors.Is(userErr, messaging.ErrNotFound) {
		err = userErr
	}
	if err != nil {
		return fail(err)
	}
	if userErr == nil {
		m.User = rec.User
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fail(err)
	}
	upsert := func() error {
		return s.write(ctx, `INSERT INTO {ks}.members (guild_id, bucket, user_id, data) VALUES (?, ?, ?, ?)`, g, b, u, data)
	}
	if exists { // a replace (nick, roles): a plain upsert, not counted
		if err := upsert(); err != nil {
			return fail(err)
		}
		return nil
	}
	// Looks new. Create-if-absent decides, once across all processes, whether it is
	// (see the file comment on member counts); the loser of a race replaces.
	applied, err := s.query(ctx, `INSERT INTO {ks}.members (guild_id, bucket, user_id, data) VALUES (?, ?, ?, ?) IF NOT EXISTS`,
		g, b, u, data).MapScanCAS(map[string]any{})
	if err != nil {
		return fail(err)
	}
	if !applied {
		if err := upsert(); err != nil {
			return fail(err)
		}
		return nil
	}
	// Not idempotent: no driver retry (a retried increment after a timeout could
	// count twice).
	if err := s.query(ctx, `UPDATE {ks}.guild_member_counts SET members = members + 1 WHERE guild_id = ?`, g).
		Idempotent(false).RetryPolicy(nil).Exec(); err != nil {
		return fail(fmt.Errorf("count: %w (the membership is stored; RecountMembers repairs the count)", err))
	}
	return nil
}

// cqlParallel runs fns at once and returns the first error after all have returned.
func cqlParallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeCQLMember(data []byte, guildID guildhall.Snowflake, userID int64) (guildhall.Member, error) {
	var m guildhall.Member
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("member %v of guild %v: %w", userID, guildID, err)
	}
	m.GuildID, m.User.ID = guildID, guildhall.Snowflake(userID)
	return m, nil
}

func (s *Store) Member(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, error) {
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.members WHERE guild_id = ? AND bucket = ? AND user_id = ?`,
		cqlID(guildID), cqlMemberBucket(userID), cqlID(userID)).Scan(&data); err != nil {
		return guildhall.Member{}, cqlNotFound(err, "member %v of guild %v", userID, guildID)
	}
	return decodeCQLMember(data, guildID, cqlID(userID))
}

// Members walks the guild's member buckets upwards from after's, reading at most
// limit rows in all.
func (s *Store) Members(ctx context.Context, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error) {
	out := []guildhall.Member{}
	if limit <= 0 {
		return out, nil
	}
	g := cqlID(guildID)
	buckets := s.query(ctx, `SELECT bucket FROM {ks}.member_buckets WHERE guild_id = ? AND bucket >= ?`,
		g, cqlMemberBucket(after)).PageSize(32).Iter()
	var b int64
	for len(out) < limit && buckets.Scan(&b) {
		iter := s.query(ctx, `SELECT user_id, data FROM {ks}.members WHERE guild_id = ? AND bucket = ? AND user_id > ? LIMIT ?`,
			g, b, cqlID(after), limit-len(out)).PageSize(min(limit, 1000)).Iter()
		var uid int64
		var data []byte
		for iter.Scan(&uid, &data) {
			m, err := decodeCQLMember(data, guildID, uid)
			if err != nil {
				iter.Close()
				buckets.Close()
				return nil, err
			}
			out = append(out, m)
		}
		if err := iter.Close(); err != nil {
			buckets.Close()
			return nil, fmt.Errorf("members of guild %v: %w", guildID, err)
		}
	}
	if err := buckets.Close(); err != nil {
		return nil, fmt.Errorf("members of guild %v: %w", guildID, err)
	}
	return out, nil
}

func (s *Store) MemberCount(ctx context.Context, guildID guildhall.Snowflake) (int, error) {
	var n int64
	err := s.query(ctx, `SELECT members FROM {ks}.guild_member_counts WHERE guild_id = ?`, cqlID(guildID)).Scan(&n)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("member count of guild %v: %w", guildID, err)
	}
	return int(n), nil
}

// RecountMembers counts a guild's member rows (paging, never all at once) and
// moves its counter to that number: the repair for a count that a failed increment
// left one short. Joins that race with it may be off by their own increments;
// run it when the guild is quiet.
func (s *Store) RecountMembers(ctx context.Context, guildID guildhall.Snowflake) (int, error) {
	total := 0
	buckets := s.query(ctx, `SELECT bucket FROM {ks}.member_buckets WHERE guild_id = ?`, cqlID(guildID)).Iter()
	var b int64
	for buckets.Scan(&b) {
		var n int64
		if err := s.query(ctx, `SELECT COUNT(*) FROM {ks}.members WHERE guild_id = ? AND bucket = ?`, cqlID(guildID), b).Scan(&n); err != nil {
			buckets.Close()
			return 0, fmt.Errorf("recount guild %v: %w", guildID, err)
		}
		total += int(n)
	}
	if err := buckets.Close(); err != nil {
		return 0, fmt.Errorf("recount guild %v: %w", guildID, err)
	}
	cur, err := s.MemberCount(ctx, guildID)
	if err != nil {
		return 0, err
	}
	if d := total - cur; d != 0 {
		if err := s.query(ctx, `UPDATE {ks}.guild_member_counts SET members = members + ? WHERE guild_id = ?`, int64(d), cqlID(guildID)).
			Idempotent(false).RetryPolicy(nil).Exec(); err != nil {
			return 0, fmt.Errorf("recount guild %v: %w", guildID, err)
		}
	}
	return total, nil
}

func (s *Store) UserGuilds(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.Snowflake, error) {
	out := []guildhall.Snowflake{}
	iter := s.query(ctx, `SELECT guild_id FROM {ks}.user_guilds WHERE user_id = ?`, cqlID(userID)).Iter()
	var g int64
	for iter.Scan(&g) {
		out = append(out, guildhall.Snowflake(g))
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("guilds of user %v: %w", userID, err)
	}
	return out, nil
}
