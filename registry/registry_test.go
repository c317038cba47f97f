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

// A concurrency key whose window has passed frees its bucket even when the key
// is still there (as keys with a per-key TTL outlived it after a restart of
// nats-server): the limiter judges by the key's last write.
func TestStartLimiterStaleKeyIsFree(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	ctx := context.Background()
	lim, err := registry.NewStartLimiter(ctx, n.JS, registry.StartLimits{ConcurrencyWindow: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := n.JS.KeyValue(ctx, ghnats.BucketLimits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "conc.41.0", nil); err != nil {
		t.Fatal(err)
	}
	var limited *registry.ErrStartLimited
	if err := lim.Allow(ctx, 41, 0); !errors.As(err, &limited) || limited.RetryAfter > time.Second {
		t.Fatalf("start while the key is fresh = %v; want ErrStartLimited within the 1s window", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := kv.Get(ctx, "conc.41.0"); err != nil {
		t.Fatalf("the stale key is gone (%v): this test needs it there", err)
	}
	if err := lim.Allow(ctx, 41, 0); err != nil {
		t.Fatalf("start once the window passed, the key still there = %v; want nil", err)
	}
	if err := lim.Allow(ctx, 41, 0); !errors.As(err, &limited) {
		t.Fatalf("second start in the new window = %v; want ErrStartLimited", err)
	}
}

// After nats-server restarts on the same data, a user who started a session in
// the previous run may start one as soon as the window has passed.
func TestStartLimiterAfterRestart(t *testing.T) {
	h := testenv.NewHarness(t)
	dir := t.TempDir()
	ctx := context.Background()
	start := func() (*registry.StartLimiter, func()) {
		s, err := ghnats.StartServer(ghnats.ServerConfig{Name: "limits", Dir: dir, Auth: h.Auth()})
		if err != nil {
			t.Fatal(err)
		}
		nc, js, err := ghnats.Connect(s.ClientURL(), "limits", h.Options()...)
		if err != nil {
			t.Fatal(err)
		}
		stop := func() { nc.Close(); s.Shutdown(); s.WaitForShutdown() }
		if err := ghnats.Apply(ctx, js, ghnats.Topology{}); err != nil {
			stop()
			t.Fatal(err)
		}
		lim, err := registry.NewStartLimiter(ctx, js, registry.StartLimits{ConcurrencyWindow: time.Second})
		if err != nil {
			stop()
			t.Fatal(err)
		}
		return lim, stop
	}
	lim, stop := start()
	for u := range guildhall.Snowflake(200) {
		if err := lim.Allow(ctx, 1000+u, 0); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	time.Sleep(1100 * time.Millisecond)
	lim, stop = start()
	defer stop()
	for u := range guildhall.Snowflake(200) {
		if err := lim.Allow(ctx, 1000+u, 0); err != nil {
			t.Fatalf("user %d after the restart: %v", 1000+u, err)
		}
	}
}
