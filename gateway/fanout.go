package gateway

import (
	"runtime"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// deliver hands one framed event to every session of the room that may see it and
// whose intents ask for it. The frames are shared; nothing here allocates per
// recipient. before, when not nil, is the channel's view before this event
// changed it: whoever could view the channel then gets the event too. An event
// that requires permissions (guildhall.Event.Requires) goes only to members who
// have them there.
func (p *pump) deliver(r *room, ev guildhall.Event, d *dispatch, before *channelView) {
	start := time.Now()
	if ev.Requires != 0 {
		for _, rm := range r.members {
			if f := d.frameFor(rm.s); f != nil && r.allows(ev.ChannelID, rm.s.user.ID, rm.m, ev.Requires) {
				rm.s.out.send(f)
			}
		}
	} else if ev.ChannelID == 0 {
		sendAll(r.members, d)
	} else {
		v, ok := r.channelView(ev.ChannelID)
		if !ok {
			p.refresh(r)
			if v, ok = r.channelView(ev.ChannelID); !ok {
				return // the channel is gone: nobody may see it
			}
		}
		if v.everyone || (before != nil && before.everyone) {
			sendAll(r.members, d)
		} else {
			// canView fills the view's cache: one goroutine only.
			for _, rm := range r.members {
				if f := d.frameFor(rm.s); f != nil && (r.canView(v, rm.s.user.ID, rm.m) || (before != nil && r.canView(before, rm.s.user.ID, rm.m))) {
					rm.s.out.send(f)
				}
			}
		}
	}
	p.metrics.DispatchCandidates.Add(float64(len(r.members)))
	p.metrics.Fanout.Observe(time.Since(start).Seconds())
}

// parallelFanOut is the room size from which one event's writes are split across
// the cores the process may use. Below it one core writes faster than the split
// costs.
const parallelFanOut = 2048

// sendAll gives each member its frame of d (if any), splitting a large room into
// one part per core. It returns when every part is done, so the next event the
// pump delivers still reaches each session after this one (a session's frames stay
// in stream order). send and frameFor are safe from any goroutine; nothing else of
// the room is touched.
func sendAll(members []roomMember, d *dispatch) {
	parts := runtime.GOMAXPROCS(0)
	if parts < 2 || len(members) < parallelFanOut {
		sendEach(members, d)
		return
	}
	size := (len(members) + parts - 1) / parts
	var wg sync.WaitGroup
	for lo := size; lo < len(members); lo += size {
		part := members[lo:min(lo+size, len(members))]
		wg.Go(func() { sendEach(part, d) })
	}
	sendEach(members[:size], d)
	wg.Wait()
}

func sendEach(members []roomMember, d *dispatch) {
	for _, rm := range members {
		if f := d.frameFor(rm.s); f != nil {
			rm.s.out.send(f)
		}
	}
}
