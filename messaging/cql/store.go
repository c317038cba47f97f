package cql

// Layout (keyspace from Config; every id a bigint; values are the domain types'
// JSON in a blob, as in the bbolt store (package bolt), so there is no second
// schema to keep in step with model.go; the keys are real columns because every
// query is by key):
//
//	messages             ((channel_id, bucket), message_id DESC) -> data
//	channel_buckets      (channel_id, bucket DESC)             the non-empty buckets
//	users                (id) -> data, password_hash
//	usernames            (name = lower(username)) -> user_id   (LWT on registration)
//	tokens               (token_hash) -> user_id
//	guilds               (id) -> data                          (MemberCount not stored)
//	guild_member_counts  (guild_id) -> members counter
//	channels             (id) -> guild_id, data
//	channels_by_guild    (guild_id, channel_id) -> data
//	roles                (guild_id, role_id) -> data
//	members              ((guild_id, bucket), user_id) -> data (User filled in)
//	member_buckets       (guild_id, bucket)                    the non-empty buckets
//	user_guilds          (user_id, guild_id)
//	invites              (code) -> data
//	schema_migrations    (version) -> name, applied_at
//	invites_by_guild     (guild_id, code)                      (a guild's invites: lists, caps, guild deletes)
//	tokens_by_user       (user_id, token_hash)                 (revoking a user's tokens)
//	bots_by_owner        (owner_id, bot_id)                    (a user's bots)
//
// (the last three from migration 2, accounts.go) and, for running a community
// (migration 3, community.go):
//
//	messages.pinned_at   a column of messages, versioned apart from data
//	channel_pins         (channel_id, message_id) -> pinned_at
//	bans                 (guild_id, user_id) -> data
//	audit_log            ((guild_id, bucket), id DESC) -> data (10-day buckets)
//
// and for conversations (migration 4, conversations.go) reactions, channel_last,
// read_states, private_channels, user_private_channels and dm_pairs.
//
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
//
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
//
// Schema. Open creates the keyspace if missing (NetworkTopologyStrategy) and
// applies the numbered migrations below that schema_migrations does not list, each
// statement idempotent (IF NOT EXISTS). On ScyllaDB and Cassandra < 5.1 concurrent
// DDL from several coordinators can race; start one process first on a new cluster
// (or keyspace) and let the others find the schema in place, which costs them only
// two reads of system_schema.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Config configures Open. Only Hosts and Keyspace are required.
type Config struct {
	// Hosts are contact points, "host" or "host:port". Required.
	Hosts []string
	// Keyspace holds the tables; created if missing. Required: letters, digits
	// and underscores, at most 48 characters.
	Keyspace string
	// Consistency of every read and write. Zero value means LOCAL_QUORUM.
	Consistency gocql.Consistency
	// ReplicationFactor is used only when the keyspace is created. Zero value means 1.
	ReplicationFactor int
	// Datacenter is the local datacenter: the one the keyspace is replicated to when
	// it is created, and the one queries are routed to. Zero value means
	// "datacenter1" (the default name in Cassandra and ScyllaDB).
	Datacenter string
	// Timeout of one request to the database. Zero value means 10 seconds.
	Timeout time.Duration
	// ConnectTimeout bounds opening a connection. Zero value means 5 seconds.
	ConnectTimeout time.Duration
	// Parallelism is how many partition batches ApplyMessages sends at once. Zero
	// value means 8.
	Parallelism int
	// QueryObserver, if not nil, sees every query (metrics, tests).
	QueryObserver gocql.QueryObserver
	// BatchObserver, if not nil, sees every batch.
	BatchObserver gocql.BatchObserver
}

// Store is the messaging.Store on ScyllaDB or Cassandra. It is safe for concurrent use by
// any number of goroutines and processes.
type Store struct {
	s   *gocql.Session
	cfg Config
	qs  sync.Map // query template -> text with the keyspace filled in
	// joins serializes JoinGuild per invite code in this process, so uses are
	// counted without lost updates (several processes may still overshoot).
	joins stripedMutex
}

var _ messaging.Store = (*Store)(nil)

var keyspaceName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

// cqlMemberBucketWindow is the width of one member partition, in user-id time.
const cqlMemberBucketWindow = 90 * 24 * time.Hour

func cqlMemberBucket(userID guildhall.Snowflake) int64 {
	return int64(userID>>22) / cqlMemberBucketWindow.Milliseconds()
}

// Batches of one partition: at most this many statements and about this many bytes
// of values, well under Cassandra's batch_size_fail_threshold (50 KiB, applied to
// multi-partition batches) and ScyllaDB's, whichever checks single partitions.
const (
	cqlMaxBatchStatements = 64
	cqlMaxBatchBytes      = 40 << 10
)

