package gateway

import (
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// A user's resumes: a burst, then one per interval; other users are counted
// apart; a negative burst turns the limit off.
func TestResumeLimiter(t *testing.T) {
	l := newResumeLimiter(3, 10*time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	alice, bob := guildhall.Snowflake(1), guildhall.Snowflake(2)
	for i := range 3 {
		if !l.allow(alice, t0) {
			t.Fatalf("resume %d of a burst of 3 refused", i+1)
		}
	}
	if l.allow(alice, t0.Add(time.Second)) {
		t.Fatal("a fourth resume within the interval allowed")
	}
	if !l.allow(bob, t0) {
		t.Fatal("another user's resume refused")
	}
	if !l.allow(alice, t0.Add(10*time.Second)) {
		t.Fatal("a resume one interval later refused")
	}
	if l.allow(alice, t0.Add(11*time.Second)) {
		t.Fatal("two resumes in one interval allowed after the burst")
	}
	if !l.allow(alice, t0.Add(time.Hour)) || !l.allow(alice, t0.Add(time.Hour)) || !l.allow(alice, t0.Add(time.Hour)) {
		t.Fatal("the bucket did not refill to its burst")
	}

	// A resume that failed on the gateway's side is given back.
	later := t0.Add(2 * time.Hour)
	for range 3 {
		l.allow(alice, later)
	}
	l.refund(alice)
	if !l.allow(alice, later) {
		t.Fatal("a refunded resume refused")
	}
	if l.allow(alice, later) {
		t.Fatal("a refund gave back more than one resume")
	}

	off := newResumeLimiter(-1, time.Second)
	for range 100 {
		if !off.allow(alice, t0) {
			t.Fatal("a resume refused with the limit off")
		}
	}
}

// Past resumeLimiterMax users, those whose buckets are full again are
// forgotten, so the limiter's memory is bounded without losing an empty bucket.
func TestResumeLimiterForgetsFullBuckets(t *testing.T) {
	l := newResumeLimiter(2, time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	busy := guildhall.Snowflake(1)
	l.allow(busy, t0)
	l.allow(busy, t0)
	for i := range resumeLimiterMax {
		l.allow(guildhall.Snowflake(10+i), t0.Add(-time.Hour))
	}
	l.allow(guildhall.Snowflake(1<<40), t0)
	if len(l.buckets) > 2 {
		t.Fatalf("%d users remembered after forgetting the full buckets; want the busy one and the new one", len(l.buckets))
	}
	if l.allow(busy, t0) {
		t.Fatal("the busy user's empty bucket was forgotten")
	}
}
