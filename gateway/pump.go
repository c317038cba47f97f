package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pump is the fan-out path of one gateway. It holds one NATS subscription per
// guild that has at least one local session (two, counting the guild's ephemeral
// subject) and one per local user, taken when the first local session needs it
// and dropped when the last one leaves.
//
// Every subscription delivers into one bounded channel read by one goroutine, the
// pump, in the order the messages arrive. The stream re-publishes events in stream
// order, so the pump sees each guild's events in order and can stamp each frame
// with a sequence that only grows: the watermark, which is the stream sequence of
// the newest event it has handled. That is the s every session gets, and what a
// resume replays after. The pump owns every room; nothing on the fan-out path
// takes a lock shared by sessions beyond each session's own outbox.
//
// What the pump does, by file: this one routes messages and runs commands between
// them; join.go joins sessions at a consistent cut; apply.go applies each event to
// its room; fanout.go hands the framed event to the room's sessions; gapfill.go
// refills from the stream what NATS lost; recent.go keeps each room's recent
// events for resumes from memory.
type pump struct {
	nc      *natsgo.Conn
	reader  streamReader
	guilds  guildSource
	ticks   tickSource
	probe   *pathProbe
	metrics *Metrics
	log     *slog.Logger
	// apiTimeout bounds each fetch of a catch-up (Config.APITimeout).
	apiTimeout time.Duration
	// node names this gateway's ticks: the api publishes them for cut, and the
	// stream re-publishes them to this gateway alone.
	node    string
	tickSub *natsgo.Subscription

	in      chan *natsgo.Msg
	cmds    chan func()
	cancel  context.CancelFunc
	stopped chan struct{} // closed when the pump goroutine has returned

	// Owned by the pump goroutine.
	rooms   map[guildhall.Snowflake]*room
	users   map[guildhall.Snowflake]*userRoom
	w       uint64
	waiters []waiter
	batch   roomBatch    // events planned, not yet delivered (batch.go)
	scratch batchScratch // the pump's working space for delivering a batch

	watermark atomic.Uint64 // w, for readers outside the pump
}

// guildSource gives the pump a guild's current state when its room missed a
// change: the api, asked over NATS.
type guildSource interface {
	guildState(ctx context.Context, id guildhall.Snowflake) (guildhall.GuildState, error)
	// member is a user's membership of a guild now, nil when none: what a
	// session that joined a new room checks its membership against (join.go).
	member(ctx context.Context, guild, user guildhall.Snowflake) (*guildhall.Member, error)
}

// tickSource publishes a tick for a gateway node into the stream and returns its
// sequence: the api (gateways publish nothing into the stream).
type tickSource interface {
	tick(ctx context.Context, node string) (uint64, error)
}

var (
	_ guildSource = apiClient{}
	_ tickSource  = apiClient{}
)

// waiter runs in the pump once the watermark reaches seq.
type waiter struct {
	seq uint64
	run func()
}

// userRoom is the local sessions of one user, for user events.
type userRoom struct {
	id       guildhall.Snowflake
	sessions []*Session
	sub      *natsgo.Subscription
	typing   *natsgo.Subscription // the user's ephemeral subject: typing in DMs
}

