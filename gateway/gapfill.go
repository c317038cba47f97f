package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A room catches up when it has missed something: events NATS did not deliver
// (a gap), or its state (an event named a channel it does not know, or a join
// made the room without one). How a gap is noticed:
//
//   - at the guild's next event, whose Nats-Last-Sequence is ahead of the room;
//   - by the api's guild-sequence heartbeat (ghnats.GuildSeqMsg), repeated on the
//     guild's ephemeral subject for a while after the guild's last event: a quiet
//     guild shows its gap without waiting for an event that may never come;
//   - by the path probe (probe.go), which finds partitions longer than the
//     heartbeats last and then compares every room with the stream.
//
// The fetch runs off the pump (a batch direct get of the stream, or the api for a
// state) and its result is applied in the pump, so one room's catch-up never
// stalls the others. While a room catches up:
//
//   - its live events wait in order (catchUp.queue) and are applied after what
//     was fetched;
//   - its members' outboxes hold their live frames (outbox.hold), which keeps
//     each session's frames in s order: no later event of another room reaches a
//     member before the room's refilled events;
//   - no session joins it: a join's cut waits until it is done (whenIdle).
//
// Every event, refilled or not, goes out with its own stream sequence. A member
// that was given a later event of another guild before the gap was noticed (NATS
// lost the event silently, and a later one came first) gets the refilled one
// after it, lower s and all; catchUpLate counts those.
//
// A fetch that fails (NATS or the stream is unreachable: the partition may last)
// gives the held frames back to the members and is tried again with backoff;
// the room's own events keep waiting.

// Bounds of a catch-up.
const (
	// catchUpQueue bounds a catching-up room's waiting live events; past it they
	// are dropped and fetched from the stream with the rest.
	catchUpQueue = 4096
	// fetchBatch and fetchMax bound one fetch: the events of one direct get, and
	// of one attempt (the room applies them and fetches again).
	fetchBatch = 256
	fetchMax   = 4096
	// stateTimeout bounds a fetch that reads the guild's state: tens of MB for a
	// guild at Discord's limits.
	stateTimeout = time.Minute
	// catchUpRetryMax caps the backoff between failed attempts; after
	// catchUpGiveUp of them (about two minutes) the room is reset (resetRoom).
	catchUpRetryMax = 5 * time.Second
	catchUpGiveUp   = 30
)

// catchUp is a room's wait for what it missed (see above). Owned by the pump.
type catchUp struct {
	// target: the room must apply every event of the guild up to this sequence,
	// which the stream holds (a Nats-Last-Sequence, a heartbeat, a probe's check).
	target uint64
	// latest: look the guild's last event up first (a room made without a cut).
	latest bool
	// refresh: fetch the guild's state from the api. refreshed: this catch-up did,
	// so an event naming an unknown channel is for a channel that is gone.
	refresh, refreshed bool
	// queue is what waits to be applied, in stream order: fetched events, then the
	// live ones that arrived meanwhile.
	queue []queuedEvent
	// waiting joins run once the room is done (whenIdle).
	waiting []func()
	running bool // a fetch is in flight
	failed  int  // attempts failed in a row
	late    bool // members were released before it was done
}

// queuedEvent is a guild event waiting in a catching-up room, or a join of the
// guild at seq (a user event: the room must have applied every event before it).
// last is the sequence of the guild's previous event (Nats-Last-Sequence; for
// fetched events, the one fetched before it).
type queuedEvent struct {
	seq, last uint64
	ev        guildhall.Event
	join      *pendingJoin
}

// streamReader is what catch-ups and resumes read of the EVENTS stream.
type streamReader interface {
	// eventsAfter: the guild's events after seq after, up to until, at most max.
	eventsAfter(ctx context.Context, guild guildhall.Snowflake, after, until uint64, max int) ([]ghnats.StoredEvent, bool, error)
	// lastSeq: the sequence of the guild's last event (0: none).
	lastSeq(ctx context.Context, guild guildhall.Snowflake) (uint64, error)
	// lastSeqs: the last event of each guild (and of the subjects extra) up to
	// upTo, as seen by a replica that has stored this node's tick upTo.
	lastSeqs(ctx context.Context, subjects []string, node string, upTo uint64) (map[string]uint64, error)
}

