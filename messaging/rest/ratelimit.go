package rest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// Limit is a rate limit: at most Requests per Per, in fixed windows that start at
// a bucket's first request (what Discord's X-RateLimit-Reset headers describe).
// A negative Requests means no limit.
type Limit struct {
	Requests int
	Per      time.Duration
}

func (l Limit) or(def Limit) Limit {
	if l.Requests == 0 || (l.Requests > 0 && l.Per <= 0) {
		return def
	}
	return l
}

func (l Limit) unlimited() bool { return l.Requests < 0 }

// limiter keeps one window per bucket key in a table bounded by max entries, in
// shards so that requests do not contend on one lock.
type limiter struct {
	seed   maphash.Seed
	shards [16]limiterShard
	max    int // per shard
}

type limiterShard struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	reset time.Time
	count int
}

func newLimiter(maxBuckets int) *limiter {
	l := &limiter{seed: maphash.MakeSeed(), max: max(1, maxBuckets/16)}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*window)
	}
	return l
}

// take counts one request against key. It reports how many remain in the window
// and when the window resets, and ok false when the request is over the limit.
func (l *limiter) take(key string, lim Limit, now time.Time) (remaining int, reset time.Time, ok bool) {
	sh := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, found := sh.m[key]
	if !found || !now.Before(w.reset) {
		if !found && len(sh.m) >= l.max {
			sh.sweep(now, l.max)
		}
		w = &window{reset: now.Add(lim.Per)}
		sh.m[key] = w
	}
	if w.count >= lim.Requests {
		return 0, w.reset, false
	}
	w.count++
	return lim.Requests - w.count, w.reset, true
}

// sweep drops expired windows, and if the shard is still full, arbitrary ones
// (which only hands their owners a fresh window: bounded memory wins).
func (sh *limiterShard) sweep(now time.Time, max int) {
	for k, w := range sh.m {
		if !now.Before(w.reset) {
			delete(sh.m, k)
		}
	}
	for k := range sh.m {
		if len(sh.m) < max {
			break
		}
		delete(sh.m, k)
	}
}

// bucketID is the X-RateLimit-Bucket value of a route: an opaque hash, as Discord
// sends.
func bucketID(route string) string {
	sum := sha256.Sum256([]byte(route))
	return hex.EncodeToString(sum[:16])
}

// seconds formats a duration or an epoch time in seconds with millisecond
// precision, as Discord's headers carry them.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(math.Max(0, d.Seconds()), 'f', 3, 64)
}

// setRateHeaders writes Discord's rate-limit headers.
func setRateHeaders(h http.Header, lim Limit, remaining int, reset, now time.Time, bucket string) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(lim.Requests))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(reset.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", seconds(reset.Sub(now)))
	h.Set("X-RateLimit-Bucket", bucket)
}

// rateLimited is Discord's 429 body.
type rateLimited struct {
	Message    string  `json:"message"`
	RetryAfter float64 `json:"retry_after"`
	Global     bool    `json:"global"`
}

// writeThrottled answers 429 for a throttled login: Discord's rate-limit body
// and Retry-After, scoped to the user (the account or the client address).
func writeThrottled(w http.ResponseWriter, after time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
	w.Header().Set("X-RateLimit-Scope", "user")
	b, _ := json.Marshal(rateLimited{Message: guildhall.ErrRateLimited.Message, RetryAfter: math.Max(0.001, math.Round(after.Seconds()*1000)/1000)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(b)
}
