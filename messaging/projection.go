package messaging

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// The projection: what authorization needs, kept in memory and current from the
// event stream, so that a post, an edit, a reaction or typing in a guild this
// api process holds needs only JetStream, not the store.
//
// What it holds (bounded, least recently used go first; see ProjectionConfig):
// guilds with their channels (overwrites included) and roles, as
// guildhall.GuildState.Apply keeps them; the memberships and bans it has been
// asked about (positive and negative answers), never a guild's whole
// membership; the recent messages of its guilds, so that their author can
// edit or delete them while the store is down, with the reactions of those it
// saw posted (projection_reactions.go); and the DM channels it has read
// (projection_dms.go). A miss costs a store read: three for a guild (the
// guild, its channels, its roles), one or two for a member, one for a DM.
//
// How it stays current. One ordered consumer per api process reads every
// guild's events (gh.in.g.*) in stream order: nothing skipped and nothing twice,
// across reconnects too (the library re-creates it from the last sequence it
// delivered). That is chosen over the core subjects the stream re-publishes to,
// which gateways read: there a lost message shows only at the guild's next
// event, and a ban lost in a quiet guild would never show without the
// gateways' per-guild checks of the stream. The cost is that every api process
// reads every guild event, as a writer does; for guilds it does not hold it
// only looks at the headers.
//
// Loading a guild. On first need the guild is registered as loading, and from
// then on the consumer keeps its events aside; then the guild, channels and
// roles are read from the store. Every event the consumer had applied before the
// registration was stored in the stream after its change was written to the
// store (the api writes the store, then publishes), so the snapshot reflects
// it. The events kept aside are applied to the snapshot in order; some of them
// may already be reflected in it, and applying them again is harmless: Apply
// sets whole channels, roles and the guild, and removes by id, so after the
// events the state is what the last of them says (TestProjectionReplayOnSnapshot).
//
// Freshness. A process cannot know from the events alone that none is missing
// (another process's ban may still be on its way), so it publishes marks into
// the stream on a subject only it reads (ghnats.MarkInSubject): when the
// consumer delivers a mark, every event stored before the mark was sent has
// been applied. Requests are answered from the projection only while it is
// fresh as of ProjectionConfig.Freshness ago (2 s): a member banned, kicked or
// stripped of a permission on another process more than that long ago is
// refused here. A request that finds it older sends a mark and waits for it (up
// to ProjectionConfig.Wait), then reads the store instead. Marks are sent only
// when requests need them, at most about two per Freshness while busy.
//
// Read your writes. A change this process made is in its store before it is
// published; once the stream acknowledged the event, requests wait for the
// consumer to have applied it (usually already done) before using the
// projection. If the publish failed the event may never come: the guild is
// dropped and read again from the store.
//
// Healing. A change whose event was never published (the process died between
// the store write and the publish) is not in any projection; a guild or
// membership older than ProjectionConfig.Refresh (5 min) is read again from the
// store when next used, and an event naming a channel the guild lacks makes
// the guild read again at once.
//
// When the store is down, warm guilds keep working; a cold guild, or a member
// not cached, answers 503 (errStoreUnavailable); an entry due for a refresh is
// used as it is until the store answers.

// ProjectionConfig bounds and tunes the projection. Every field may be left
// zero.
type ProjectionConfig struct {
	// Guilds bounds how many guilds are held. Zero value means 1000.
	Guilds int
	// Members bounds how many (guild, user) entries are held across guilds:
	// memberships and non-memberships, bans and non-bans. Zero value means
	// 100000.
	Members int
	// Messages bounds how many recent messages of held guilds are kept for
	// edits and deletes while the store is down. Zero value means 10000; a
	// negative value keeps none.
	Messages int
	// Freshness: requests are answered from the projection only while it has
	// applied every event stored at most this long ago. Zero value means 2
	// seconds.
	Freshness time.Duration
	// Wait bounds how long a request waits for the projection to be fresh (or to
	// apply this process's own last change) before it reads the store instead.
	// Zero value means 1 second.
	Wait time.Duration
	// Refresh is the age past which a guild or a membership is read again from
	// the store when next used. Zero value means 5 minutes.
	Refresh time.Duration
	// DMs bounds how many DM channels read from the store are kept
	// (projection_dms.go). Zero value means 10000; a negative value keeps none.
	DMs int
}

func (c ProjectionConfig) withDefaults() ProjectionConfig {
	if c.Guilds <= 0 {
		c.Guilds = 1000
	}
	if c.Members <= 0 {
		c.Members = 100000
	}
	if c.Messages == 0 {
		c.Messages = 10000
	}
	if c.Freshness <= 0 {
		c.Freshness = 2 * time.Second
	}
	if c.Wait <= 0 {
		c.Wait = time.Second
	}
	if c.Refresh <= 0 {
		c.Refresh = 5 * time.Minute
	}
	if c.DMs == 0 {
		c.DMs = 10000
	}
	return c
}

// errNotProjected: the projection cannot answer now (not running, not fresh in
// time, or behind the store); the caller reads the store.
var errNotProjected = errors.New("messaging: projection cannot answer")

