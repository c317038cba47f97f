package cql_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/cql"
	"github.com/guildhall/guildhall/messaging/storetest"
	"github.com/guildhall/guildhall/testenv"
)

// TestCQLStoreContract runs the Store contract against Cassandra.
//
// All subtests share one keyspace: the contract does not need an empty store (every
// subtest draws random ids), and on this 2-core machine creating a keyspace with its
// 15 tables takes 0.6-3.5 s and dropping it about as long, which per subtest was a
// third of the suite's time. A shared keyspace also shows that subtests' data does
// not leak into each other's reads. Fresh-keyspace opening is covered by the other
// tests here (each opens its own).
func TestCQLStoreContract(t *testing.T) {
	c := testenv.NeedCassandra(t)
	rss, _ := c.RSS()
	t.Logf("cassandra %v: started in %v, RSS %d MiB", c.Hosts, c.StartupTime.Round(time.Millisecond), rss>>20)
	s := openStore(t, cql.Config{})
	begin := time.Now()
	storetest.Run(t, func(t *testing.T) messaging.Store { return s })
	t.Logf("contract suite on CQL took %v", time.Since(begin).Round(time.Millisecond))
}

// TestCQLMigrationsOnce: opening an up-to-date keyspace again applies nothing and
// keeps the data.
func TestCQLMigrationsOnce(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, cql.Config{})
	g := guildhall.Guild{ID: 42, Name: "kept", OwnerID: 1}
	if err := s.PutGuild(ctx, g); err != nil {
		t.Fatal(err)
	}
	var count queryCounter
	begin := time.Now()
	s2, err := cql.Open(ctx, cql.Config{Hosts: testenv.NeedCassandra(t).Hosts, Keyspace: s.Keyspace(), QueryObserver: &count})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer s2.Close()
	reopenQueries := count.n.Load()
	t.Logf("reopen of a migrated keyspace: %v, %d queries", time.Since(begin).Round(time.Millisecond), reopenQueries)
	var versions []int
	iter := s2.Session().Query(`SELECT version FROM "` + s.Keyspace() + `".schema_migrations`).Iter()
	var v int
	for iter.Scan(&v) {
		versions = append(versions, v)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(versions) != cql.SchemaVersion() {
		t.Errorf("schema_migrations = %v; want versions 1..%d once each", versions, cql.SchemaVersion())
	}
	if got, err := s2.Guild(ctx, g.ID); err != nil || got.Name != g.Name {
		t.Errorf("Guild after reopen = %+v, %v; want %q", got, err, g.Name)
	}
	if reopenQueries > 3 {
		t.Errorf("reopening an up-to-date keyspace sent %d queries; want 3 reads, no DDL", reopenQueries)
	}
}

