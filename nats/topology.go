package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the streams, consumers and buckets.
const (
	StreamEvents   = "EVENTS"
	ConsumerWriter = "writer"

	BucketSessions = "gh_sessions"
	BucketPresence = "gh_presence"
	BucketLeases   = "gh_leases"
	BucketLimits   = "gh_limits"
	// BucketSlowmode holds one key per (channel, user) that posted in a channel
	// with slowmode, living rate_limit_per_user seconds (per-key TTL).
	BucketSlowmode = "gh_slowmode"

	// BucketAttachments is the object store of attachment files, and
	// StreamAttachments the stream JetStream keeps it in.
	BucketAttachments = "gh_attachments"
	StreamAttachments = "OBJ_" + BucketAttachments
)

// Topology is what Apply declares. Zero values are the single-node defaults.
type Topology struct {
	// Replicas of every stream and bucket; zero value means 1. Use 3 on a cluster.
	Replicas int
	// EventRetention is how long the EVENTS stream keeps events, which bounds the
	// resume window and how long the writer may be down without losing anything.
	// Zero value means 24 hours.
	EventRetention time.Duration
	// EventMaxBytes bounds the EVENTS stream on disk; zero value means 8 GiB. When
	// full, the oldest events go first (they are in the store by then unless the
	// writer has been down longer than the stream can hold).
	EventMaxBytes int64
	// SessionTTL is the resume window: how long a session stays resumable after
	// its client left or its gateway was last seen alive. Zero value means 5
	// minutes. (Entries themselves live a day without a write, or twice the
	// window if longer: live sessions are not rewritten, see registry.)
	SessionTTL time.Duration
	// PresenceTTL is how long a gateway's users stay online after its last
	// heartbeat (its key in the presence bucket), so how soon the users of a
	// gateway that died without goodbye go offline; zero value means 60 seconds.
	PresenceTTL time.Duration
	// PresenceKeyTTL is how long a user's presence key lives without a write: a
	// backstop for keys nobody cleaned up (gateways rewrite keys older than a third
	// of it). Zero value means 1 hour.
	PresenceKeyTTL time.Duration
	// LeaseTTL is how long a snowflake worker lease lives without a refresh; zero
	// value means 30 seconds.
	LeaseTTL time.Duration
	// MemoryStorage keeps everything in memory (tests and benchmarks only).
	MemoryStorage bool
}

func (t Topology) withDefaults() Topology {
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	if t.EventRetention == 0 {
		t.EventRetention = 24 * time.Hour
	}
	if t.EventMaxBytes == 0 {
		t.EventMaxBytes = 8 << 30
	}
	if t.SessionTTL == 0 {
		t.SessionTTL = 5 * time.Minute
	}
	if t.PresenceTTL == 0 {
		t.PresenceTTL = 60 * time.Second
	}
	if t.PresenceKeyTTL == 0 {
		t.PresenceKeyTTL = time.Hour
	}
	if t.LeaseTTL == 0 {
		t.LeaseTTL = 30 * time.Second
	}
	return t
}

// EventsStreamConfig is the EVENTS stream: the durable log of every guild and user
// event, the writer's source and the resume buffer.
func (t Topology) EventsStreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Guildhall guild and user events: durable log, writer source, resume buffer",
		Subjects:    []string{SubjectInAll},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      t.EventRetention,
		MaxBytes:    t.EventMaxBytes,
		MaxMsgSize:  1 << 20,
		Discard:     jetstream.DiscardOld,
		Storage:     t.storage(),
		Replicas:    t.Replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
		RePublish: &jetstream.RePublish{
			Source:      republishSource,
			Destination: republishToEvent,
		},
	}
}

// WriterConsumerConfig is the durable pull consumer the writer persists from. It
// sees guild events and DM logs only; user events carry nothing the store needs.
func (t Topology) WriterConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:     ConsumerWriter,
		Description: "persists guild events to the store; acks after the write",
		// Guild events and the log copies of DM events (never users' copies).
		FilterSubjects: []string{SubjectInGuild, SubjectInDM},
		AckPolicy:      jetstream.AckExplicitPolicy,
		// Short, so that a dead writer's unacknowledged events come back soon (reads
		// wait on the ack floor); a live writer marks its batch in progress while the
		// store write runs, and redelivery is harmless since writes are idempotent.
		AckWait:       10 * time.Second,
		MaxAckPending: 20000,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

func (t Topology) storage() jetstream.StorageType {
	if t.MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func (t Topology) bucket(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         name,
		Description:    desc,
		History:        1,
		TTL:            ttl,
		LimitMarkerTTL: ttl,
		Storage:        t.storage(),
		Replicas:       t.Replicas,
		MaxValueSize:   64 << 10,
	}
}

// PresenceNodeTTLMeta is the presence bucket's metadata entry holding
// Topology.PresenceTTL: gateways write their heartbeat keys with it as per-key TTL.
const PresenceNodeTTLMeta = "guildhall_node_ttl"

// presenceBucket: user keys live PresenceKeyTTL without a write (a backstop);
// gateway heartbeat keys carry their own TTL, PresenceTTL, and so do the markers
// of keys that expire or are purged, so tombstones do not pile up.
func (t Topology) presenceBucket() jetstream.KeyValueConfig {
	b := t.bucket(BucketPresence, "user presence and gateway heartbeats", t.PresenceKeyTTL)
	b.LimitMarkerTTL = t.PresenceTTL
	b.Metadata = map[string]string{PresenceNodeTTLMeta: t.PresenceTTL.String()}
	return b
}

