package presence_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
)

// BenchmarkPipeline: the server side of presence without WebSockets. 32 writers
// (as gateway workers do) change the status of their users in the presence bucket
// (file storage, as in production); the notifier announces each change on a small
// guild's ephemeral subject; a subscriber counts the announcements. updates/s is
// changes written and announced per second, end to end.
//
//	go test -run '^$' -bench Pipeline -benchtime 20000x ./presence/
func BenchmarkPipeline(b *testing.B) {
	n := testenv.StartNATS(b, ghnats.Topology{})
	ctx := context.Background()
	const guild = guildhall.Snowflake(1)
	var announced atomic.Int64
	sub, err := n.Conn.Subscribe(ghnats.EphemeralGuildSubject(uint64(guild)), func(*natsgo.Msg) { announced.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	nf := presence.NewNotifier(n.Conn, n.JS, presence.NotifierConfig{})
	nctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = nf.Run(nctx) }()
	<-nf.Ready()

	const writers, usersPer = 32, 16
	known := make([][]presence.Known, writers)
	trackers := make([]*presence.Tracker, writers)
	for w := range writers {
		trackers[w] = presence.NewTracker(n.JS, fmt.Sprintf("gw%d", w))
		known[w] = make([]presence.Known, usersPer)
	}
	state := func(i int) presence.State {
		st := presence.State{Sessions: 1, Guilds: []guildhall.Snowflake{guild}, GuildsKnown: true}
		st.Update = &presence.Update{Status: []presence.Status{presence.Idle, presence.DND}[i%2]}
		return st
	}
	// Everyone online first (not timed).
	for w := range writers {
		for u := range usersPer {
			k, err := trackers[w].Sync(ctx, guildhall.Snowflake(1000+w*usersPer+u), presence.State{Sessions: 1, Guilds: []guildhall.Snowflake{guild}, GuildsKnown: true}, presence.Known{})
			if err != nil {
				b.Fatal(err)
			}
			known[w][u] = k
		}
	}
	testenv.Eventually(b, time.Minute, func() error {
		if a := announced.Load(); a != writers*usersPer {
			return fmt.Errorf("%d online announcements; want %d", a, writers*usersPer)
		}
		return nil
	})
	announced.Store(0)
	per := (b.N + writers - 1) / writers
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				u := i % usersPer
				k, err := trackers[w].Sync(ctx, guildhall.Snowflake(1000+w*usersPer+u), state(i/usersPer), known[w][u])
				if err != nil {
					b.Error(err)
					return
				}
				known[w][u] = k
			}
		}()
	}
	wg.Wait()
	total := int64(per * writers)
	testenv.Eventually(b, time.Minute, func() error {
		if a := announced.Load(); a < total {
			return fmt.Errorf("%d announced; want %d", a, total)
		}
		return nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "updates/s")
}