// Open connects, creates the keyspace if it does not exist and brings the
// schema up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("open cql store: no hosts")
	}
	if !keyspaceName.MatchString(cfg.Keyspace) {
		return nil, fmt.Errorf("open cql store: invalid keyspace name %q", cfg.Keyspace)
	}
	if cfg.Consistency == 0 { // gocql.Any is 0 and never what a store wants
		cfg.Consistency = gocql.LocalQuorum
	}
	if cfg.ReplicationFactor <= 0 {
		cfg.ReplicationFactor = 1
	}
	if cfg.Datacenter == "" {
		cfg.Datacenter = "datacenter1"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 8
	}

	cl := gocql.NewCluster(cfg.Hosts...)
	cl.ProtoVersion = 4
	cl.Consistency = cfg.Consistency
	cl.SerialConsistency = gocql.LocalSerial
	cl.Timeout = cfg.Timeout
	cl.ConnectTimeout = cfg.ConnectTimeout
	cl.RetryPolicy = &gocql.SimpleRetryPolicy{NumRetries: 2}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.DCAwareRoundRobinPolicy(cfg.Datacenter))
	cl.MaxWaitSchemaAgreement = time.Minute
	cl.QueryObserver = cfg.QueryObserver
	cl.BatchObserver = cfg.BatchObserver
	// No session keyspace: the keyspace may not exist yet, and one session serves
	// both the bootstrap and the queries (table names are qualified).
	s, err := cl.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("open cql store: connect %v: %w", cfg.Hosts, err)
	}
	st := &Store{s: s, cfg: cfg}
	if err := st.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open cql store: keyspace %s: %w", cfg.Keyspace, err)
	}
	return st, nil
}

// Close releases the connections.
func (s *Store) Close() error {
	s.s.Close()
	return nil
}

// cql fills {ks} in a statement template with the quoted keyspace.
func (s *Store) cql(tmpl string) string {
	if v, ok := s.qs.Load(tmpl); ok {
		return v.(string)
	}
	q := strings.ReplaceAll(tmpl, "{ks}", `"`+s.cfg.Keyspace+`"`)
	s.qs.Store(tmpl, q)
	return q
}

// query is a statement with the keyspace filled in, bound to ctx.
func (s *Store) query(ctx context.Context, tmpl string, args ...any) *gocql.Query {
	return s.s.Query(s.cql(tmpl), args...).WithContext(ctx)
}

// write runs an idempotent write.
func (s *Store) write(ctx context.Context, tmpl string, args ...any) error {
	return s.query(ctx, tmpl, args...).Idempotent(true).Exec()
}

// ---- schema

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

// ---- encoding helpers

// cqlID converts a snowflake to CQL's signed bigint. Snowflakes stay below 2^63 until
// 2084; larger values are clamped so that a cursor past every id still works.
func cqlID(s guildhall.Snowflake) int64 {
	if s > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(s)
}

func cqlNotFound(err error, format string, args ...any) error {
	if errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf(format+": %w", append(args, messaging.ErrNotFound)...)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// ---- users and tokens

func (s *Store) CreateUser(ctx context.Context, u messaging.UserRecord) error {
	data, err := json.Marshal(u.User)
	if err != nil {
		return err
	}
	// The username is claimed first, with a lightweight transaction: registration
	// is rare, and uniqueness needs consensus. A retry of the same registration (same
	// id) finds its own claim and carries on.
	name := strings.ToLower(u.User.Username)
	existing := map[string]any{}
	applied, err := s.query(ctx, `INSERT INTO {ks}.usernames (name, user_id) VALUES (?, ?) IF NOT EXISTS`, name, cqlID(u.User.ID)).
		MapScanCAS(existing)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.User.Username, err)
	}
	if owner, _ := existing["user_id"].(int64); !applied && owner != cqlID(u.User.ID) {
		return fmt.Errorf("create user %q: username taken: %w", u.User.Username, messaging.ErrConflict)
	}
	if err := s.write(ctx, `INSERT INTO {ks}.users (id, data, password_hash) VALUES (?, ?, ?)`,
		cqlID(u.User.ID), data, u.PasswordHash); err != nil {
		return fmt.Errorf("create user %q: %w", u.User.Username, err)
	}
	if u.User.Bot && u.OwnerID != 0 {
		if err := s.write(ctx, `INSERT INTO {ks}.bots_by_owner (owner_id, bot_id) VALUES (?, ?)`, cqlID(u.OwnerID), cqlID(u.User.ID)); err != nil {
			return fmt.Errorf("create bot %q: %w", u.User.Username, err)
		}
	}
	return nil
}