// maxLoadEvents bounds the events kept aside for a guild while it loads; a load
// that would need more gives up (the request reads the store).
const maxLoadEvents = 10000

// maxPendingMarks bounds the marks sent and not yet delivered.
const maxPendingMarks = 8

// projection is the state; the consumer (run) applies events to it, requests
// read it. One mutex guards everything: events and reads each hold it briefly.
// Slices of a guild's state that requests hold (channels, roles) are never
// changed in place: an event that changes them applies to copies.
type projection struct {
	cfg     ProjectionConfig
	store   Store
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *Metrics
	// storeErr maps a store error to what a request answers (Service.storeErr).
	storeErr func(what string, err error) error
	// unavailable reports a store error that means the database is down.
	unavailable func(err error) bool

	mu      sync.Mutex
	running bool
	stream  jetstream.Stream
	mark    string // this process's mark subject
	// pos is the stream sequence of the last message applied.
	pos uint64
	// wake is closed (and cleared) when pos or freshAsOf moves; made by a
	// waiter.
	wake chan struct{}
	// freshAsOf: every event stored before it has been applied.
	freshAsOf time.Time
	// stale: a request waited for freshness in vain, and freshAsOf has not
	// moved since; requests read the store at once rather than wait too.
	stale bool
	// mustReach is the sequence of this process's last acknowledged change.
	mustReach uint64
	marks     []pendingMark
	marking   time.Time // when the mark in flight was asked for; zero: none
	// markNow asks the marker (RunProjection) for a mark.
	markNow chan time.Time
	// epoch moves when a guild is dropped after a failed publish: a load begun
	// before may have read the store before the change and is not installed.
	epoch uint64

	guilds   map[guildhall.Snowflake]*projGuild
	lru      *list.List // of *projGuild, most recently used first
	channels map[guildhall.Snowflake]*projGuild
	loads    map[guildhall.Snowflake]*guildLoad
	members  *list.List // of *projMember, across guilds, most recently used first
	messages *list.List // of *projMessage, across guilds, newest first
	// dms has its own lock: DMs need no events (projection_dms.go).
	dms *dmCache
}

// pendingMark is a mark the stream acknowledged at seq, sent at sent.
type pendingMark struct {
	seq  uint64
	sent time.Time
}

func newProjection(cfg ProjectionConfig, s *Service) *projection {
	cfg = cfg.withDefaults()
	return &projection{
		cfg: cfg, dms: newDMCache(cfg.DMs), store: s.store, js: s.js, log: s.log, metrics: s.metrics,
		storeErr: s.storeErr, unavailable: s.unavailable,
		guilds: map[guildhall.Snowflake]*projGuild{}, lru: list.New(),
		channels: map[guildhall.Snowflake]*projGuild{}, loads: map[guildhall.Snowflake]*guildLoad{},
		members: list.New(), messages: list.New(), markNow: make(chan time.Time, 1),
	}
}

// RunProjection keeps this process's projection of the event stream current
// until ctx ends (see projection.go); without it every request reads the
// store. Run it beside a Service on every api process.
func (s *Service) RunProjection(ctx context.Context) error {
	p := s.proj
	stream, err := s.js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return internal("projection: stream", err)
	}
	node := ghnats.SubjectToken(s.ids.Next().String())
	mark := ghnats.MarkInSubject(node)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{ghnats.SubjectInGuild, mark},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// Unique per process, and not to be guessed from node, which the mark
		// subject shows: see ghnats.WatcherPrefix.
		NamePrefix: ghnats.WatcherPrefix(ghnats.ProjectionWatcherPrefix),
	})
	if err != nil {
		return internal("projection: consumer", err)
	}
	p.mu.Lock()
	p.stream, p.mark, p.running = stream, mark, true
	p.mu.Unlock()
	defer p.stop()
	cc, err := cons.Consume(p.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The ordered consumer re-creates itself from the last sequence it
		// delivered; until then requests find the projection stale.
		p.log.Warn("projection: consumer trouble", "err", err)
	}))
	if err != nil {
		return internal("projection: consume", err)
	}
	defer cc.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case at := <-p.markNow:
			p.sendMark(ctx, at)
		}
	}
}

// stop forgets everything: events are no longer applied.
func (p *projection) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = false
	for _, g := range p.guilds {
		p.dropGuild(g)
	}
	p.marks, p.marking = nil, time.Time{}
	p.wakeAll()
}

// handle applies one message of the consumer: a guild's event or a mark.
func (p *projection) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	seq := meta.Sequence.Stream
	var ev guildhall.Event
	var ids messageIDs
	guild := false
	if sub, ok := ghnats.ParseSubject(msg.Subject()); ok && sub.Kind == ghnats.SubjectGuildIn {
		ev = ghnats.DecodeEvent(msg.Headers(), msg.Data())
		// Only the api publishes into the stream, and always with the header of
		// the subject's guild; a mismatch is not applied.
		guild = ev.GuildID == guildhall.Snowflake(sub.ID)
		// Outside the lock: which messages an event is about.
		ids = p.messageIDs(ev, msg.Headers())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || seq <= p.pos {
		return
	}
	if guild {
		if l := p.loads[ev.GuildID]; l != nil {
			l.keep(ev)
		}
		if g := p.guilds[ev.GuildID]; g != nil {
			p.apply(g, ev, ids)
		}
	}
	p.advance(seq)
}