// ResumeWindowMeta is the sessions bucket's metadata entry holding
// Topology.SessionTTL, the resume window, which every gateway reads.
const ResumeWindowMeta = "guildhall_resume_window"

// sessionsBucket: an entry is written when its session starts, leaves, resumes
// and ends, never to stay alive: each gateway's heartbeat key in the bucket says
// whether its sessions are still held. The bucket's TTL is a backstop for
// entries nobody ends (a day, or twice the window), and nobody watches it: the
// markers of entries that age out need not stay long.
func (t Topology) sessionsBucket() jetstream.KeyValueConfig {
	b := t.bucket(BucketSessions, "gateway sessions, their resume positions, and the gateways' heartbeats", max(24*time.Hour, 2*t.SessionTTL))
	b.LimitMarkerTTL = time.Minute
	b.Metadata = map[string]string{ResumeWindowMeta: t.SessionTTL.String()}
	return b
}

// limitsBucket: keys live a day at most (the session start window); the
// limiter judges its concurrency windows by each key's last write, so nothing
// there has a TTL of its own, and nobody watches the bucket: the markers of keys
// that age out need not stay long.
func (t Topology) limitsBucket() jetstream.KeyValueConfig {
	b := t.bucket(BucketLimits, "gateway session start limits (identify)", 24*time.Hour)
	b.LimitMarkerTTL = time.Minute
	return b
}

// Buckets lists the key-value buckets: sessions, presence, leases and limits,
// each with a bucket-wide TTL (a key expires that long after its last write) and
// limit markers, so that watchers see expiries.
func (t Topology) Buckets() []jetstream.KeyValueConfig {
	t = t.withDefaults()
	return []jetstream.KeyValueConfig{
		t.sessionsBucket(),
		t.presenceBucket(),
		t.bucket(BucketLeases, "snowflake worker leases", t.LeaseTTL),
		t.limitsBucket(),
		t.apiStateBucket(),
		// Keys carry the channel's rate_limit_per_user as per-key TTL (at most 6 h).
		t.bucket(BucketSlowmode, "slowmode: a user's last post in a channel", 6*time.Hour),
	}
}

// Apply creates or updates every stream, consumer and bucket. It is idempotent and
// safe to run from every process at start.
func Apply(ctx context.Context, js jetstream.JetStream, t Topology) error {
	s, err := js.CreateOrUpdateStream(ctx, t.EventsStreamConfig())
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", StreamEvents, err)
	}
	if _, err := s.CreateOrUpdateConsumer(ctx, t.WriterConsumerConfig()); err != nil {
		return fmt.Errorf("nats: consumer %s: %w", ConsumerWriter, err)
	}
	for _, b := range t.Buckets() {
		if _, err := js.CreateOrUpdateKeyValue(ctx, b); err != nil {
			return fmt.Errorf("nats: bucket %s: %w", b.Bucket, err)
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, t.AttachmentsConfig()); err != nil {
		return fmt.Errorf("nats: object store %s: %w", BucketAttachments, err)
	}
	return nil
}

// AttachmentsConfig is the object store of attachment files: each file an
// object named by its attachment id, in chunks, deleted with its message.
func (t Topology) AttachmentsConfig() jetstream.ObjectStoreConfig {
	t = t.withDefaults()
	return jetstream.ObjectStoreConfig{
		Bucket:      BucketAttachments,
		Description: "attachment files, one object per attachment id",
		Storage:     t.storage(),
		Replicas:    t.Replicas,
	}
}

// Await waits until the part of the topology that role uses exists, for processes
// that use it without owning it (gateways, writers): only the api role applies the
// topology, so that processes started with different flags never undo each
// other's settings.
func Await(ctx context.Context, js jetstream.JetStream, t Topology, role Role) error {
	for {
		err := exists(ctx, js, t, role)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nats: waiting for the topology (is an api process running? At an edge site, is the JetStream domain the hub's?): %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func exists(ctx context.Context, js jetstream.JetStream, t Topology, role Role) error {
	s, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamEvents, err)
	}
	switch role {
	case RoleWriter:
		if _, err := s.Consumer(ctx, ConsumerWriter); err != nil {
			return fmt.Errorf("consumer %s: %w", ConsumerWriter, err)
		}
	case RoleGateway:
		for _, b := range gatewayBuckets {
			if _, err := js.KeyValue(ctx, b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
	default:
		for _, b := range t.Buckets() {
			if _, err := js.KeyValue(ctx, b.Bucket); err != nil {
				return fmt.Errorf("bucket %s: %w", b.Bucket, err)
			}
		}
	}
	if role != RoleGateway { // the api and the writer use the attachments' files
		if _, err := js.ObjectStore(ctx, BucketAttachments); err != nil {
			return fmt.Errorf("object store %s: %w", BucketAttachments, err)
		}
	}
	return nil
}

// IsKVConflict reports a lost compare-and-set on a KV bucket: Create on a key that
// exists, or Update on a revision that is not the latest. Replicated buckets report
// both as "key revision mismatch" (error code 10164), single-node ones as "key
// exists" (10071), so callers must accept both.
func IsKVConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}
