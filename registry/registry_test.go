package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// A session that is not refreshed expires after the TTL, and a watcher sees it go.
func TestSessionExpiresAndWatchersSeeIt(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{SessionTTL: time.Second})
	ctx := context.Background()
	reg, err := registry.Open(ctx, n.JS)
	if err != nil {
		t.Fatal(err)
	}
	if reg.TTL() != time.Second {
		t.Fatalf("TTL() = %v; want 1s", reg.TTL())
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := watchSessions(t, wctx, n.JS)
	intents := guildhall.IntentGuilds | guildhall.IntentMessageContent
	s := registry.Session{ID: "s1", UserID: 42, Node: "gw-a", Seq: 7, Intents: &intents}
	if err := reg.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Get(ctx, "s1")
	if err != nil || got.UserID != 42 || got.Node != "gw-a" || got.Seq != 7 || got.Intents == nil || *got.Intents != intents {
		t.Fatalf("Get(s1) = %+v, %v", got, err)
	}
	var sawPut, sawGone bool
	deadline := time.After(30 * time.Second)
	for !sawGone {
		select {
		case e := <-events:
			if e.Key() != "s1" {
				continue
			}
			if e.Operation() == jetstream.KeyValuePut {
				sawPut = true
			} else {
				sawGone = true
			}
		case <-deadline:
			t.Fatalf("no expiry seen (put seen: %v)", sawPut)
		}
	}
	if !sawPut {
		t.Error("the watcher did not see the put")
	}
	if _, err := reg.Get(ctx, "s1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Get after expiry = %v; want ErrNotFound", err)
	}
}

// watchSessions reports the changes of the sessions bucket from now on: what a
// watcher of the registry sees.
func watchSessions(t *testing.T, ctx context.Context, js jetstream.JetStream) <-chan jetstream.KeyValueEntry {
	t.Helper()
	kv, err := js.KeyValue(ctx, ghnats.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan jetstream.KeyValueEntry, 256)
	go func() {
		defer func() { _ = w.Stop() }()
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// Session starts are limited per user: max_concurrency per window, and a total.
func TestStartLimiter(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	ctx := context.Background()
	lim, err := registry.NewStartLimiter(ctx, n.JS, registry.StartLimits{Total: 3, MaxConcurrency: 2, ConcurrencyWindow: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	user := guildhall.Snowflake(99)
	for i := range 2 {
		if err := lim.Allow(ctx, user, -1); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	var limited *registry.ErrStartLimited
	if err := lim.Allow(ctx, user, -1); !errors.As(err, &limited) {
		t.Fatalf("third start in one window = %v; want ErrStartLimited", err)
	}
	// Another user is not affected.
	if err := lim.Allow(ctx, 100, 0); err != nil {
		t.Fatalf("other user: %v", err)
	}
	// After the concurrency window one more start fits the total of 3, then none.
	testenv.Eventually(t, 10*time.Second, func() error { return lim.Allow(ctx, user, 0) })
	u, err := lim.Usage(ctx, user)
	if err != nil || u.Remaining != 0 || u.Total != 3 || u.MaxConcurrency != 2 {
		t.Fatalf("Usage = %+v, %v; want 0 of 3 remaining", u, err)
	}
	time.Sleep(1500 * time.Millisecond) // past the concurrency window, so only the total refuses
	if err := lim.Allow(ctx, user, 1); !errors.As(err, &limited) {
		t.Fatalf("start past the total = %v; want ErrStartLimited", err)
	}
}

// Many identifies of one user at once all count, none is refused for contention.
func TestStartLimiterConcurrentStarts(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	ctx := context.Background()
	lim, err := registry.NewStartLimiter(ctx, n.JS, registry.StartLimits{Total: 1000, MaxConcurrency: 64})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 40)
	for range 40 {
		go func() { errs <- lim.Allow(ctx, 7, -1) }()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent start: %v", err)
		}
	}
	if u, err := lim.Usage(ctx, 7); err != nil || u.Remaining != 960 {
		t.Fatalf("Usage = %+v, %v; want 960 remaining", u, err)
	}
}
