package gateway

import (
	"runtime"
	"sync"
)

// The fan-out hands framed events to every session of a room that may see them
// (batch.go decides which events go together). The frames are shared; nothing
// here allocates per recipient.

// deliverOne hands one event to the room's members: one frame per member.
func deliverOne(r *room, e plannedEvent) {
	if e.everyone() {
		sendAll(r.members, e.d)
		return
	}
	// canView and allows fill the views' caches: one goroutine only.
	for _, rm := range r.members {
		if f := e.d.frameFor(rm.s); f != nil && e.visibleTo(r, rm) {
			rm.s.out.send(f)
		}
	}
}

// deliverBatch hands several events to the room's members: each member's frames
// of them, in order, in one call to its outbox (one writev when nothing is
// pending).
func (p *pump) deliverBatch(r *room, events []plannedEvent) {
	everyone := true
	for _, e := range events {
		everyone = everyone && e.everyone()
	}
	if everyone {
		sendBatchAll(r.members, events, &p.scratch)
		return
	}
	// canView and allows fill the views' caches: one goroutine only.
	for _, rm := range r.members {
		frames := p.scratch.frames[:0]
		for _, e := range events {
			if f := e.d.frameFor(rm.s); f != nil && e.visibleTo(r, rm) {
				frames = append(frames, f)
			}
		}
		if len(frames) > 0 {
			rm.s.out.sendFrames(frames, &p.scratch)
		}
	}
	clear(p.scratch.frames[:])
}

// parallelFanOut is the room size from which the writes are split across the
// cores the process may use. Below it one core writes faster than the split
// costs.
const parallelFanOut = 2048

// fanOutParts is how many goroutines write to a room of n members.
func fanOutParts(n int) int {
	if parts := runtime.GOMAXPROCS(0); parts >= 2 && n >= parallelFanOut {
		return parts
	}
	return 1
}

// inParts runs f on consecutive parts of members, one goroutine per part, and
// returns when every part is done, so the next event the pump delivers still
// reaches each session after these (a session's frames stay in stream order).
// Part 0 runs on the caller's goroutine.
func inParts(members []roomMember, parts int, f func(i int, part []roomMember)) {
	size := (len(members) + parts - 1) / parts
	var wg sync.WaitGroup
	for i, lo := 1, size; lo < len(members); i, lo = i+1, lo+size {
		part := members[lo:min(lo+size, len(members))]
		wg.Go(func() { f(i, part) })
	}
	f(0, members[:size])
	wg.Wait()
}

// sendAll gives each member its frame of d (if any), splitting a large room into
// one part per core. send and frameFor are safe from any goroutine; nothing else
// of the room is touched.
func sendAll(members []roomMember, d *dispatch) {
	if parts := fanOutParts(len(members)); parts > 1 {
		inParts(members, parts, func(_ int, part []roomMember) { sendEach(part, d) })
		return
	}
	sendEach(members, d)
}

func sendEach(members []roomMember, d *dispatch) {
	for _, rm := range members {
		if f := d.frameFor(rm.s); f != nil {
			rm.s.out.send(f)
		}
	}
}

var batchScratchPool = sync.Pool{New: func() any { return new(batchScratch) }}

// sendBatchAll gives each member its frames of events that every member may see
// (intents still choose), splitting a large room into one part per core; sc is
// the caller's scratch, for the part it writes itself.
func sendBatchAll(members []roomMember, events []plannedEvent, sc *batchScratch) {
	if parts := fanOutParts(len(members)); parts > 1 {
		inParts(members, parts, func(i int, part []roomMember) {
			own := sc
			if i > 0 {
				own = batchScratchPool.Get().(*batchScratch)
				defer batchScratchPool.Put(own)
			}
			sendBatchEach(part, events, own)
		})
		return
	}
	sendBatchEach(members, events, sc)
}

func sendBatchEach(members []roomMember, events []plannedEvent, sc *batchScratch) {
	for _, rm := range members {
		frames := sc.frames[:0]
		for _, e := range events {
			if f := e.d.frameFor(rm.s); f != nil {
				frames = append(frames, f)
			}
		}
		if len(frames) > 0 {
			rm.s.out.sendFrames(frames, sc)
		}
	}
	clear(sc.frames[:])
}