// eventsReader reads the EVENTS stream with batch direct gets.
type eventsReader struct {
	nc     *natsgo.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

var _ streamReader = eventsReader{}

func (e eventsReader) eventsAfter(ctx context.Context, guild guildhall.Snowflake, after, until uint64, max int) ([]ghnats.StoredEvent, bool, error) {
	return ghnats.EventsAfter(ctx, e.nc, e.js, ghnats.GuildInSubject(uint64(guild)), after, until, max)
}

func (e eventsReader) lastSeq(ctx context.Context, guild guildhall.Snowflake) (uint64, error) {
	// Sent once this connection's subscriptions are surely in place on the
	// server: whatever is stored after the answer comes live.
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return 0, err
	}
	msg, err := e.stream.GetLastMsgForSubject(ctx, ghnats.GuildInSubject(uint64(guild)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return msg.Sequence, nil
}

func (e eventsReader) lastSeqs(ctx context.Context, subjects []string, node string, upTo uint64) (map[string]uint64, error) {
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(time.Duration(10<<attempt) * time.Millisecond):
			}
		}
		var last map[string]uint64
		last, err = ghnats.LastSequences(ctx, e.nc, e.js, subjects, ghnats.TickInSubject(node), upTo)
		if !errors.Is(err, ghnats.ErrReplicaBehind) {
			return last, err
		}
	}
	return nil, err
}

// catchUpTo makes r apply every event of its guild up to target (which the
// stream holds), catching up if it is behind. Run it in the pump.
func (p *pump) catchUpTo(r *room, target uint64, by string) {
	if r.fresh || target <= r.lastSeq || r.catchUp != nil && target <= r.catchUp.target {
		return
	}
	if r.catchUp == nil || r.catchUp.target <= r.lastSeq {
		p.metrics.GapsNoticed.WithLabelValues(by).Inc()
	}
	c := p.beginCatchUp(r)
	c.target = max(c.target, target)
	p.runCatchUp(r)
}

// refreshRoom makes r fetch its guild's state again (an event it is about to
// apply names a channel it does not know: it missed a change), and, when latest,
// look for events after its last one (a room made by a join, without a cut).
// Run it in the pump.
func (p *pump) refreshRoom(r *room, latest bool) {
	c := p.beginCatchUp(r)
	c.refresh, c.refreshed = true, false
	c.latest = c.latest || latest
	p.runCatchUp(r)
}

// beginCatchUp returns r's catch-up, starting one if none runs: from here on the
// room's live events wait and its members' frames are held.
func (p *pump) beginCatchUp(r *room) *catchUp {
	if r.catchUp == nil {
		r.catchUp = &catchUp{}
		p.holdMembers(r)
	}
	return r.catchUp
}

// queue makes a live event wait for r's catch-up. Past catchUpQueue waiting live
// events they are all dropped and the fetch goes on to the newest instead.
func (p *pump) queue(r *room, e queuedEvent) {
	c := r.catchUp
	if len(c.queue) < catchUpQueue {
		c.queue = append(c.queue, e)
		return
	}
	kept := c.queue[:0] // joins stay: they are no events, the stream has none of them
	for _, q := range c.queue {
		if q.join != nil {
			kept = append(kept, q)
		} else {
			c.target = max(c.target, q.seq)
		}
	}
	clear(c.queue[len(kept):])
	c.queue = kept
	c.target = max(c.target, e.seq)
}

// holdMembers holds the live frames of every member of r; releaseMembers gives
// them back.
func (p *pump) holdMembers(r *room) {
	p.flush() // what is planned was decided before: it goes out first
	for _, rm := range r.members {
		if !rm.m.held {
			rm.m.held = true
			rm.s.out.hold()
		}
	}
}

