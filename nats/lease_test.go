package nats_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// A refresh whose answer was lost (the update landed, the client timed out) leaves
// the lease's revision behind the key's. The lease must notice the key still names
// its owner and go on refreshing: losing it would let another process take the
// node number and mint the same snowflakes.
func TestLeaseSurvivesALostRefreshAnswer(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{LeaseTTL: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease, err := ghnats.AcquireNode(ctx, n.JS, "owner-a")
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(context.Background())
	kv, err := n.JS.KeyValue(ctx, ghnats.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	key := "node." + strconv.Itoa(lease.Node)
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	mine := string(e.Value())
	// The "lost answer": the lease's own update lands behind its back.
	bumped, err := kv.Update(ctx, key, []byte(mine), e.Revision())
	if err != nil {
		t.Fatal(err)
	}
	// Several TTLs later the key is still ours and still being refreshed.
	time.Sleep(5 * time.Second)
	e, err = kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("lease key after 2.5 TTLs: %v (the lease stopped refreshing)", err)
	}
	if string(e.Value()) != mine || e.Revision() <= bumped {
		t.Fatalf("lease key = %q at revision %d; want %q refreshed past %d", e.Value(), e.Revision(), mine, bumped)
	}
	// A number another lease holds is never taken back, even one whose process
	// calls itself by the same name (host/pid repeats across containers).
	other := "owner-a#another-lease"
	if _, err := kv.Update(ctx, key, []byte(other), e.Revision()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if e, err := kv.Get(ctx, key); err == nil && string(e.Value()) != other {
		t.Fatalf("lease key = %q; another lease's number was taken back", e.Value())
	}
	// And the lease knows it is lost.
	select {
	case <-lease.Lost():
		if !errors.Is(lease.Err(), ghnats.ErrLeaseTaken) {
			t.Fatalf("lost lease's Err() = %v; want ErrLeaseTaken", lease.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lease does not know another holder took its key")
	}
}

// A named lease (the presence notifier's) has one holder at a time: the next
// waiter takes it once the holder releases it; a holder whose key was deleted
// behind its back knows it lost it, and does not delete the next holder's key.
func TestWaitLeaseOneHolder(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{LeaseTTL: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := ghnats.WaitLease(ctx, n.JS, "test-leader", "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *ghnats.Lease, 1)
	go func() {
		b, err := ghnats.WaitLease(ctx, n.JS, "test-leader", "b")
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	// Several refreshes of a: b keeps waiting.
	select {
	case <-got:
		t.Fatal("a second holder took a held lease")
	case <-time.After(3 * time.Second):
	}
	a.Release(ctx)
	var b *ghnats.Lease
	select {
	case b = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not take the released lease")
	}
	kv, err := n.JS.KeyValue(ctx, ghnats.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "test-leader"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("a lease whose key was deleted is not lost")
	}
	c, err := ghnats.WaitLease(ctx, n.JS, "test-leader", "c")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(ctx)
	b.Release(ctx)
	if e, err := kv.Get(ctx, "test-leader"); err != nil || !strings.HasPrefix(string(e.Value()), "c#") {
		t.Fatalf("key after the lost holder released = %v, %v; want c's", e, err)
	}
}