// unsubscribe drops the user's subscriptions.
func (u *userRoom) unsubscribe() {
	for _, sub := range []*natsgo.Subscription{u.sub, u.typing} {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
}

// pumpConfig is what a pump is built from.
type pumpConfig struct {
	nc         *natsgo.Conn
	reader     streamReader
	guilds     guildSource
	ticks      tickSource
	node       string        // the gateway's node: its ticks come back on its own subject
	inbox      int           // Config.Inbox
	apiTimeout time.Duration // Config.APITimeout
	probeEvery time.Duration // Config.PathProbe
	metrics    *Metrics
	log        *slog.Logger
}

// newPump subscribes to the node's ticks and starts the pump. Stop it with close.
func newPump(cfg pumpConfig) (*pump, error) {
	p := &pump{
		nc:         cfg.nc,
		reader:     cfg.reader,
		guilds:     cfg.guilds,
		ticks:      cfg.ticks,
		metrics:    cfg.metrics,
		log:        cfg.log,
		apiTimeout: cfg.apiTimeout,
		node:       cfg.node,
		in:         make(chan *natsgo.Msg, cfg.inbox),
		cmds:       make(chan func(), 1024),
		stopped:    make(chan struct{}),
		rooms:      map[guildhall.Snowflake]*room{},
		users:      map[guildhall.Snowflake]*userRoom{},
	}
	sub, err := cfg.nc.ChanSubscribe(ghnats.TickEventSubject(cfg.node), p.in)
	if err != nil {
		return nil, fmt.Errorf("gateway: subscribe ticks: %w", err)
	}
	p.tickSub = sub
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
	p.probe = newPathProbe(p, cfg.probeEvery)
	return p, nil
}

func (p *pump) run(ctx context.Context) {
	defer close(p.stopped)
	for {
		select {
		case m := <-p.in:
			p.burst(m)
		case f := <-p.cmds:
			f()
			p.flush() // a command may have applied events (a gap fill)
		case <-ctx.Done():
			return
		}
	}
}

// close stops the pump and drops every subscription it holds. Sessions still
// open receive nothing more.
func (p *pump) close() {
	if p.probe != nil {
		p.probe.close()
	}
	p.cancel()
	<-p.stopped
	_ = p.tickSub.Unsubscribe()
	for _, r := range p.rooms {
		for _, sub := range r.subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, u := range p.users {
		u.unsubscribe()
	}
}

// post queues f for the pump without waiting for it; false if the pump stopped.
func (p *pump) post(f func()) bool {
	select {
	case p.cmds <- f:
		return true
	case <-p.stopped:
		return false
	}
}

// do runs f in the pump, between two events, and waits for it. After the pump
// has stopped (the gateway closed) f is dropped and do reports false: nothing is
// left to keep consistent, and a connection closing late must not hang on it.
func (p *pump) do(f func()) bool {
	done := make(chan struct{})
	select {
	case p.cmds <- func() { f(); close(done) }:
	case <-p.stopped:
		return false
	}
	select {
	case <-done:
		return true
	case <-p.stopped:
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// handle routes one message from a subscription.
func (p *pump) handle(m *natsgo.Msg) {
	subj, ok := ghnats.ParseSubject(m.Subject)
	if !ok {
		return
	}
	id := guildhall.Snowflake(subj.ID)
	switch subj.Kind {
	case ghnats.SubjectEphemeralGuild:
		// The api's typing, presence and guild-sequence heartbeats, published as
		// they are: never anything JetStream sent (a stream's answer aimed here)
		// or of another guild.
		r := p.rooms[id]
		if r == nil || m.Header.Get(jetstream.StreamHeader) != "" {
			return
		}
		ev := ghnats.DecodeEvent(m.Header, m.Data)
		if ev.GuildID != id {
			return
		}
		if seq, ok := ghnats.GuildSeq(m.Header); ok {
			p.catchUpTo(r, seq, "heartbeat")
			return
		}
		if ev.Type != "" {
			p.deliver(r, ev, newDispatch(ev, p.w), nil, false)
		}
		return
	case ghnats.SubjectEphemeralUser:
		// Typing in a DM, from the api alike; nothing else travels there.
		if u := p.users[id]; u != nil && m.Header.Get(jetstream.StreamHeader) == "" {
			if ev := ghnats.DecodeEvent(m.Header, m.Data); ev.Type == guildhall.EventTypingStart && ev.GuildID == 0 {
				// Framed with the watermark: what is planned (lower s) goes
				// first, or the session's s would go backwards.
				p.flush()
				d := newDispatch(ev, p.w)
				for _, s := range u.sessions {
					if !s.shard.ownsGuildless() {
						continue // a DM's: shard 0's alone
					}
					if f := d.frameFor(s); f != nil {
						s.send(f)
					}
				}
			}
		}
		return
	case ghnats.SubjectTickEvent, ghnats.SubjectGuildEvent, ghnats.SubjectUserEvent:
	default:
		return
	}
	// Only what the stream re-published for this subject carries a sequence the
	// pump may believe.
	seq, last, ok := ghnats.RePublished(m.Subject, m.Header)
	if !ok {
		p.metrics.ForeignMessages.Inc()
		return
	}
	switch subj.Kind {
	case ghnats.SubjectTickEvent:
		p.flush()
		p.advance(seq)
	case ghnats.SubjectGuildEvent:
		r := p.rooms[id]
		if r == nil {
			return // the room was dropped; this was in flight
		}
		if seq <= r.lastSeq {
			return // already applied (a fill got it first)
		}
		ev := ghnats.DecodeEvent(m.Header, m.Data)
		switch {
		case r.catchUp != nil:
			p.advance(seq)
			p.queue(r, queuedEvent{seq: seq, last: last, ev: ev})
		case r.fresh:
			// Not attached yet: whatever it missed is before the cut.
			p.apply(r, seq, ev)
		case last > r.lastSeq || p.namesUnknownChannel(r, ev):
			if last > r.lastSeq {
				p.metrics.GapsNoticed.WithLabelValues("event").Inc()
			}
			p.flush() // the catch-up holds the members: what is planned goes first
			p.advance(seq)
			p.beginCatchUp(r)
			p.queue(r, queuedEvent{seq: seq, last: last, ev: ev})
			p.runCatchUp(r)
		default:
			p.apply(r, seq, ev)
		}
	case ghnats.SubjectUserEvent:
		if u := p.users[id]; u != nil {
			p.applyUser(u, seq, ghnats.DecodeEvent(m.Header, m.Data))
		}
	}
}

// advance moves the watermark to seq and runs the waiters it reaches (after
// delivering what is planned: a session attached by a waiter gets only what
// follows its cut).
func (p *pump) advance(seq uint64) {
	if seq > p.w {
		p.w = seq
		p.watermark.Store(seq)
		if len(p.waiters) > 0 {
			p.flush()
			p.releaseWaiters()
		}
	}
}

func (p *pump) releaseWaiters() {
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if w.seq <= p.w {
			w.run()
		} else {
			kept = append(kept, w)
		}
	}
	clear(p.waiters[len(kept):])
	p.waiters = kept
}

// current is the watermark, for readers outside the pump.
func (p *pump) current() uint64 { return p.watermark.Load() }

// sendNow frames a dispatch that is not in the stream (a member list chunk) with
// the current watermark and queues it to s, in order with the live frames; false
// when the pump has stopped.
func (p *pump) sendNow(s *Session, t string, data []byte) bool {
	return p.do(func() { s.send(dispatchFrame(t, p.w, data)) })
}