func (p *pump) releaseMembers(r *room) {
	p.flush() // what is planned was decided before: it goes out first
	for _, rm := range r.members {
		if rm.m.held {
			rm.m.held = false
			rm.s.out.release()
		}
	}
}

// runCatchUp applies what r's catch-up can apply now and starts the fetch of
// what it still lacks; when nothing is left the room is done. Run it in the pump.
func (p *pump) runCatchUp(r *room) {
	c := r.catchUp
	if c == nil || c.running {
		return
	}
	for len(c.queue) > 0 {
		e := c.queue[0]
		switch {
		case e.join != nil && c.refresh:
			p.fetch(r) // the room's state first: the join's GUILD_CREATE shows it
			return
		case e.join != nil:
			p.attachJoined(r, e.join)
			if p.rooms[r.id] != r {
				return // nobody was left to join, and nobody else is here
			}
		case e.seq <= r.lastSeq:
			// Already applied: a live event the fetch also brought.
		case e.last > r.lastSeq:
			c.target = max(c.target, e.last)
			p.fetch(r)
			return
		case !c.refreshed && p.namesUnknownChannel(r, e.ev):
			c.refresh = true
			p.fetch(r)
			return
		default:
			p.apply(r, e.seq, e.ev)
		}
		c.queue[0] = queuedEvent{}
		c.queue = c.queue[1:]
	}
	if c.target > r.lastSeq || c.latest || c.refresh {
		p.fetch(r)
		return
	}
	r.catchUp = nil
	p.releaseMembers(r)
	if c.late {
		p.metrics.CatchUpLate.Inc()
	}
	for _, f := range c.waiting {
		f()
	}
}

// fetchResult is what one fetch brought back to the pump.
type fetchResult struct {
	state  *guildhall.GuildState
	latest uint64 // the guild's last event, when looked up
	events []ghnats.StoredEvent
	err    error
}

// fetch starts one attempt at what r lacks, off the pump. It fetches events up
// to the target but not past the first waiting event (those before it are what
// the room lacks to apply it; the rest comes after it).
func (p *pump) fetch(r *room) {
	c := r.catchUp
	c.running = true
	if c.failed > 0 {
		p.holdMembers(r) // given back after the failed attempt
	}
	after, target, latest, refresh := r.lastSeq, c.target, c.latest, c.refresh
	// stop: fetch nothing past it; known: a sequence the stream surely holds.
	stop, known := ^uint64(0), uint64(0)
	if len(c.queue) > 0 {
		stop = c.queue[0].seq - 1
		if c.queue[0].join == nil {
			known = c.queue[0].last
		}
	}
	timeout := p.apiTimeout
	if refresh {
		timeout = max(timeout, stateTimeout)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var res fetchResult
		res.err = func() error {
			if refresh {
				st, err := p.guilds.guildState(ctx, r.id)
				if err != nil {
					return fmt.Errorf("guild state: %w", err)
				}
				res.state = &st
			}
			if latest {
				last, err := p.reader.lastSeq(ctx, r.id)
				if err != nil {
					return fmt.Errorf("last event: %w", err)
				}
				res.latest, target = last, max(target, last)
			}
			until, must := min(target, stop), target
			if target > stop {
				must = known
			}
			for after < until && len(res.events) < fetchMax {
				evs, more, err := p.reader.eventsAfter(ctx, r.id, after, until, fetchBatch)
				if err != nil {
					return err
				}
				res.events = append(res.events, evs...)
				if len(evs) > 0 {
					after = evs[len(evs)-1].Seq
				}
				if !more {
					if after < must {
						// The stream holds must: a replica that has not stored
						// it answered. Try again.
						return ghnats.ErrReplicaBehind
					}
					break
				}
			}
			return nil
		}()
		p.post(func() { p.fetched(r, res) })
	}()
}

