package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Service. Store, Conn, JS and IDs are required; every other
// field documents its zero value.
type Config struct {
	// Store keeps accounts, guilds and messages. The Service writes metadata
	// (users, guilds, channels, members, invites) to it directly and reads
	// messages from it; messages are written only by the Writer.
	Store Store
	// Conn publishes ephemeral events (typing) on core NATS.
	Conn *natsgo.Conn
	// JS publishes guild and user events to the EVENTS stream.
	JS jetstream.JetStream
	// IDs hands out snowflakes; the caller leases its node (ghnats.AcquireNode).
	IDs *guildhall.SnowflakeGenerator
	// Barrier makes history read-your-writes. Zero value means a Barrier that polls
	// the writer's durable consumer (correct with any number of writers anywhere,
	// a few ms slower than one that knows a local Writer; see NewBarrier).
	Barrier ReadBarrier
	// Metrics records publish latency and the like. Zero value means metrics that
	// are kept but registered nowhere.
	Metrics *Metrics
	// Logger for what goes wrong inside. Zero value means no logs.
	Logger *slog.Logger
	// TokenCacheSize bounds the in-memory token → user cache. Zero value means
	// 10000 tokens.
	TokenCacheSize int
	// TokenCacheTTL is how long a cached token is believed without asking the
	// store: what bounds how long a revoked token keeps working on a process
	// that missed the revocation (see WatchRevocations). While the store cannot
	// be reached, an expired entry is still believed for up to 10 minutes more
	// (tokenStaleGrace): nobody can revoke a token then, as revoking writes the
	// store first. Zero value means 1 minute.
	TokenCacheTTL time.Duration
	// Projection bounds and tunes the projection of the event stream that
	// authorizes requests without the store (see RunProjection); its zero value
	// is documented field by field.
	Projection ProjectionConfig
	// Logins throttles password guessing across api processes; see
	// LoginLimits for its zero value.
	Logins LoginLimits
	// GroupDMsPerHour bounds how many group DMs one user may create in an hour,
	// across api processes (more answer 429 with retry_after), so nobody can
	// bury someone's DM list under groups. Zero value means
	// DefaultGroupDMsPerHour (20); a negative value means no bound.
	GroupDMsPerHour int
	// BcryptCost is the bcrypt cost of password hashes. Zero value means 10. Tests
	// may lower it to bcrypt.MinCost (4).
	BcryptCost int
	// PublishTimeout bounds one publish attempt to JetStream (a publish is tried
	// up to three times with the same Nats-Msg-Id, so retries are stored once).
	// Zero value means 5 seconds.
	PublishTimeout time.Duration
	// TypingInterval is how often one user's typing in one channel is
	// re-published; calls in between answer 204 and publish nothing (clients
	// repeat typing every few seconds, and TYPING_START lasts 10 seconds on
	// clients). Zero value means 5 seconds.
	TypingInterval time.Duration
	// Now is the clock. Zero value means time.Now.
	Now func() time.Time
	// Beacon hears the stream sequence of every guild event the service
	// publishes and repeats it for gateways (GuildBeacon; the caller runs it).
	// Zero value means none: a gateway then notices the events it missed in a
	// quiet guild only through its path probe.
	Beacon *GuildBeacon
}

// ReadBarrier is what the Service needs before it reads messages: a wait until
// the store holds every event of the guild that the stream held when the wait
// began, or ErrServiceBusy (see Barrier).
type ReadBarrier interface {
	Wait(ctx context.Context, guildID guildhall.Snowflake) error
}

// Service is the api: it validates and authorizes requests, assigns snowflakes,
// writes guild metadata to the Store and publishes every guild event to the EVENTS
// stream. It keeps no per-session state, so any number of api processes may run
// side by side (with a store they can share, that is the CQL one).
//
// Client errors are *guildhall.Error values (Discord's codes and statuses); any
// other error is internal.
type Service struct {
	store   Store
	nc      *natsgo.Conn
	js      jetstream.JetStream
	jsAsync jetstream.JetStream // for publishInOrder; acks time out after publishTimeout
	ids     *guildhall.SnowflakeGenerator
	barrier ReadBarrier
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time

	bcryptCost     int
	publishTimeout time.Duration
	// dummyHash (same cost as real hashes) is compared against when a username is
	// unknown, so that a wrong username costs as much time as a wrong password and
	// login reveals nothing.
	dummyHash string

	tokens   *tokenCache
	typing   *typingLimiter
	slowmode *slowmode
	files    *Files
	beacon   *GuildBeacon
	// state is the api-only bucket: login throttles, count-cap locks and
	// group DM counts.
	state  jetstream.KeyValue
	logins *loginThrottle
	// groupDMs bounds group DM creation per creator (groupdm_limit.go).
	groupDMs *groupDMBudget

	// proj authorizes from memory when it can (projection.go); health
	// remembers a store found unreachable (store_health.go).
	proj   *projection
	health storeHealth
}

