package gateway

import (
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// Resumes are limited per user on each gateway by a token bucket in memory
// (LimitsConfig.ResumeBurst, ResumeEvery): a resume costs this gateway a replay
// (from memory, or a JetStream consumer and a read of the stream), and it needs
// a valid token and a live session of the user, so a user is whom to count.
// The bucket is local, not in the limits bucket with identifies: resumes come
// in storms exactly when a gateway dies (every one of its sessions resumes on the
// others within seconds), and a KV round trip per resume would add to that
// storm what the limit is there to spare. A user who spreads resumes over n
// gateways gets n buckets: the bound is per gateway, which is what each
// gateway's CPU needs.
type resumeLimiter struct {
	burst float64
	every time.Duration

	mu      sync.Mutex
	buckets map[guildhall.Snowflake]*resumeBucket
}

type resumeBucket struct {
	tokens float64
	at     time.Time
}

// resumeLimiterMax bounds the users remembered at once: past it, the users whose
// buckets are full again are forgotten (they are as good as new).
const resumeLimiterMax = 100_000

func newResumeLimiter(burst int, every time.Duration) *resumeLimiter {
	return &resumeLimiter{burst: float64(burst), every: every, buckets: map[guildhall.Snowflake]*resumeBucket{}}
}

// allow takes one resume of user at now; false when the user's bucket is empty.
// A negative burst turns the limit off.
func (l *resumeLimiter) allow(user guildhall.Snowflake, now time.Time) bool {
	if l.burst < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[user]
	if b == nil {
		if len(l.buckets) >= resumeLimiterMax {
			l.forgetFullLocked(now)
		}
		b = &resumeBucket{tokens: l.burst, at: now}
		l.buckets[user] = b
	}
	b.refill(now, l.burst, l.every)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back a resume that failed on this side (the client is told to try
// again).
func (l *resumeLimiter) refund(user guildhall.Snowflake) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[user]; b != nil {
		b.tokens = min(l.burst, b.tokens+1)
	}
}

func (b *resumeBucket) refill(now time.Time, burst float64, every time.Duration) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+float64(d)/float64(every))
		b.at = now
	}
}

func (l *resumeLimiter) forgetFullLocked(now time.Time) {
	for id, b := range l.buckets {
		if b.refill(now, l.burst, l.every); b.tokens >= l.burst {
			delete(l.buckets, id)
		}
	}
}
