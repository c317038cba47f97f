package nats_test

import (
	"context"
	"strconv"
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
}