// NewService checks cfg and returns a Service. When cfg.Barrier is nil it builds a
// polling one, which needs the stream and the writer's consumer to exist
// (ghnats.Apply).
func NewService(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Conn == nil || cfg.JS == nil || cfg.IDs == nil {
		return nil, errors.New("messaging: Config needs Store, Conn, JS and IDs")
	}
	s := &Service{
		store:          cfg.Store,
		nc:             cfg.Conn,
		js:             cfg.JS,
		ids:            cfg.IDs,
		barrier:        cfg.Barrier,
		metrics:        cfg.Metrics,
		log:            cfg.Logger,
		now:            cfg.Now,
		bcryptCost:     cfg.BcryptCost,
		publishTimeout: cfg.PublishTimeout,
		beacon:         cfg.Beacon,
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.bcryptCost == 0 {
		s.bcryptCost = 10
	}
	if s.publishTimeout == 0 {
		s.publishTimeout = 5 * time.Second
	}
	dummy, err := s.hashPassword("guildhall: no such user")
	if err != nil {
		return nil, fmt.Errorf("messaging: bcrypt cost %d: %w", s.bcryptCost, err)
	}
	s.dummyHash = dummy
	if s.jsAsync, err = ghnats.JetStreamLike(cfg.Conn, cfg.JS, jetstream.WithPublishAsyncTimeout(s.publishTimeout)); err != nil {
		return nil, fmt.Errorf("messaging: jetstream: %w", err)
	}
	size := cfg.TokenCacheSize
	if size <= 0 {
		size = 10000
	}
	ttl := cfg.TokenCacheTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	s.tokens = newTokenCache(size, ttl, s.now)
	interval := cfg.TypingInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	s.typing = newTypingLimiter(interval, 100000)
	s.files = NewFiles(cfg.JS)
	if s.state, err = cfg.JS.KeyValue(ctx, ghnats.BucketAPIState); err != nil {
		return nil, fmt.Errorf("messaging: bucket %s: %w", ghnats.BucketAPIState, err)
	}
	s.logins = &loginThrottle{kv: s.state, limits: cfg.Logins.withDefaults(), now: s.now}
	perHour := cfg.GroupDMsPerHour
	if perHour == 0 {
		perHour = DefaultGroupDMsPerHour
	}
	s.groupDMs = &groupDMBudget{kv: s.state, perHour: perHour, now: s.now, log: s.log}
	s.slowmode = &slowmode{js: cfg.JS, log: s.log}
	s.proj = newProjection(cfg.Projection, s)
	if s.barrier == nil {
		b, err := NewBarrier(ctx, cfg.JS, BarrierConfig{Metrics: s.metrics})
		if err != nil {
			return nil, err
		}
		s.barrier = b
	}
	return s, nil
}

// publish sends a guild or user event to the EVENTS stream and waits for the
// stream's acknowledgement. id becomes Nats-Msg-Id: a retry with the same id within
// the stream's duplicate window is stored once, so the publish is retried (up to
// three attempts) after a timeout. A publish that still fails answers
// ErrServiceBusy: the event may or may not be stored, and the client may retry.
func (s *Service) publish(ctx context.Context, ev guildhall.Event, id string) (uint64, error) {
	return s.publishMsg(ctx, ghnats.EventMsg(ev, id), ev)
}

// publishMsg is publish for a message already built (ev says what it is, for
// metrics and logs).
func (s *Service) publishMsg(ctx context.Context, msg *natsgo.Msg, ev guildhall.Event) (uint64, error) {
	start := time.Now()
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			d := time.Duration(25*attempt)*time.Millisecond + time.Duration(rand.Int64N(int64(25*time.Millisecond)))
			select {
			case <-ctx.Done():
				return 0, s.publishFailed(ev, ctx.Err())
			case <-time.After(d):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, s.publishTimeout)
		var ack *jetstream.PubAck
		ack, err = s.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(ghnats.StreamEvents))
		cancel()
		if err == nil {
			s.metrics.PublishLatency.WithLabelValues(ev.Type).Observe(time.Since(start).Seconds())
			s.beacon.published(ev.GuildID, ack.Sequence)
			s.proj.published(ev, ack.Sequence)
			return ack.Sequence, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return 0, s.publishFailed(ev, err)
}

// publishInOrder sends events to the EVENTS stream back to back and then waits
// for all their acks (publishMsgs): one round trip instead of one per event.
func (s *Service) publishInOrder(ctx context.Context, evs ...guildhall.Event) error {
	msgs := make([]*natsgo.Msg, len(evs))
	for i, ev := range evs {
		msgs[i] = ghnats.EventMsg(ev, s.ids.Next().String())
	}
	return s.publishMsgs(ctx, msgs...)
}

// publishMsgs sends messages to the EVENTS stream back to back and then waits
// for all their acks. Sent in order on one connection, they are stored in this
// order. A message not acknowledged goes again through publishMsg (same
// Nats-Msg-Id, so it is stored once; after such a retry the order is no longer
// guaranteed).
func (s *Service) publishMsgs(ctx context.Context, msgs ...*natsgo.Msg) error {
	start := time.Now()
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := s.jsAsync.PublishMsgAsync(m, jetstream.WithExpectStream(ghnats.StreamEvents))
		if err != nil {
			break // the rest go one by one below, in order
		}
		acks[i] = f
	}
	for i, m := range msgs {
		ev := ghnats.DecodeEvent(m.Header, nil) // for metrics and logs
		if acks[i] != nil {
			select {
			case ack := <-acks[i].Ok():
				s.metrics.PublishLatency.WithLabelValues(ev.Type).Observe(time.Since(start).Seconds())
				s.beacon.published(ev.GuildID, ack.Sequence)
				s.proj.published(ev, ack.Sequence)
				continue
			case <-acks[i].Err():
			case <-ctx.Done():
			}
		}
		if _, err := s.publishMsg(ctx, m, ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) publishFailed(ev guildhall.Event, err error) error {
	s.metrics.PublishErrors.WithLabelValues(ev.Type).Inc()
	s.proj.publishFailed(ev)
	s.log.Error("publish event", "type", ev.Type, "guild", ev.GuildID, "user", ev.UserID, "err", err)
	return guildhall.ErrServiceBusy
}

// internal wraps an unexpected store error with what was being done.
func internal(what string, err error) error {
	var ge *guildhall.Error
	if errors.As(err, &ge) {
		return err
	}
	return fmt.Errorf("messaging: %s: %w", what, err)
}