// TestCQLMigrationsUpgrade: a keyspace from before the guild invite index (at
// version 1, its invites not indexed) gets the index with its old invites in it,
// so the caps count them and the lists show them; a keyspace whose version 2
// was recorded by another build's migration 2 (two unreleased branches each
// had one) is refused, not left without the tables this build's 2 makes.
func TestCQLMigrationsUpgrade(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, cql.Config{})
	ks := `"` + s.Keyspace() + `"`
	guild := guildhall.Snowflake(77)
	old := guildhall.Invite{Code: "oldinvite", GuildID: guild, ChannelID: 78, InviterID: 1, CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := s.PutInvite(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Back to version 1: no index, and only migration 1 recorded.
	for _, stmt := range []string{
		`DROP TABLE ` + ks + `.invites_by_guild`,
		`DELETE FROM ` + ks + `.schema_migrations WHERE version IN (2, 3, 4)`,
	} {
		if err := s.Session().Query(stmt).WithContext(ctx).Exec(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	reopen := func() (*cql.Store, error) {
		return cql.Open(ctx, cql.Config{Hosts: testenv.NeedCassandra(t).Hosts, Keyspace: s.Keyspace()})
	}
	s2, err := reopen()
	if err != nil {
		t.Fatalf("Open of a version 1 keyspace: %v", err)
	}
	invs, err := s2.GuildInvites(ctx, guild)
	s2.Close()
	if err != nil || len(invs) != 1 || invs[0].Code != old.Code {
		t.Fatalf("GuildInvites after the upgrade = %+v, %v; want the old invite", invs, err)
	}
	names := map[int]string{}
	iter := s.Session().Query(`SELECT version, name FROM ` + ks + `.schema_migrations`).WithContext(ctx).Iter()
	var v int
	var name string
	for iter.Scan(&v, &name) {
		names[v] = name
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(names) != cql.SchemaVersion() || names[2] != "account indexes" || !strings.HasPrefix(names[3], "community") ||
		!strings.HasPrefix(names[4], "reactions") {
		t.Errorf("schema_migrations = %v; want 1..%d, 2 the account indexes, 3 the community's, 4 the conversations'", names, cql.SchemaVersion())
	}

	// Version 2 as the community branch recorded it before the merge.
	if err := s.Session().Query(`UPDATE `+ks+`.schema_migrations SET name = ? WHERE version = 2`,
		"community: pins, bans, guild invites, audit log").WithContext(ctx).Exec(); err != nil {
		t.Fatal(err)
	}
	if s3, err := reopen(); err == nil {
		s3.Close()
		t.Fatal("Open of a keyspace whose version 2 is another migration succeeded; want an error")
	} else if !strings.Contains(err.Error(), "schema version 2") {
		t.Errorf("Open of a keyspace whose version 2 is another migration: %v; want it to name version 2", err)
	}
}

// TestCQLSparseHistoryQueryCount: a channel with messages two years apart is read
// with a handful of queries, not one per empty 10-day bucket in between.
func TestCQLSparseHistoryQueryCount(t *testing.T) {
	ctx := t.Context()
	var count queryCounter
	s := openStore(t, cql.Config{QueryObserver: &count})
	ch := guildhall.Snowflake(1 << 45)
	old := guildhall.SnowflakeAt(time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC))
	recent := guildhall.SnowflakeAt(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	var writes []messaging.MessageWrite
	for i, id := range []guildhall.Snowflake{old, old + 1, recent, recent + 1} {
		writes = append(writes, messaging.MessageWrite{Seq: uint64(i + 1), Message: guildhall.Message{ID: id, ChannelID: ch, Content: fmt.Sprint(i)}})
	}
	if err := s.ApplyMessages(ctx, writes); err != nil {
		t.Fatal(err)
	}
	for _, q := range []messaging.HistoryQuery{{Limit: 50}, {Before: recent, Limit: 50}, {After: old + 1, Limit: 50}, {Around: recent, Limit: 4}} {
		count.n.Store(0)
		got, err := s.History(ctx, ch, q)
		if err != nil {
			t.Fatal(err)
		}
		// A walk is one read of the bucket list plus one per non-empty bucket
		// visited; around walks both ways.
		if n := count.n.Load(); n > 6 {
			t.Errorf("History(%+v) of a channel with 2 non-empty buckets 73 buckets apart took %d queries; want at most 6", q, n)
		}
		if len(got) == 0 {
			t.Errorf("History(%+v) = nothing", q)
		}
	}
}

// TestCQLApplyMessagesLargeBatch: one call with many big messages in one
// partition is split into batches under the server's batch size limit.
func TestCQLApplyMessagesLargeBatch(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, cql.Config{})
	ch := guildhall.Snowflake(7 << 40)
	at := guildhall.SnowflakeAt(time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC))
	content := strings.Repeat("é", guildhall.MaxMessageContent) // 4000 bytes
	var writes []messaging.MessageWrite
	for i := range 300 {
		writes = append(writes, messaging.MessageWrite{Seq: uint64(i + 1), Message: guildhall.Message{
			ID: at + guildhall.Snowflake(i), ChannelID: ch, Content: content,
		}})
	}
	if err := s.ApplyMessages(ctx, writes); err != nil {
		t.Fatalf("ApplyMessages(300 x 4 KB): %v", err)
	}
	got, err := s.History(ctx, ch, messaging.HistoryQuery{Limit: 100})
	if err != nil || len(got) != 100 || got[0].ID != at+299 || got[0].Content != content {
		t.Fatalf("History = %d messages, %v; want 100, newest %v", len(got), err, at+299)
	}
}

// TestCQLMemberCountConcurrentJoins: the same user joining many times at once is
// counted once; distinct users each once.
func TestCQLMemberCountConcurrentJoins(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, cql.Config{})
	g := guildhall.Snowflake(99 << 30)
	joined := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := guildhall.Snowflake(1<<40 + i%5) // 5 distinct users, 8 joins each
			if err := s.PutMember(ctx, guildhall.Member{GuildID: g, User: guildhall.User{ID: uid}, JoinedAt: joined}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := s.MemberCount(ctx, g); err != nil || n != 5 {
		t.Errorf("MemberCount after 40 concurrent joins of 5 users = %d, %v; want 5", n, err)
	}
	if n, err := s.RecountMembers(ctx, g); err != nil || n != 5 {
		t.Errorf("RecountMembers = %d, %v; want 5", n, err)
	}
}

// TestCQLOpenErrors: bad configuration is refused before any I/O.
func TestCQLOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []cql.Config{
		{Keyspace: "ok"},
		{Hosts: []string{"127.0.0.1"}, Keyspace: "bad-name"},
		{Hosts: []string{"127.0.0.1"}, Keyspace: `x"; DROP KEYSPACE system; --`},
	} {
		if s, err := cql.Open(ctx, cfg); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded; want an error", cfg)
		}
	}
}

// TestCassandraRestart: the launcher can stop the server and bring it back on the
// same data and port (what the outage fault test builds on); acknowledged writes
// survive a SIGTERM restart.
func TestCassandraRestart(t *testing.T) {
	testenv.SkipShort(t, "restarts Cassandra (~20 s)")
	c := testenv.NeedCassandra(t)
	if c.External {
		testenv.Unavailable(t, "external Cassandra ("+testenv.EnvCQLHosts+"): cannot restart it")
	}
	ctx := t.Context()
	s := openStore(t, cql.Config{})
	ch := guildhall.Snowflake(5 << 40)
	id := guildhall.SnowflakeAt(time.Date(2024, 9, 9, 0, 0, 0, 0, time.UTC))
	if err := s.ApplyMessages(ctx, []messaging.MessageWrite{{Seq: 1, Message: guildhall.Message{ID: id, ChannelID: ch, Content: "survives"}}}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(begin).Round(time.Millisecond))
	if c.Running() {
		t.Fatal("Running() after Stop")
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := s.Message(short, ch, id)
	cancel()
	if err == nil {
		t.Fatal("Message succeeded while Cassandra was stopped")
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	rss, _ := c.RSS()
	t.Logf("restarted in %v, RSS %d MiB", c.StartupTime.Round(time.Millisecond), rss>>20)
	// The store's session reconnects by itself.
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := s.Message(ctx, ch, id)
		if err == nil {
			if m.Content != "survives" {
				t.Fatalf("Message after restart = %q; want %q", m.Content, "survives")
			}
			break
		}
		if errors.Is(err, messaging.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("Message after restart: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
