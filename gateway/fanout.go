package gateway

import (
	"runtime"
	"sync"
)

// parallelFanOut is the room size from which one event's writes are split across
// the cores the process may use. Below it one core writes faster than the split
// costs.
const parallelFanOut = 2048

// sendAll gives f to every member, splitting a large room into one part per core.
// It returns when every part is done, so the next event the pump delivers still
// reaches each session after this one (a session's frames stay in stream order).
// send is safe from any goroutine; nothing else of the room is touched.
func sendAll(members []roomMember, f *frame) {
	parts := runtime.GOMAXPROCS(0)
	if parts < 2 || len(members) < parallelFanOut {
		for _, rm := range members {
			rm.s.send(f)
		}
		return
	}
	size := (len(members) + parts - 1) / parts
	var wg sync.WaitGroup
	for lo := size; lo < len(members); lo += size {
		part := members[lo:min(lo+size, len(members))]
		wg.Go(func() {
			for _, rm := range part {
				rm.s.send(f)
			}
		})
	}
	for _, rm := range members[:size] {
		rm.s.send(f)
	}
	wg.Wait()
}
