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
	// The "lost answer": the same owner's update lands behind the lease's back.
	bumped, err := kv.Update(ctx, key, []byte("owner-a"), e.Revision())
	if err != nil {
		t.Fatal(err)
	}
	// Several TTLs later the key is still ours and still being refreshed.
	time.Sleep(5 * time.Second)
	e, err = kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("lease key after 2.5 TTLs: %v (the lease stopped refreshing)", err)
	}
	if string(e.Value()) != "owner-a" || e.Revision() <= bumped {
		t.Fatalf("lease key = %q at revision %d; want owner-a refreshed past %d", e.Value(), e.Revision(), bumped)
	}
	// A number another owner holds is never taken back.
	if _, err := kv.Update(ctx, key, []byte("owner-b"), e.Revision()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if e, err := kv.Get(ctx, key); err == nil && string(e.Value()) != "owner-b" {
		t.Fatalf("lease key = %q; another owner's lease was taken back", e.Value())
	}
}
