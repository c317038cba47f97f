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
// Each file holds what it stores: accounts.go (users, tokens, bots), guilds.go
// (guilds, channels, roles), members.go, invites.go, messages.go (messages and
// history), community.go (pins, bans, the audit log, deletes), conversations.go
// (reactions, read states, DMs); schema.go applies the migrations.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
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

// Unavailable reports whether err means the database could not be reached or
// did not answer in time (the api answers 503 and, where it can, serves from
// its projection of the event stream), as opposed to a bad query or bad data.
// The end of the caller's context is neither: the caller went away.
func (s *Store) Unavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{
		gocql.ErrNoConnections, gocql.ErrTimeoutNoResponse, gocql.ErrTooManyTimeouts, gocql.ErrConnectionClosed,
		gocql.ErrNoStreams, gocql.ErrUnavailable, gocql.ErrSessionClosed,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var (
		unavailable  *gocql.RequestErrUnavailable
		readTimeout  *gocql.RequestErrReadTimeout
		writeTimeout *gocql.RequestErrWriteTimeout
		netErr       net.Error
	)
	if errors.As(err, &unavailable) || errors.As(err, &readTimeout) || errors.As(err, &writeTimeout) || errors.As(err, &netErr) {
		return true
	}
	// gocql's "unable to fetch prepared info: no connection available" has no
	// value or type of its own.
	return strings.Contains(err.Error(), "no connection available")
}