// fetched applies a fetch's result to r, in the pump.
func (p *pump) fetched(r *room, res fetchResult) {
	c := r.catchUp
	if p.rooms[r.id] != r || c == nil {
		return // the room was dropped meanwhile
	}
	c.running = false
	if res.err != nil {
		c.failed++
		p.metrics.CatchUpFailures.Inc()
		p.log.Warn("room catch-up failed; trying again", "guild", r.id, "attempt", c.failed, "err", res.err)
		// Do not hold the members' other rooms' frames while the stream is away;
		// the room's own events keep waiting.
		if len(r.members) > 0 {
			c.late = true
		}
		p.releaseMembers(r)
		if c.failed >= catchUpGiveUp {
			p.resetRoom(r)
			return
		}
		wait := min(time.Duration(250<<min(c.failed, 5))*time.Millisecond, catchUpRetryMax)
		time.AfterFunc(wait, func() { p.post(func() { p.retryCatchUp(r) }) })
		return
	}
	c.failed = 0
	if res.state != nil {
		r.setState(*res.state)
		c.refresh, c.refreshed = false, true
	}
	if c.latest {
		c.latest = false
		c.target = max(c.target, res.latest)
	}
	if len(res.events) > 0 {
		p.metrics.GapFills.Inc()
		fetched := make([]queuedEvent, len(res.events), len(res.events)+len(c.queue))
		last := r.lastSeq
		for i, e := range res.events {
			fetched[i] = queuedEvent{seq: e.Seq, last: last, ev: ghnats.DecodeEvent(e.Header, e.Data)}
			last = e.Seq
		}
		c.queue = append(fetched, c.queue...)
	}
	p.runCatchUp(r)
}

// resetRoom gives up on a room that cannot catch up (the stream no longer holds
// what it missed, or has been unreachable for minutes): every session in it or
// joining it is asked to reconnect, and its resume replays the stream or is told
// INVALID_SESSION. The room goes; the next join makes a new one at its cut.
func (p *pump) resetRoom(r *room) {
	p.flush() // what is planned was decided before: it goes out first
	p.log.Error("room cannot catch up; its sessions must resume", "guild", r.id)
	reconnect := opFrame(OpReconnect, []byte("null"))
	bye := func(s *Session) {
		s.resumable.Store(true)
		s.out.sendUnheld(reconnect)
		s.close(CloseUnknownError, "reconnect")
	}
	for _, rm := range r.members {
		bye(rm.s)
	}
	if r.catchUp != nil {
		for _, q := range r.catchUp.queue {
			if q.join != nil {
				for _, s := range q.join.held {
					s.out.release()
					bye(s)
				}
			}
		}
	}
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	delete(p.rooms, r.id)
	p.metrics.GuildSubscriptions.Dec()
}

func (p *pump) retryCatchUp(r *room) {
	if p.rooms[r.id] == r && r.catchUp != nil {
		p.runCatchUp(r)
	}
}

// namesUnknownChannel reports whether ev is about a channel r does not know
// (other than its creation or deletion): r missed that channel's creation.
func (p *pump) namesUnknownChannel(r *room, ev guildhall.Event) bool {
	if ev.ChannelID == 0 {
		return false
	}
	switch ev.Type {
	case guildhall.EventChannelCreate, guildhall.EventChannelUpdate, guildhall.EventChannelDelete:
		return false
	}
	_, ok := r.state.Channel(ev.ChannelID)
	return !ok
}

// whenIdle runs f in the pump once none of rooms is catching up (at once if none
// is): a session joins rooms only when they hold every event up to the cut.
func (p *pump) whenIdle(rooms []*room, f func()) {
	for _, r := range rooms {
		if r.catchUp != nil {
			r.catchUp.waiting = append(r.catchUp.waiting, func() { p.whenIdle(rooms, f) })
			return
		}
	}
	f()
}

// reconnected runs after the NATS connection came back: events re-published while
// it was away are lost to this gateway, so the path probe compares every room
// with the stream.
func (p *pump) reconnected() {
	if p.probe != nil {
		p.probe.suspect("nats reconnect")
	}
}
