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
)

// openRegistry starts NATS with a resume window and opens the registry.
func openRegistry(t *testing.T, window time.Duration) (*registry.Registry, *testenv.NATS) {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{SessionTTL: window})
	reg, err := registry.Open(context.Background(), n.JS)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Window() != window || reg.Backstop() != 24*time.Hour {
		t.Fatalf("Window() = %v, Backstop() = %v; want %v and 24h", reg.Window(), reg.Backstop(), window)
	}
	return reg, n
}

func resumable(t *testing.T, reg *registry.Registry, id string) bool {
	t.Helper()
	s, err := reg.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	ok, err := reg.Resumable(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A session whose client left stays resumable for the window from then, and
// its entry outlives the window (nothing expires it but the backstop).
func TestSessionResumableForTheWindowAfterItsClientLeft(t *testing.T) {
	reg, _ := openRegistry(t, time.Second)
	ctx := context.Background()
	hb, err := reg.Claim(ctx, "gw-a")
	if err != nil {
		t.Fatal(err)
	}
	intents := guildhall.IntentGuilds | guildhall.IntentMessageContent
	s := registry.Session{ID: "s1", UserID: 42, Node: "gw-a", Inc: hb.Inc(), Seq: 7, Intents: &intents}
	rev, err := reg.Put(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reg.Get(ctx, "s1")
	if err != nil || got.UserID != 42 || got.Node != "gw-a" || got.Inc != hb.Inc() || got.Seq != 7 || got.Intents == nil || *got.Intents != intents || got.Revision != rev {
		t.Fatalf("Get(s1) = %+v, %v", got, err)
	}
	if !resumable(t, reg, "s1") {
		t.Fatal("a session held by a live gateway is not resumable")
	}
	got.DisconnectedAt = time.Now()
	if _, err := reg.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if !resumable(t, reg, "s1") {
		t.Fatal("a session whose client just left is not resumable")
	}
	time.Sleep(1100 * time.Millisecond)
	if err := hb.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if resumable(t, reg, "s1") {
		t.Fatal("resumable past the window after its client left, though its gateway lives")
	}
	if err := reg.Delete(ctx, "s1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "s1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
	}
}

// A live session costs no writes: its entry keeps its revision over several
// windows while its gateway beats, and stays resumable. Once the gateway stops
// beating (it died), the session is resumable for the window after the last
// beat, not after.
func TestSessionHeldByItsGatewayHeartbeat(t *testing.T) {
	reg, _ := openRegistry(t, 2*time.Second)
	ctx := context.Background()
	hb, err := reg.Claim(ctx, "gw-b")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := reg.Put(ctx, registry.Session{ID: "s2", UserID: 1, Node: "gw-b", Inc: hb.Inc()})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(reg.BeatInterval()) {
		if err := hb.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if !resumable(t, reg, "s2") {
			t.Fatal("a session of a live gateway stopped being resumable")
		}
	}
	if got, _ := reg.Get(ctx, "s2"); got.Revision != rev {
		t.Fatalf("the live session's entry was written again (revision %d, was %d)", got.Revision, rev)
	}
	// The gateway dies: no more beats.
	time.Sleep(500 * time.Millisecond)
	if !resumable(t, reg, "s2") {
		t.Fatal("not resumable half a window after its gateway's last beat")
	}
	time.Sleep(1700 * time.Millisecond)
	if resumable(t, reg, "s2") {
		t.Fatal("resumable more than a window after its gateway's last beat")
	}
}

// A gateway that restarts under the same node name is a new incarnation: the
// sessions of the one that died are judged by its last beat, not by the new
// one's, and the new one's sessions by its own.
func TestSessionsOfARestartedNode(t *testing.T) {
	reg, _ := openRegistry(t, 2*time.Second)
	ctx := context.Background()
	old, err := reg.Claim(ctx, "gw-c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Put(ctx, registry.Session{ID: "old", UserID: 1, Node: "gw-c", Inc: old.Inc()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cur, err := reg.Claim(ctx, "gw-c")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Inc() == old.Inc() {
		t.Fatal("a new claim kept the incarnation")
	}
	if _, err := reg.Put(ctx, registry.Session{ID: "new", UserID: 1, Node: "gw-c", Inc: cur.Inc()}); err != nil {
		t.Fatal(err)
	}
	if !resumable(t, reg, "old") {
		t.Fatal("the dead incarnation's session is not resumable within the window")
	}
	if err := old.Beat(ctx); !errors.Is(err, registry.ErrNodeTaken) {
		t.Fatalf("the old incarnation's beat = %v; want ErrNodeTaken", err)
	}
	for end := time.Now().Add(2200 * time.Millisecond); time.Now().Before(end); time.Sleep(reg.BeatInterval()) {
		if err := cur.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if resumable(t, reg, "old") {
		t.Fatal("the dead incarnation's session is resumable past the window: judged by the new incarnation's beats")
	}
	if !resumable(t, reg, "new") {
		t.Fatal("the live incarnation's session is not resumable")
	}
}

// Two gateways taking over one session from the same read: one wins.
func TestSessionTakeOverOneWinner(t *testing.T) {
	reg, _ := openRegistry(t, time.Minute)
	ctx := context.Background()
	if _, err := reg.Put(ctx, registry.Session{ID: "s3", UserID: 1, Node: "gw-a", Inc: "x"}); err != nil {
		t.Fatal(err)
	}
	read, err := reg.Get(ctx, "s3")
	if err != nil {
		t.Fatal(err)
	}
	a, b := read, read
	a.Node, b.Node = "gw-b", "gw-c"
	if _, err := reg.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Update(ctx, b); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("second take-over from the same read = %v; want ErrConflict", err)
	}
	if err := reg.Delete(ctx, "s3", read.Revision); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("delete at the old revision = %v; want ErrConflict", err)
	}
	if got, _ := reg.Get(ctx, "s3"); got.Node != "gw-b" {
		t.Fatalf("entry names %s; want gw-b", got.Node)
	}
}

// An entry written by a gateway from before heartbeats (no incarnation, kept
// alive by rewrites) is resumable for the window after its last write.
func TestSessionEntryWithoutIncarnation(t *testing.T) {
	reg, _ := openRegistry(t, time.Second)
	ctx := context.Background()
	if _, err := reg.Put(ctx, registry.Session{ID: "legacy", UserID: 1, Node: "gw-old"}); err != nil {
		t.Fatal(err)
	}
	if !resumable(t, reg, "legacy") {
		t.Fatal("a fresh entry without incarnation is not resumable")
	}
	time.Sleep(1100 * time.Millisecond)
	if resumable(t, reg, "legacy") {
		t.Fatal("an entry without incarnation is resumable a window after its last write")
	}
}

// Heartbeat keys share the bucket with sessions but are never sessions.
func TestHeartbeatIsNoSession(t *testing.T) {
	reg, _ := openRegistry(t, time.Minute)
	if _, err := reg.Claim(context.Background(), "gw-d"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(context.Background(), "node.gw-d"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Get(node.gw-d) = %v; want ErrNotFound", err)
	}
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
