package gateway

import (
	"context"
	"errors"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A gap in a guild's events (Nats-Last-Sequence ahead of what the room applied:
// NATS dropped messages for a slow pump, or a fresh subscription was not yet in
// place) is filled from the stream before the pump goes on. If it cannot be, the
// room's sessions are asked to reconnect, and their resume replays the stream.
// Where the next event might be long in coming (a new subscription, a NATS
// reconnect, a drop seen by covers), the pump checks the stream's last event of
// the guild instead of waiting for it.

// lossMark is what moves when NATS loses a room's events without the pump seeing a
// gap yet (it sees one only at the guild's next event): drops on the room's
// subscriptions (inbox full), and reconnects (nats.go counts one before it resends
// anything, so before any later tick can reach the pump).
type lossMark struct {
	dropped    int
	reconnects uint64
}

func (p *pump) lossMark(r *room) (lossMark, bool) {
	m := lossMark{reconnects: p.nc.Stats().Reconnects}
	for _, sub := range r.subs {
		n, err := sub.Dropped()
		if err != nil {
			return m, false
		}
		m.dropped += n
	}
	return m, true
}

// covers reports whether r's recent events hold every event of the guild after
// seq up to the watermark. A room nobody vouches for now gets a check and answers
// no: the stream replay is always right.
func (p *pump) covers(r *room, seq uint64) bool {
	if r.fresh || r.recent.from > seq {
		return false
	}
	if r.vouched {
		if m, ok := p.lossMark(r); ok && m == r.mark {
			return true
		}
		r.vouched = false
	}
	if r.checks == 0 {
		p.startCheck(r)
	}
	return false
}

// startCheck runs checkRoom on r with the loss counters read first: once the check
// has caught the room up with the stream, a later loss moves them.
func (p *pump) startCheck(r *room) {
	mark, ok := p.lossMark(r)
	r.checks++
	go p.checkRoom(r, mark, ok)
}

// checkRoom fills a room's gap, if any, against the stream's last event of the
// guild: used where the next event might be long in coming (a new subscription, a
// NATS reconnect during which core messages were lost, a drop seen by covers).
// Once filled, the room is vouched for as of mark.
func (p *pump) checkRoom(r *room, mark lossMark, markOK bool) {
	last, ok := p.lastGuildSeq(r.id)
	p.post(func() {
		r.checks--
		if p.rooms[r.id] != r || r.fresh || !ok {
			return // gone, not attached yet, or NATS is away: the next event shows any gap
		}
		if last > r.lastSeq {
			p.fill(r, last+1)
		}
		if markOK {
			r.vouched, r.mark = true, mark
		}
	})
}

// lastGuildSeq is the stream sequence of the guild's last event (0: none yet), read
// once this connection's subscriptions are surely in place on the server.
func (p *pump) lastGuildSeq(id guildhall.Snowflake) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return 0, false
	}
	msg, err := p.stream.GetLastMsgForSubject(ctx, ghnats.GuildInSubject(uint64(id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	return msg.Sequence, true
}

// reconnected runs after the NATS connection came back: events re-published while
// it was away are lost to this gateway, so every room checks the stream.
func (p *pump) reconnected() {
	p.post(func() {
		for _, r := range p.rooms {
			p.startCheck(r)
		}
	})
}

// fill applies the room's events from the stream that came after r.lastSeq and
// before seq, in order.
func (p *pump) fill(r *room, before uint64) {
	p.metrics.GapFills.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subject := ghnats.GuildInSubject(uint64(r.id))
	next := r.lastSeq + 1
	for next < before {
		msg, err := p.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			r.recent.restartAfter(before - 1) // gone from the stream: not ours to vouch for
			return
		}
		if err != nil {
			p.log.Error("gap fill failed; asking the room's sessions to resume", "guild", r.id, "err", err)
			r.recent.restartAfter(before - 1) // the gap stays in the room's recent events
			p.reconnectRoom(r)
			return
		}
		if msg.Sequence >= before {
			return
		}
		p.apply(r, msg.Sequence, ghnats.DecodeEvent(natsgo.Header(msg.Header), msg.Data))
		next = msg.Sequence + 1
	}
}

// reconnectRoom asks every session of a room to reconnect and resume: used when the
// gateway cannot tell what it missed, so that the stream replay fills it instead.
func (p *pump) reconnectRoom(r *room) {
	p.flush()
	f := opFrame(OpReconnect, []byte("null"))
	for _, rm := range r.members {
		rm.s.send(f)
		rm.s.close(CloseUnknownError, "reconnect")
	}
}
