package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// StartLimits are Discord's session start limits: a user may start Total sessions
// (IDENTIFY) per Window, and at most one per ConcurrencyWindow in each of
// MaxConcurrency buckets (bucket = shard id % MaxConcurrency). Resumes do not count.
// Zero values mean Discord's: 1000 per 24 h, max_concurrency 1 per 5 s.
type StartLimits struct {
	Total             int
	Window            time.Duration
	MaxConcurrency    int
	ConcurrencyWindow time.Duration
}

func (l StartLimits) withDefaults() StartLimits {
	if l.Total == 0 {
		l.Total = 1000
	}
	if l.Window == 0 {
		l.Window = 24 * time.Hour
	}
	if l.MaxConcurrency == 0 {
		l.MaxConcurrency = 1
	}
	if l.ConcurrencyWindow == 0 {
		l.ConcurrencyWindow = 5 * time.Second
	}
	return l
}

// ErrStartLimited means the user may not start another session now; RetryAfter
// says when it may.
type ErrStartLimited struct{ RetryAfter time.Duration }

func (e *ErrStartLimited) Error() string {
	return fmt.Sprintf("registry: session start limited; retry after %v", e.RetryAfter)
}

// StartLimiter enforces StartLimits across every gateway through the limits bucket:
// a daily counter per user updated with compare-and-set, and per concurrency
// bucket a key that an identify takes by writing it: it is free when absent or
// when its last write (the server's timestamp) is a concurrency window old.
//
// The window is judged by that timestamp, never by whether the key still
// exists: an earlier version wrote the key with a per-key TTL of the window, and
// after a restart of nats-server the keys of the previous run outlived their TTL
// (a second ramp of 1,000 sessions on the same data took 13–60 s instead of 2,
// every first identify answered 4008).
type StartLimiter struct {
	kv     jetstream.KeyValue
	limits StartLimits
	now    func() time.Time
}

// NewStartLimiter binds to the limits bucket (created by nats.Apply).
func NewStartLimiter(ctx context.Context, js jetstream.JetStream, limits StartLimits) (*StartLimiter, error) {
	kv, err := js.KeyValue(ctx, ghnats.BucketLimits)
	if err != nil {
		return nil, fmt.Errorf("registry: limits bucket: %w", err)
	}
	return &StartLimiter{kv: kv, limits: limits.withDefaults(), now: time.Now}, nil
}

type startCount struct {
	Count   int       `json:"count"`
	Started time.Time `json:"started"`
}

// Usage is what GET /gateway/bot reports as session_start_limit.
type Usage struct {
	Total, Remaining, MaxConcurrency int
	ResetAfter                       time.Duration
}

// Usage returns the user's current standing without changing it.
func (l *StartLimiter) Usage(ctx context.Context, user guildhall.Snowflake) (Usage, error) {
	c, _, err := l.count(ctx, user)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Total: l.limits.Total, Remaining: l.limits.Total - c.Count, MaxConcurrency: l.limits.MaxConcurrency}
	if c.Count > 0 {
		u.ResetAfter = max(0, c.Started.Add(l.limits.Window).Sub(l.now()))
	}
	return u, nil
}

// Allow takes one session start for user on shard, or returns *ErrStartLimited. A
// shard of -1 (the client sent none) may take any free concurrency bucket, so a
// client without sharding may start MaxConcurrency sessions per window.
func (l *StartLimiter) Allow(ctx context.Context, user guildhall.Snowflake, shard int) error {
	first, last := 0, l.limits.MaxConcurrency-1
	if shard >= 0 {
		first = shard % l.limits.MaxConcurrency
		last = first
	}
	taken, retry := false, l.limits.ConcurrencyWindow
	for b := first; b <= last && !taken; b++ {
		var wait time.Duration
		var err error
		taken, wait, err = l.takeSlot(ctx, "conc."+user.String()+"."+strconv.Itoa(b))
		if err != nil {
			return err
		}
		retry = min(retry, wait)
	}
	if !taken {
		return &ErrStartLimited{RetryAfter: retry}
	}
	// Compare-and-set; retry when another identify of the same user got there
	// first (a client opening many sessions at once contends here), with jitter.
	for attempt := range 64 {
		if attempt > 0 {
			time.Sleep(time.Duration(rand.IntN(1000*min(attempt, 10))) * time.Microsecond)
		}
		c, rev, err := l.count(ctx, user)
		if err != nil {
			return err
		}
		if c.Count >= l.limits.Total {
			return &ErrStartLimited{RetryAfter: max(0, c.Started.Add(l.limits.Window).Sub(l.now()))}
		}
		if c.Count == 0 {
			c.Started = l.now()
		}
		c.Count++
		b, _ := json.Marshal(c)
		key := "start." + user.String()
		if rev == 0 {
			_, err = l.kv.Create(ctx, key, b)
		} else {
			_, err = l.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if !ghnats.IsKVConflict(err) {
			return err
		}
	}
	return errors.New("registry: session start counter contended")
}

// takeSlot takes a concurrency bucket's key if it is free: absent, or last
// written a concurrency window ago or more. Otherwise it says how long until it
// frees up. Two identifies racing for it write with compare-and-set: one wins.
func (l *StartLimiter) takeSlot(ctx context.Context, key string) (bool, time.Duration, error) {
	window := l.limits.ConcurrencyWindow
	e, err := l.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		_, err = l.kv.Create(ctx, key, nil)
	case err != nil:
		return false, 0, err
	default:
		if age := l.now().Sub(e.Created()); age < window {
			return false, window - age, nil
		}
		_, err = l.kv.Update(ctx, key, nil, e.Revision())
	}
	switch {
	case err == nil:
		return true, 0, nil
	case ghnats.IsKVConflict(err):
		return false, window, nil // another identify took it a moment ago
	}
	return false, 0, err
}

// count reads the user's counter; an expired window counts as empty.
func (l *StartLimiter) count(ctx context.Context, user guildhall.Snowflake) (startCount, uint64, error) {
	e, err := l.kv.Get(ctx, "start."+user.String())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return startCount{}, 0, nil
	}
	if err != nil {
		return startCount{}, 0, err
	}
	var c startCount
	_ = json.Unmarshal(e.Value(), &c)
	if l.now().Sub(c.Started) >= l.limits.Window {
		c = startCount{}
	}
	return c, e.Revision(), nil
}
