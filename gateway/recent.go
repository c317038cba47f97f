package gateway

import (
	"cmp"
	"slices"

	guildhall "github.com/guildhall/guildhall"
)

// Each room keeps its newest events, framed as a resume replays them, so that a
// session that resumes here after a short absence is replayed from memory instead
// of from the stream (see covers in gapfill.go for when a room may vouch for them).

// Bounds of a room's recent events. 256 events are a minute or more of a guild
// posting a few a second, longer than a reconnect storm keeps sessions away; 1 MiB
// caps what a room of big messages pins.
const (
	recentMaxEvents = 256
	recentMaxBytes  = 1 << 20
)

// recentEvent is one guild event as a resume replays it: framed with s = seq.
type recentEvent struct {
	seq      uint64
	channel  guildhall.Snowflake   // 0: guild-wide
	requires guildhall.Permissions // guildhall.Event.Requires
	d        *dispatch
}

// recentEvents is a ring of a room's newest events in stream order. Every event
// of the guild with seq > from is in it (when the room is vouched for): evicting
// an event moves from up to it, and so does anything that may have lost events.
type recentEvents struct {
	buf   []recentEvent // grows up to recentMaxEvents
	head  int           // the oldest
	n     int
	bytes int
	from  uint64
}

func (q *recentEvents) push(e recentEvent) {
	size := len(e.d.full.wire)
	for q.n > 0 && (q.n == recentMaxEvents || q.bytes+size > recentMaxBytes) {
		q.dropOldest()
	}
	if size > recentMaxBytes {
		q.from = max(q.from, e.seq)
		return
	}
	if q.n == len(q.buf) {
		grown := make([]recentEvent, min(max(2*len(q.buf), 8), recentMaxEvents))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	q.bytes += size
}

func (q *recentEvents) dropOldest() {
	e := &q.buf[q.head]
	q.from = max(q.from, e.seq)
	q.bytes -= len(e.d.full.wire)
	*e = recentEvent{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}

// restartAfter gives up coverage of events up to seq: some may be missing.
func (q *recentEvents) restartAfter(seq uint64) { q.from = max(q.from, seq) }

// after calls f for each retained event with seq > after, in stream order.
func (q *recentEvents) after(seq uint64, f func(recentEvent)) {
	for i := range q.n {
		if e := q.buf[(q.head+i)%len(q.buf)]; e.seq > seq {
			f(e)
		}
	}
}

// recentFor collects, in the pump at a cut, the session's guild events after seq
// from its rooms' recent events: those it may see (as replayVisible decides), in
// stream order. False when a room cannot vouch for every one of them.
func (p *pump) recentFor(s *Session, seq uint64) ([]*frame, bool) {
	var got []recentEvent
	for id, m := range s.guilds {
		r := p.rooms[id]
		if r == nil || !p.covers(r, seq) {
			return nil, false
		}
		r.recent.after(seq, func(e recentEvent) {
			if r.mayView(e.channel, s.user.ID, m) && (e.requires == 0 || r.allows(e.channel, s.user.ID, m, e.requires)) {
				got = append(got, e)
			}
		})
	}
	slices.SortFunc(got, func(a, b recentEvent) int { return cmp.Compare(a.seq, b.seq) })
	frames := make([]*frame, 0, len(got))
	for _, e := range got {
		if f := e.d.frameFor(s); f != nil {
			frames = append(frames, f)
		}
	}
	return frames, true
}