func (s *Store) UserByName(ctx context.Context, username string) (messaging.UserRecord, error) {
	var uid int64
	if err := s.query(ctx, `SELECT user_id FROM {ks}.usernames WHERE name = ?`, strings.ToLower(username)).Scan(&uid); err != nil {
		return messaging.UserRecord{}, cqlNotFound(err, "user %q", username)
	}
	return s.userRecord(ctx, guildhall.Snowflake(uid))
}

func (s *Store) userRecord(ctx context.Context, uid guildhall.Snowflake) (messaging.UserRecord, error) {
	var data []byte
	var rec messaging.UserRecord
	if err := s.query(ctx, `SELECT data, password_hash FROM {ks}.users WHERE id = ?`, cqlID(uid)).Scan(&data, &rec.PasswordHash); err != nil {
		return rec, cqlNotFound(err, "user %v", uid)
	}
	if err := json.Unmarshal(data, &rec.User); err != nil {
		return rec, fmt.Errorf("user %v: %w", uid, err)
	}
	rec.User.ID = uid
	return rec, nil
}

func (s *Store) User(ctx context.Context, uid guildhall.Snowflake) (guildhall.User, error) {
	rec, err := s.userRecord(ctx, uid)
	return rec.User, err
}

func (s *Store) PutToken(ctx context.Context, tokenHash string, userID guildhall.Snowflake) error {
	// The index first: a token the index does not list could not be revoked
	// with the rest of the user's.
	if err := s.write(ctx, `INSERT INTO {ks}.tokens_by_user (user_id, token_hash) VALUES (?, ?)`, cqlID(userID), tokenHash); err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.tokens (token_hash, user_id) VALUES (?, ?)`, tokenHash, cqlID(userID))
}

func (s *Store) UserByToken(ctx context.Context, tokenHash string) (guildhall.Snowflake, error) {
	var uid int64
	if err := s.query(ctx, `SELECT user_id FROM {ks}.tokens WHERE token_hash = ?`, tokenHash).Scan(&uid); err != nil {
		return 0, cqlNotFound(err, "token")
	}
	return guildhall.Snowflake(uid), nil
}

// ---- guilds, channels, roles

func (s *Store) PutGuild(ctx context.Context, g guildhall.Guild) error {
	g.MemberCount = 0 // the counter table owns it
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.guilds (id, data) VALUES (?, ?)`, cqlID(g.ID), data)
}

func (s *Store) Guild(ctx context.Context, gid guildhall.Snowflake) (guildhall.Guild, error) {
	var g guildhall.Guild
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.guilds WHERE id = ?`, cqlID(gid)).Scan(&data); err != nil {
		return g, cqlNotFound(err, "guild %v", gid)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return g, fmt.Errorf("guild %v: %w", gid, err)
	}
	g.ID = gid
	n, err := s.MemberCount(ctx, gid)
	if err != nil {
		return g, err
	}
	g.MemberCount = n
	return g, nil
}

func (s *Store) PutChannel(ctx context.Context, c guildhall.Channel) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	// A channel that moved to another guild leaves its old listing.
	var oldGuild int64
	err = s.query(ctx, `SELECT guild_id FROM {ks}.channels WHERE id = ?`, cqlID(c.ID)).Scan(&oldGuild)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
	case err != nil:
		return fmt.Errorf("put channel %v: %w", c.ID, err)
	case oldGuild != cqlID(c.GuildID):
		if err := s.write(ctx, `DELETE FROM {ks}.channels_by_guild WHERE guild_id = ? AND channel_id = ?`, oldGuild, cqlID(c.ID)); err != nil {
			return fmt.Errorf("put channel %v: %w", c.ID, err)
		}
	}
	// Both rows or neither: a logged batch (rare writes, two partitions).
	b := s.s.NewBatch(gocql.LoggedBatch).WithContext(ctx)
	b.Entries = append(b.Entries,
		gocql.BatchEntry{Stmt: s.cql(`INSERT INTO {ks}.channels (id, guild_id, data) VALUES (?, ?, ?)`),
			Args: []any{cqlID(c.ID), cqlID(c.GuildID), data}, Idempotent: true},
		gocql.BatchEntry{Stmt: s.cql(`INSERT INTO {ks}.channels_by_guild (guild_id, channel_id, data) VALUES (?, ?, ?)`),
			Args: []any{cqlID(c.GuildID), cqlID(c.ID), data}, Idempotent: true})
	if err := s.s.ExecuteBatch(b); err != nil {
		return fmt.Errorf("put channel %v: %w", c.ID, err)
	}
	return nil
}

func (s *Store) Channel(ctx context.Context, cid guildhall.Snowflake) (guildhall.Channel, error) {
	var c guildhall.Channel
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.channels WHERE id = ?`, cqlID(cid)).Scan(&data); err != nil {
		return c, cqlNotFound(err, "channel %v", cid)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("channel %v: %w", cid, err)
	}
	return c, nil
}