// advance records that everything up to seq is applied.
func (p *projection) advance(seq uint64) {
	p.pos = seq
	n := 0
	for _, m := range p.marks {
		if m.seq <= seq {
			if m.sent.After(p.freshAsOf) {
				p.freshAsOf, p.stale = m.sent, false
			}
			continue
		}
		p.marks[n] = m
		n++
	}
	if n < len(p.marks) {
		p.marks = p.marks[:n]
		p.marking = time.Time{}
	}
	p.wakeAll()
}

func (p *projection) wakeAll() {
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// usableLocked reports whether requests may be answered from the projection
// now; when it is getting old, it sends a mark.
func (p *projection) usableLocked(now time.Time) bool {
	if !p.running {
		return false
	}
	age := now.Sub(p.freshAsOf)
	if age > p.cfg.Freshness/2 && (p.marking.IsZero() || now.Sub(p.marking) > p.cfg.Freshness) {
		select {
		case p.markNow <- now:
			p.marking = now
		default: // one asked for already
		}
	}
	return age <= p.cfg.Freshness && p.pos >= p.mustReach
}

// await returns once the projection may answer, errNotProjected if it cannot
// within cfg.Wait, or ctx's error. Once a wait for freshness has been in vain
// (the consumer or the marks are stuck), requests do not wait again until the
// projection is fresh: they read the store at once.
func (p *projection) await(ctx context.Context) error {
	var timer *time.Timer
	for {
		p.mu.Lock()
		now := time.Now()
		if p.usableLocked(now) {
			p.mu.Unlock()
			return nil
		}
		if !p.running {
			p.mu.Unlock()
			return errNotProjected
		}
		if p.stale && now.Sub(p.freshAsOf) > p.cfg.Freshness {
			p.mu.Unlock()
			p.metrics.ProjectionStale.Inc()
			return errNotProjected
		}
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(p.cfg.Wait)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			p.mu.Lock()
			if time.Since(p.freshAsOf) > p.cfg.Freshness {
				p.stale = true
			}
			p.mu.Unlock()
			p.metrics.ProjectionStale.Inc()
			return errNotProjected
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sendMark publishes a mark asked for at sent; once the consumer delivers it,
// the projection is fresh as of sent (the mark goes out after that moment, so
// is stored after every event stored before it).
func (p *projection) sendMark(ctx context.Context, sent time.Time) {
	p.mu.Lock()
	mark := p.mark
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Freshness)
	defer cancel()
	ack, err := p.js.Publish(ctx, mark, nil, jetstream.WithExpectStream(ghnats.StreamEvents))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("projection: mark not published", "err", err)
		}
		if p.marking.Equal(sent) {
			p.marking = time.Time{}
		}
		return
	}
	if ack.Sequence <= p.pos {
		p.advanceMark(sent)
		return
	}
	if len(p.marks) == maxPendingMarks {
		p.marks = p.marks[1:]
	}
	p.marks = append(p.marks, pendingMark{seq: ack.Sequence, sent: sent})
}

// advanceMark records a mark already delivered.
func (p *projection) advanceMark(sent time.Time) {
	if sent.After(p.freshAsOf) {
		p.freshAsOf, p.stale = sent, false
	}
	if p.marking.Equal(sent) {
		p.marking = time.Time{}
	}
	p.wakeAll()
}

// published records that this process's change ev is in the stream at seq:
// requests use the projection again once it has applied it.
func (p *projection) published(ev guildhall.Event, seq uint64) {
	if ev.GuildID == 0 || !stateEvent(ev.Type) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mustReach = max(p.mustReach, seq)
}

// publishFailed records that this process's change ev may never reach the
// stream: its guild is dropped, to be read again from the store.
func (p *projection) publishFailed(ev guildhall.Event) {
	if ev.GuildID == 0 || !stateEvent(ev.Type) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch++
	if g := p.guilds[ev.GuildID]; g != nil {
		p.dropGuild(g)
	}
}

// stateEvent reports whether an event of this type changes what authorization
// reads (GuildState.Apply and the memberships).
func stateEvent(typ string) bool {
	switch typ {
	case guildhall.EventChannelCreate, guildhall.EventChannelUpdate, guildhall.EventChannelDelete,
		guildhall.EventGuildUpdate, guildhall.EventGuildDelete,
		guildhall.EventGuildRoleCreate, guildhall.EventGuildRoleUpdate, guildhall.EventGuildRoleDelete,
		guildhall.EventGuildMemberAdd, guildhall.EventGuildMemberUpdate, guildhall.EventGuildMemberRemove,
		guildhall.EventGuildBanAdd, guildhall.EventGuildBanRemove:
		return true
	}
	return false
}
