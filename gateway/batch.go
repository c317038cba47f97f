package gateway

import (
	"syscall"
	"time"

	guildhall "github.com/guildhall/guildhall"
	natsgo "github.com/nats-io/nats.go"
)

// Batching under load. The pump takes a message from its inbox and then, without
// waiting, whatever else is already there (up to maxBatch): at low load that is
// nothing, and the event goes out alone, at once. When the pump falls behind,
// consecutive events of one room that change nothing in it (messages, typing,
// presence) are planned together and delivered in one walk over the room's
// members, each member's frames of the batch leaving in one writev
// (outbox.sendFrames). The cost per frame falls as the load rises, and no timer
// ever holds a frame back.
//
// A batch is delivered before the pump does anything that would change what its
// events look like or who gets them, so each event still reaches exactly the
// sessions it would have alone, framed the same:
//
//   - an event of another room: a session in both rooms gets the events in stream
//     order, so its s never goes backwards (a client that resumes from the highest
//     s it saw would skip what was still planned);
//   - an event that changes the room (channels, roles, members, the guild):
//     visibility is that at each event;
//   - a tick, or a waiter reaching the watermark: sessions attach at a cut and get
//     only what follows it;
//   - a user's event, a gap fill, a command, a channel the room does not know
//     (the refresh changes the room).

// maxBatch bounds the messages the pump takes from its inbox in one go, so the
// events in one batch and the frames one session gets in one writev.
const maxBatch = 64

// plannedEvent is an event of the batch: its frames, and who in the room may
// see it.
type plannedEvent struct {
	d *dispatch
	// view is the channel's view (nil: every member may see it); before, when
	// not nil, the channel's view before the event changed it: whoever could
	// view the channel then gets the event too.
	view, before *channelView
	// requires, when not zero, limits the event to members with these
	// permissions in channel (guildhall.Event.Requires).
	requires guildhall.Permissions
	channel  guildhall.Snowflake
	// old: the event is not newer than every member's join (a refilled one); a
	// member that joined at or after its sequence does not get it, what it was
	// given when it joined covered it.
	old bool
}

// everyone reports whether every member of the room may see e (their intents
// still choose).
func (e plannedEvent) everyone() bool {
	return !e.old && e.requires == 0 && e.openToAll()
}

// openToAll: the event's channel (if any) is one every member may view.
func (e plannedEvent) openToAll() bool {
	return e.view == nil || e.view.everyone || (e.before != nil && e.before.everyone)
}

// visibleTo reports whether member rm may see e. It fills the views' caches:
// one goroutine only.
func (e plannedEvent) visibleTo(r *room, rm roomMember) bool {
	switch {
	case e.old && rm.from >= e.d.seq:
		return false
	case e.requires != 0:
		return r.allows(e.channel, rm.s.user.ID, rm.m, e.requires)
	case e.openToAll():
		return true
	}
	return r.canView(e.view, rm.s.user.ID, rm.m) || (e.before != nil && r.canView(e.before, rm.s.user.ID, rm.m))
}

// roomBatch is the events planned for one room, in stream order.
type roomBatch struct {
	r      *room
	events []plannedEvent
}

// batchScratch is the working space of one goroutine delivering a batch: one
// member's frames of it, and their iovecs for the writev. The pump has one; the
// parts of a parallel fan-out take theirs from a pool.
type batchScratch struct {
	frames [maxBatch]*frame
	iov    [maxBatch]syscall.Iovec
}

// batchable reports whether an event of this type leaves its room as it was:
// such events may be delivered together with their neighbours of the same room.
func batchable(eventType string) bool {
	switch eventType {
	case guildhall.EventMessageCreate, guildhall.EventMessageUpdate, guildhall.EventMessageDelete,
		guildhall.EventTypingStart, guildhall.EventPresenceUpdate:
		return true
	}
	return false
}

// burst handles m and then every message already waiting in the inbox, up to
// maxBatch in all, and delivers what they planned.
func (p *pump) burst(m *natsgo.Msg) {
	p.handle(m)
	for range maxBatch - 1 {
		select {
		case m = <-p.in:
			p.handle(m)
			continue
		default:
		}
		break
	}
	p.flush()
}

// deliver plans a framed event for every session of the room that may see it
// and whose intents ask for it. before, when not nil, is the channel's view
// before this event changed it: whoever could view the channel then gets the
// event too. An event that requires permissions (guildhall.Event.Requires) goes
// only to members who have them there; an old one (see plannedEvent) only to
// members that joined before it. Its frames leave at the next flush: at
// once for an event that is not batchable, otherwise once the pump has taken
// what was waiting in its inbox. An event that changes the room must find
// nothing planned before its state changes (apply flushes first).
func (p *pump) deliver(r *room, ev guildhall.Event, d *dispatch, before *channelView, old bool) {
	e := plannedEvent{d: d, before: before, requires: ev.Requires, channel: ev.ChannelID, old: old}
	if ev.Requires == 0 && ev.ChannelID != 0 {
		v, ok := r.channelView(ev.ChannelID)
		if !ok {
			// The channel is gone (a channel the room did not know made it catch
			// up first, see handle): nobody may see it.
			return
		}
		e.view = v
	}
	if p.batch.r != r || len(p.batch.events) == maxBatch {
		p.flush()
	}
	p.batch.r = r
	p.batch.events = append(p.batch.events, e)
	if !batchable(ev.Type) || ev.Requires != 0 {
		p.flush()
	}
}

// flush delivers the planned events.
func (p *pump) flush() {
	b := &p.batch
	if len(b.events) == 0 {
		return
	}
	start := time.Now()
	r := b.r
	if len(b.events) == 1 {
		deliverOne(r, b.events[0])
	} else {
		p.deliverBatch(r, b.events)
	}
	per := time.Since(start).Seconds() / float64(len(b.events))
	for range b.events {
		p.metrics.Fanout.Observe(per)
	}
	p.metrics.DispatchCandidates.Add(float64(len(r.members) * len(b.events)))
	clear(b.events)
	b.events = b.events[:0]
	b.r = nil
}