func (s *Store) Channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	out := []guildhall.Channel{}
	iter := s.query(ctx, `SELECT data FROM {ks}.channels_by_guild WHERE guild_id = ?`, cqlID(guildID)).Iter()
	var data []byte
	for iter.Scan(&data) {
		var c guildhall.Channel
		if err := json.Unmarshal(data, &c); err != nil {
			iter.Close()
			return nil, fmt.Errorf("channels of guild %v: %w", guildID, err)
		}
		out = append(out, c)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("channels of guild %v: %w", guildID, err)
	}
	guildhall.SortChannels(out)
	return out, nil
}

func (s *Store) PutRole(ctx context.Context, guildID guildhall.Snowflake, r guildhall.Role) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.roles (guild_id, role_id, data) VALUES (?, ?, ?)`, cqlID(guildID), cqlID(r.ID), data)
}

// Roles lists a guild's roles by id ascending.
func (s *Store) Roles(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Role, error) {
	out := []guildhall.Role{}
	iter := s.query(ctx, `SELECT data FROM {ks}.roles WHERE guild_id = ?`, cqlID(guildID)).Iter()
	var data []byte
	for iter.Scan(&data) {
		var r guildhall.Role
		if err := json.Unmarshal(data, &r); err != nil {
			iter.Close()
			return nil, fmt.Errorf("roles of guild %v: %w", guildID, err)
		}
		out = append(out, r)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("roles of guild %v: %w", guildID, err)
	}
	return out, nil
}

// ---- members

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

// ---- invites

func (s *Store) PutInvite(ctx context.Context, inv guildhall.Invite) error {
	if err := s.write(ctx, `INSERT INTO {ks}.invites_by_guild (guild_id, code) VALUES (?, ?)`, cqlID(inv.GuildID), inv.Code); err != nil {
		return err
	}
	return s.putInviteData(ctx, inv)
}

// putInviteData writes the invite's row alone: JoinGuild's update of one that
// is indexed already.
func (s *Store) putInviteData(ctx context.Context, inv guildhall.Invite) error {
	data, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	return s.write(ctx, `INSERT INTO {ks}.invites (code, data) VALUES (?, ?)`, inv.Code, data)
}

// JoinGuild reads the invite and the membership at once, then writes the member
// and the counted invite at once. Not a logged batch: the membership's
// create-if-absent (LWT) and the member counter cannot share a batch with other
// tables. If one write fails the join fails; a use counted without its member only
// uses the invite up sooner.
func (s *Store) JoinGuild(ctx context.Context, m guildhall.Member, code string) (guildhall.Invite, bool, error) {
	unlock := s.joins.lock(code)
	defer unlock()
	var inv guildhall.Invite
	var exists bool
	err := cqlParallel(
		func() (err error) { inv, err = s.Invite(ctx, code); return err },
		func() error {
			var one int64
			err := s.query(ctx, `SELECT user_id FROM {ks}.members WHERE guild_id = ? AND bucket = ? AND user_id = ?`,
				cqlID(m.GuildID), cqlMemberBucket(m.User.ID), cqlID(m.User.ID)).Scan(&one)
			exists = err == nil
			if errors.Is(err, gocql.ErrNotFound) {
				return nil
			}
			return err
		},
	)
	if err != nil {
		return guildhall.Invite{}, false, err
	}
	if exists {
		return inv, false, nil
	}
	if inv.MaxUses > 0 && inv.Uses >= inv.MaxUses {
		return guildhall.Invite{}, false, fmt.Errorf("invite %q: %w", code, messaging.ErrInviteUsedUp)
	}
	inv.Uses++
	err = cqlParallel(
		func() error { return s.PutMember(ctx, m) },
		func() error { return s.putInviteData(ctx, inv) },
	)
	if err != nil {
		return guildhall.Invite{}, false, err
	}
	return inv, true, nil
}

func (s *Store) Invite(ctx context.Context, code string) (guildhall.Invite, error) {
	var inv guildhall.Invite
	var data []byte
	if err := s.query(ctx, `SELECT data FROM {ks}.invites WHERE code = ?`, code).Scan(&data); err != nil {
		return inv, cqlNotFound(err, "invite %q", code)
	}
	if err := json.Unmarshal(data, &inv); err != nil {
		return inv, fmt.Errorf("invite %q: %w", code, err)
	}
	return inv, nil
}

// ---- messages

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

// stripedMutex is a fixed set of mutexes picked by key hash: bounded memory,
// mutual exclusion per key (and, rarely, between keys sharing a stripe).
type stripedMutex [64]sync.Mutex

func (m *stripedMutex) lock(key string) func() {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	mu := &m[h%uint32(len(m))]
	mu.Lock()
	return mu.Unlock
}
