package gateway

import (
	"bytes"
	"slices"
	"testing"
)

func retained(q *recentEvents, after uint64) []uint64 {
	var seqs []uint64
	q.after(after, func(e recentEvent) { seqs = append(seqs, e.seq) })
	return seqs
}

// The ring keeps the newest events in order, and from says where what it keeps
// stops being complete: evictions, by count or by bytes, move it.
func TestRecentEventsBounds(t *testing.T) {
	var q recentEvents
	q.from = 10
	small := []byte(`{}`)
	for seq := uint64(11); seq <= 10+recentMaxEvents; seq++ {
		q.push(recentEvent{seq: seq, d: sharedDispatch(dispatchFrame("E", seq, small))})
	}
	if q.from != 10 || q.n != recentMaxEvents {
		t.Fatalf("full ring: from %d, n %d; want 10, %d", q.from, q.n, recentMaxEvents)
	}
	for seq := uint64(11 + recentMaxEvents); seq < 11+recentMaxEvents+5; seq++ {
		q.push(recentEvent{seq: seq, d: sharedDispatch(dispatchFrame("E", seq, small))})
	}
	got := retained(&q, 0)
	if q.from != 15 || len(got) != recentMaxEvents || got[0] != 16 || !slices.IsSorted(got) {
		t.Fatalf("after 5 more: from %d, %d kept from %d; want from 15, %d kept from 16", q.from, len(got), got[0], recentMaxEvents)
	}
	if got := retained(&q, 200); len(got) != 71 || got[0] != 201 {
		t.Fatalf("after(200) = %v; want 201..271", got)
	}

	// Big frames: the byte bound evicts before the count bound.
	big := bytes.Repeat([]byte("x"), recentMaxBytes/4)
	last := uint64(1000)
	for range 6 {
		last++
		q.push(recentEvent{seq: last, d: sharedDispatch(dispatchFrame("E", last, big))})
	}
	if got := retained(&q, 0); q.bytes > recentMaxBytes || len(got) != 3 || got[0] != last-2 || q.from != last-3 {
		t.Fatalf("big frames: kept %v (%d bytes), from %d", got, q.bytes, q.from)
	}

	// A frame over the whole bound is not kept, and nothing before it is covered.
	q.push(recentEvent{seq: last + 1, d: sharedDispatch(dispatchFrame("E", last+1, bytes.Repeat([]byte("x"), recentMaxBytes)))})
	if q.n != 0 || q.bytes != 0 || q.from != last+1 {
		t.Fatalf("oversized frame: n %d, %d bytes, from %d; want empty from %d", q.n, q.bytes, q.from, last+1)
	}
	q.push(recentEvent{seq: last + 2, d: sharedDispatch(dispatchFrame("E", last+2, small))})
	if got := retained(&q, q.from); !slices.Equal(got, []uint64{last + 2}) {
		t.Fatalf("after the oversized frame: %v", got)
	}
}
