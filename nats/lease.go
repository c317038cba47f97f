package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxNodes is how many (worker, process) pairs a snowflake has room for.
const MaxNodes = 1024

// Lease holds one snowflake node number (worker<<5 | process) in the leases bucket
// until Release, refreshing it so that no other process can take it while this one
// lives. A process that stops refreshing loses the lease after the bucket's TTL.
type Lease struct {
	Node int

	kv     jetstream.KeyValue
	key    string
	mu     sync.Mutex
	rev    uint64
	cancel context.CancelFunc
	done   chan struct{}
}

// AcquireNode takes a free node number from the leases bucket. Keys are created with
// Create, which fails if the key exists, so two processes never hold the same number.
func AcquireNode(ctx context.Context, js jetstream.JetStream, owner string) (*Lease, error) {
	kv, err := js.KeyValue(ctx, BucketLeases)
	if err != nil {
		return nil, fmt.Errorf("nats: leases bucket: %w", err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	ttl := status.TTL()
	// The key holds owner plus a token of this lease alone: a refresh that finds
	// the key changed recognizes its own earlier write by it, never another
	// process's (owners such as host/pid repeat across containers).
	owner = fmt.Sprintf("%s#%016x", owner, rand.Uint64())
	start := rand.IntN(MaxNodes)
	for i := range MaxNodes {
		n := (start + i) % MaxNodes
		key := "node." + strconv.Itoa(n)
		rev, err := kv.Create(ctx, key, []byte(owner))
		if IsKVConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("nats: lease %s: %w", key, err)
		}
		lctx, cancel := context.WithCancel(context.Background())
		l := &Lease{Node: n, kv: kv, key: key, rev: rev, cancel: cancel, done: make(chan struct{})}
		go l.refresh(lctx, ttl/3, owner)
		return l, nil
	}
	return nil, errors.New("nats: all 1024 snowflake node leases are taken")
}

func (l *Lease) refresh(ctx context.Context, every time.Duration, owner string) {
	defer close(l.done)
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		rev, err := l.kv.Update(ctx, l.key, []byte(owner), l.rev)
		if IsKVConflict(err) {
			// An earlier update may have landed although its answer timed out
			// (seen under overload): then the key still names this owner at a
			// newer revision, and the lease is still ours.
			if e, gerr := l.kv.Get(ctx, l.key); gerr == nil && string(e.Value()) == owner {
				rev, err = l.kv.Update(ctx, l.key, []byte(owner), e.Revision())
			}
		}
		if err == nil {
			l.rev = rev
		}
		l.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			// Losing the lease means another process may take this node number; ids
			// stay unique only while the clock moves on, so say it loudly.
			slog.Error("snowflake lease refresh failed", "key", l.key, "err", err)
		}
	}
}

// Release stops refreshing and frees the node number.
func (l *Lease) Release(ctx context.Context) {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}
