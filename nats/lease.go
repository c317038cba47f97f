package nats

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxNodes is how many (worker, process) pairs a snowflake has room for.
const MaxNodes = 1024

// ErrLeaseTaken: the lease's key is gone or names another holder, so another
// process may hold it now.
var ErrLeaseTaken = errors.New("nats: lease taken by another holder")

// Lease is one key of the leases bucket held by this process: taken with Create
// (which fails while anyone holds the key), refreshed every TTL/3, deleted by
// Release. The leases are Guildhall's only leader election: a snowflake node
// number per api process (AcquireNode) and the one active presence notifier
// (WaitLease).
//
// The key holds the owner's name and a token of this lease alone. A refresh
// whose answer was lost (the update landed, the client timed out) leaves the
// lease's revision behind the key's; the next refresh finds the key still holding
// its token and goes on from there. The lease is lost (Lost is closed) only when
// the key is gone or holds another token, or when no refresh has succeeded for a
// whole TTL: from then on another process may take it.
type Lease struct {
	// Key is the lease's key in the bucket.
	Key string
	// Node is the snowflake node number (worker<<5 | process) of a lease from
	// AcquireNode.
	Node int

	kv     jetstream.KeyValue
	owner  string
	ttl    time.Duration
	cancel context.CancelFunc
	done   chan struct{} // the refresh loop has returned
	lost   chan struct{}

	mu  sync.Mutex
	rev uint64
	err error // why the lease was lost
}

// AcquireNode takes a free snowflake node number from the leases bucket: two
// processes never hold the same number.
func AcquireNode(ctx context.Context, js jetstream.JetStream, owner string) (*Lease, error) {
	kv, ttl, err := leasesBucket(ctx, js)
	if err != nil {
		return nil, err
	}
	owner = leaseOwner(owner)
	start := rand.IntN(MaxNodes)
	for i := range MaxNodes {
		n := (start + i) % MaxNodes
		l, err := tryLease(ctx, kv, ttl, "node."+strconv.Itoa(n), owner)
		if errors.Is(err, ErrLeaseTaken) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l.Node = n
		return l, nil
	}
	return nil, errors.New("nats: all 1024 snowflake node leases are taken")
}

// WaitLease waits until key is free in the leases bucket and takes it, or until
// ctx ends.
func WaitLease(ctx context.Context, js jetstream.JetStream, key, owner string) (*Lease, error) {
	kv, ttl, err := leasesBucket(ctx, js)
	if err != nil {
		return nil, err
	}
	owner = leaseOwner(owner)
	for {
		l, err := tryLease(ctx, kv, ttl, key, owner)
		if !errors.Is(err, ErrLeaseTaken) {
			return l, err
		}
		t := time.NewTimer(min(refreshEvery(ttl), time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func leasesBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, time.Duration, error) {
	kv, err := js.KeyValue(ctx, BucketLeases)
	if err != nil {
		return nil, 0, fmt.Errorf("nats: leases bucket: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("nats: leases bucket: %w", err)
	}
	return kv, st.TTL(), nil
}

// leaseOwner is what a lease's key holds: owner plus a token of this lease
// alone, so that a refresh recognizes its own earlier write and never another
// process's (owners such as host/pid repeat across containers).
func leaseOwner(owner string) string { return fmt.Sprintf("%s#%016x", owner, rand.Uint64()) }

func refreshEvery(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 10 * time.Second
	}
	return ttl / 3
}

// tryLease takes key if it is free; ErrLeaseTaken if not.
func tryLease(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration, key, owner string) (*Lease, error) {
	taken := time.Now()
	rev, err := kv.Create(ctx, key, []byte(owner))
	if IsKVConflict(err) {
		return nil, ErrLeaseTaken
	}
	if err != nil {
		return nil, fmt.Errorf("nats: lease %s: %w", key, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lease{Key: key, kv: kv, owner: owner, ttl: ttl, rev: rev, cancel: cancel, done: make(chan struct{}), lost: make(chan struct{})}
	go l.refresh(lctx, taken)
	return l, nil
}

// Lost is closed when the lease is lost (see Lease); Err says why.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err is why the lease was lost; nil while it holds.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// refresh renews the lease every TTL/3 until ctx ends or the lease is lost. A
// failed renewal is tried again every second until the TTL since the last good
// one has passed. ok is when the last renewal that succeeded was sent.
func (l *Lease) refresh(ctx context.Context, ok time.Time) {
	defer close(l.done)
	every := refreshEvery(l.ttl)
	next := every
	for {
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, every)
		err := l.renew(rctx)
		cancel()
		switch {
		case err == nil:
			ok, next = sent, every
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeaseTaken) || l.ttl > 0 && time.Since(ok) >= l.ttl:
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			close(l.lost)
			return
		default:
			next = time.Second
			if l.ttl > 0 {
				next = max(min(next, time.Until(ok.Add(l.ttl))), time.Millisecond)
			}
		}
	}
}

// renew updates the key at the lease's revision; ErrLeaseTaken when the key is
// gone or another's.
func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rev, err := l.kv.Update(ctx, l.Key, []byte(l.owner), l.rev)
	if IsKVConflict(err) {
		// An earlier update may have landed although its answer timed out (seen
		// under overload): then the key still holds this lease's token at a
		// newer revision, and the lease is still ours.
		e, gerr := l.kv.Get(ctx, l.Key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound) || gerr == nil && string(e.Value()) != l.owner:
			return fmt.Errorf("%w: %s", ErrLeaseTaken, l.Key)
		case gerr != nil:
			return gerr
		}
		rev, err = l.kv.Update(ctx, l.Key, []byte(l.owner), e.Revision())
	}
	if err != nil {
		return fmt.Errorf("nats: lease %s: %w", l.Key, err)
	}
	l.rev = rev
	return nil
}

// Release stops refreshing and frees the key for the next holder (unless the
// lease was lost: then the key is not this process's to delete).
func (l *Lease) Release(ctx context.Context) {
	l.cancel()
	<-l.done
	select {
	case <-l.lost:
		return
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.kv.Delete(ctx, l.Key, jetstream.LastRevision(l.rev))
}
