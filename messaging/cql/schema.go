package cql

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Schema. Open creates the keyspace if missing (NetworkTopologyStrategy) and
// applies the numbered migrations below that schema_migrations does not list, each
// statement idempotent (IF NOT EXISTS). On ScyllaDB and Cassandra < 5.1 concurrent
// DDL from several coordinators can race; start one process first on a new cluster
// (or keyspace) and let the others find the schema in place, which costs them only
// two reads of system_schema.

// cqlMigration is one schema version. Statements must be idempotent (IF NOT EXISTS)
// so that a migration interrupted half-way can run again.
//
// A version's name is recorded with it and checked at every Open: once a
// build that applies a version may have run against a database, neither its
// number nor its name changes. (Two unreleased branches each numbered their
// migration 2; the one merged second became 3, and a keyspace that recorded
// the other meaning of 2 is refused rather than left without tables. Likewise
// the conversations' 3 became 4, after the community's.)
type cqlMigration struct {
	version int
	name    string
	stmts   []string
	// then, if set, runs after the statements (data the new schema needs); it
	// must be idempotent too.
	then func(ctx context.Context, s *Store) error
}

var cqlMigrations = []cqlMigration{
	{1, "initial schema", []string{
		`CREATE TABLE IF NOT EXISTS {ks}.messages (
			channel_id bigint, bucket bigint, message_id bigint, data blob,
			PRIMARY KEY ((channel_id, bucket), message_id)
		) WITH CLUSTERING ORDER BY (message_id DESC)`,
		`CREATE TABLE IF NOT EXISTS {ks}.channel_buckets (
			channel_id bigint, bucket bigint,
			PRIMARY KEY (channel_id, bucket)
		) WITH CLUSTERING ORDER BY (bucket DESC)`,
		`CREATE TABLE IF NOT EXISTS {ks}.users (id bigint PRIMARY KEY, data blob, password_hash text)`,
		`CREATE TABLE IF NOT EXISTS {ks}.usernames (name text PRIMARY KEY, user_id bigint)`,
		`CREATE TABLE IF NOT EXISTS {ks}.tokens (token_hash text PRIMARY KEY, user_id bigint)`,
		`CREATE TABLE IF NOT EXISTS {ks}.guilds (id bigint PRIMARY KEY, data blob)`,
		`CREATE TABLE IF NOT EXISTS {ks}.guild_member_counts (guild_id bigint PRIMARY KEY, members counter)`,
		`CREATE TABLE IF NOT EXISTS {ks}.channels (id bigint PRIMARY KEY, guild_id bigint, data blob)`,
		`CREATE TABLE IF NOT EXISTS {ks}.channels_by_guild (
			guild_id bigint, channel_id bigint, data blob,
			PRIMARY KEY (guild_id, channel_id)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.roles (
			guild_id bigint, role_id bigint, data blob,
			PRIMARY KEY (guild_id, role_id)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.members (
			guild_id bigint, bucket bigint, user_id bigint, data blob,
			PRIMARY KEY ((guild_id, bucket), user_id)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.member_buckets (
			guild_id bigint, bucket bigint,
			PRIMARY KEY (guild_id, bucket)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.user_guilds (
			user_id bigint, guild_id bigint,
			PRIMARY KEY (user_id, guild_id)
		)`,
		`CREATE TABLE IF NOT EXISTS {ks}.invites (code text PRIMARY KEY, data blob)`,
	}, nil},
	accountsMigration,
	communityMigration,
	conversationMigration,
}

// schemaVersion is the newest schema version this build knows.
func schemaVersion() int { return cqlMigrations[len(cqlMigrations)-1].version }

// migrate creates the keyspace and schema_migrations if missing and applies the
// migrations not yet recorded there, in order. A database already up to date costs
// three reads and no DDL.
func (s *Store) migrate(ctx context.Context) error {
	var n int
	if err := s.s.Query(`SELECT COUNT(*) FROM system_schema.keyspaces WHERE keyspace_name = ?`, s.cfg.Keyspace).
		WithContext(ctx).Scan(&n); err != nil {
		return fmt.Errorf("look up keyspace: %w", err)
	}
	if n == 0 {
		stmt := fmt.Sprintf(`CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {'class': 'NetworkTopologyStrategy', '%s': %d}`,
			strings.ReplaceAll(s.cfg.Datacenter, "'", "''"), s.cfg.ReplicationFactor)
		if err := s.query(ctx, stmt).Exec(); err != nil {
			return fmt.Errorf("create keyspace: %w", err)
		}
	}
	if err := s.s.Query(`SELECT COUNT(*) FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'schema_migrations'`,
		s.cfg.Keyspace).WithContext(ctx).Scan(&n); err != nil {
		return fmt.Errorf("look up schema_migrations: %w", err)
	}
	if n == 0 {
		if err := s.query(ctx, `CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, name text, applied_at timestamp)`).Exec(); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	applied := map[int]string{} // version -> name
	iter := s.query(ctx, `SELECT version, name FROM {ks}.schema_migrations`).Iter()
	var v int
	var name string
	for iter.Scan(&v, &name) {
		applied[v] = name
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for _, m := range cqlMigrations {
		if name, ok := applied[m.version]; ok && name != m.name {
			return fmt.Errorf("schema version %d was applied as %q, this build's %d is %q: the keyspace was migrated by an unreleased build; create a new one", m.version, name, m.version, m.name)
		}
	}
	for _, m := range cqlMigrations {
		if _, ok := applied[m.version]; ok {
			continue
		}
		for _, stmt := range m.stmts {
			if err := s.query(ctx, stmt).Exec(); err != nil && !cqlAlreadyAdded(stmt, err) {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if m.then != nil {
			if err := m.then(ctx, s); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if err := s.write(ctx, `INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now()); err != nil {
			return fmt.Errorf("record migration %d: %w", m.version, err)
		}
	}
	for v := range applied {
		if v > schemaVersion() {
			return fmt.Errorf("schema version %d is newer than this build knows (%d)", v, schemaVersion())
		}
	}
	return nil
}
