package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
)

// Presence measurements over the whole stack (embedded NATS, bbolt, api,
// gateways, WebSocket clients), all in this process:
//
//	go test -run '^$' -bench 'Presence' -benchtime 2000x ./gateway/   # updates/s
//	go test -run '^$' -bench 'ComingOnline' -benchtime 20x ./gateway/ # cost of one user
//	go test -run '^$' -bench 'CountLag' -benchtime 10x ./gateway/     # aggregation lag
//	go test -run '^$' -bench 'SteadyState' -benchtime 10x ./gateway/  # cost of staying online
//
// They report custom metrics; ns/op means little here.

// BenchmarkPresenceUpdates: members of a 200-member guild (sessions on two
// gateways) change status with op 3, each waiting until an observer session has
// seen its change before the next (199 users in a closed loop). updates/s is the
// sustained rate of changes announced: each written to the presence bucket,
// watched by the notifier, published once on the guild's ephemeral subject and
// delivered to all 200 sessions (deliveries/s). latency is op 3 to the observer.
func BenchmarkPresenceUpdates(b *testing.B) {
	const members = 200
	users := newSeedUsers(7_000_000, "pu", members)
	st := startPresenceStack(b, stackOptions{
		gateways: 2,
		presence: gateway.PresenceConfig{MinUpdateInterval: time.Millisecond, Workers: 16},
		seed:     func(path string) { seedBolt(b, path, seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users}) },
	})
	observer, err := connect(b, st.gws[0].url, users[0].Token, nil)
	if err != nil {
		b.Fatal(err)
	}
	// The observer's payloads, read once, to one channel per user.
	seen := map[guildhall.Snowflake]chan string{}
	for _, u := range users {
		seen[u.ID] = make(chan string, 1024)
	}
	go func() {
		for {
			p, err := observer.Next(time.Hour)
			if err != nil {
				return
			}
			if p.T != guildhall.EventPresenceUpdate {
				continue
			}
			var d presence.Presence
			if json.Unmarshal(p.D, &d) == nil && seen[d.User.ID] != nil {
				seen[d.User.ID] <- string(d.Status)
			}
		}
	}()
	clients := connectMany(b, []string{st.gws[0].url, st.gws[1].url}, users[1:])
	for _, u := range users[1:] {
		select {
		case <-seen[u.ID]: // online
		case <-time.After(60 * time.Second):
			b.Fatalf("user %d never seen online", u.ID)
		}
	}
	statuses := []string{"idle", "dnd", "online"}
	per := (b.N + members - 2) / (members - 1)
	var latency atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		uid := users[i+1].ID
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range per {
				want := statuses[n%len(statuses)]
				t0 := time.Now()
				if err := c.Send(3, map[string]any{"status": want, "since": nil, "afk": false, "activities": []any{}}); err != nil {
					b.Error(err)
					return
				}
				for got := ""; got != want; {
					select {
					case got = <-seen[uid]:
					case <-time.After(60 * time.Second):
						b.Errorf("user %d: %s not seen", uid, want)
						return
					}
				}
				latency.Add(int64(time.Since(t0)))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	n := per * len(clients)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "updates/s")
	b.ReportMetric(float64(n*members)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(latency.Load())/float64(n)/1e6, "ms-latency")
}

// msgCounter counts every message on the NATS server (subject ">") by kind.
type msgCounter struct {
	mu     sync.Mutex
	counts map[string]int
	total  atomic.Int64
}

func countMessages(b testing.TB, n *testenv.NATS) *msgCounter {
	// The harness's identity: it may subscribe to everything.
	nc, _, err := ghnats.Connect(n.URL, "counter", n.Harness.Options()...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	c := &msgCounter{counts: map[string]int{}}
	sub, err := nc.Subscribe(">", func(m *natsgo.Msg) {
		k := kindOf(m.Subject, m.Reply)
		c.mu.Lock()
		c.counts[k]++
		c.mu.Unlock()
		c.total.Add(1)
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	return c
}

func kindOf(subj, reply string) string {
	switch {
	case strings.HasPrefix(reply, "$JS.ACK.KV_gh_presence."):
		return "presence watch delivery (notifier)"
	case strings.HasPrefix(reply, "$JS.ACK."):
		return "other consumer delivery"
	case strings.HasPrefix(subj, "$KV.gh_presence."):
		return "kv presence write"
	case strings.HasPrefix(subj, "$KV.gh_sessions."):
		return "kv sessions write"
	case strings.HasPrefix(subj, "$KV.gh_limits."):
		return "kv limits write"
	case strings.HasPrefix(subj, "$KV."):
		return "kv other write"
	case strings.HasPrefix(subj, "$JS.API.DIRECT.GET.KV_gh_presence"):
		return "kv presence read"
	case strings.HasPrefix(subj, "$JS.API.DIRECT.GET.KV_"):
		return "kv other read"
	case strings.HasPrefix(subj, "$JS.ACK."):
		return "js ack/flow"
	case strings.HasPrefix(subj, "$JS.API."):
		return "js api"
	case strings.HasPrefix(subj, "$JS.FC."):
		return "js ack/flow"
	case strings.HasPrefix(subj, "_INBOX.") || strings.HasPrefix(subj, "_INBOX"):
		return "replies (acks, api answers, watch deliveries)"
	case strings.HasPrefix(subj, ghnats.SubjectEphemeral+"g."):
		return "ephemeral guild event"
	case strings.HasPrefix(subj, ghnats.SubjectPresenceCounts):
		return "count report"
	case strings.HasPrefix(subj, ghnats.SubjectAPI):
		return "api request"
	case strings.HasPrefix(subj, "gh.in."):
		return "stream publish (tick/event)"
	case strings.HasPrefix(subj, "gh.ev."):
		return "stream republish"
	}
	return "other: " + subj
}

func (c *msgCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// BenchmarkComingOnline100k: the NATS messages and KV operations of one user
// coming online (IDENTIFY to presence written) in a guild of 100,000 members
// where others are online, seen by a subscriber to every subject. Count reports
// are periodic and not per user; they are turned off here (one report carries any
// number of users). Metrics are per user.
func BenchmarkComingOnline100k(b *testing.B) {
	const others = 50
	users := newSeedUsers(8_000_000, "co", others+b.N)
	long := time.Hour
	st := startPresenceStack(b, stackOptions{
		gateways: 1,
		presence: gateway.PresenceConfig{CountInterval: long},
		topo:     ghnats.Topology{PresenceTTL: long, SessionTTL: long, LeaseTTL: long},
		seed: func(path string) {
			seedBolt(b, path, seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: users, Extra: 100_000 - len(users), ExtraBase: 9_000_000})
		},
	})
	connectMany(b, []string{st.gws[0].url}, users[:others])
	testenv.Eventually(b, 60*time.Second, func() error {
		if _, ok := presenceEntry(b, st, users[others-1].ID); !ok {
			return fmt.Errorf("user %d not online yet", others-1)
		}
		return nil
	})
	counter := countMessages(b, st.nats)
	time.Sleep(500 * time.Millisecond) // let in-flight traffic pass
	before := counter.snapshot()
	tot0 := counter.total.Load()
	b.ResetTimer()
	for i := range b.N {
		if _, err := connect(b, st.gws[0].url, users[others+i].Token, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Presence is written after READY; the last user's entry means all are. (These
	// few reads are counted too; they are the benchmark's, not the users'.)
	last := users[len(users)-1].ID
	testenv.Eventually(b, 30*time.Second, func() error {
		if _, ok := presenceEntry(b, st, last); !ok {
			return fmt.Errorf("user %d not online yet", last)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	after := counter.snapshot()
	var kinds []string
	for k := range after {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	total := float64(counter.total.Load() - tot0)
	for _, k := range kinds {
		if d := after[k] - before[k]; d > 0 {
			b.Logf("N=%d %-48s %8.2f per user", b.N, k, float64(d)/float64(b.N))
		}
	}
	b.ReportMetric(total/float64(b.N), "nats-msgs/user")
	b.ReportMetric(float64(after["kv presence write"]-before["kv presence write"])/float64(b.N), "presence-kv-writes/user")
	b.ReportMetric(float64(after["ephemeral guild event"]-before["ephemeral guild event"])/float64(b.N), "presence-updates/user")
}

// BenchmarkCountLag: how long after a session is READY the aggregator's
// approximate_presence_count includes it, with the default report interval (5 s):
// expect up to one interval plus delivery, half an interval on average.
func BenchmarkCountLag(b *testing.B) {
	users := newSeedUsers(8_500_000, "cl", b.N+1)
	st := startPresenceStack(b, stackOptions{
		gateways: 2,
		seed: func(path string) {
			seedBolt(b, path, seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: users, Extra: 1000, ExtraBase: 9_500_000})
		},
	})
	ctx := context.Background()
	var lags []time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Connect at a random moment of the report interval: the loop would
		// otherwise lock onto the reports' phase.
		b.StopTimer()
		time.Sleep(rand.N(5 * time.Second))
		b.StartTimer()
		if _, err := connect(b, st.gws[i%2].url, users[i].Token, nil); err != nil {
			b.Fatal(err)
		}
		ready := time.Now()
		for {
			n, _ := st.agg.ApproximatePresenceCount(ctx, largeGuild)
			if n >= i+1 {
				break
			}
			if time.Since(ready) > time.Minute {
				b.Fatalf("count stuck at %d; want %d", n, i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lags = append(lags, time.Since(ready))
	}
	b.StopTimer()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	var sum time.Duration
	for _, l := range lags {
		sum += l
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(lags)), "ms-mean-lag")
	b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "ms-p50-lag")
	b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "ms-max-lag")
}

// BenchmarkPresenceSteadyState: what staying online costs when nothing changes.
// N users of a large guild are online on two gateways; the presence TTL is 3 s,
// so gateways refresh every second. One op is one refresh interval (ns/op is
// that wall time). kv-writes/interval counts every write to the presence bucket
// (each also a watch delivery to the notifier); cpu-ms/interval is this whole
// process's CPU (embedded NATS, api, notifier, gateways, idle clients).
//
//	go test -run '^$' -bench SteadyState -benchtime 10x ./gateway/
func BenchmarkPresenceSteadyState(b *testing.B) {
	for _, online := range []int{500, 2000} {
		b.Run(fmt.Sprintf("users=%d", online), func(b *testing.B) { steadyState(b, online) })
	}
}

func steadyState(b *testing.B, online int) {
	const ttl = 3 * time.Second
	users := newSeedUsers(guildhall.Snowflake(7_500_000+online*10), "ss", online)
	st := startPresenceStack(b, stackOptions{
		gateways: 2,
		presence: gateway.PresenceConfig{CountInterval: time.Hour}, // count reports are another story
		topo:     ghnats.Topology{PresenceTTL: ttl},
		seed:     func(path string) { seedBolt(b, path, seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: users}) },
	})
	connectMany(b, []string{st.gws[0].url, st.gws[1].url}, users)
	testenv.Eventually(b, 60*time.Second, func() error {
		for _, u := range users {
			if _, ok := presenceEntry(b, st, u.ID); !ok {
				return fmt.Errorf("user %d not online yet", u.ID)
			}
		}
		return nil
	})
	time.Sleep(2 * ttl) // the identify burst is over
	ctx := context.Background()
	lastSeq := func() uint64 {
		s, err := st.nats.JS.Stream(ctx, "KV_"+ghnats.BucketPresence)
		if err != nil {
			b.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return info.State.LastSeq
	}
	seq0, cpu0 := lastSeq(), cpuTime()
	b.ResetTimer()
	for range b.N {
		time.Sleep(ttl / 3)
	}
	b.StopTimer()
	writes, cpu := lastSeq()-seq0, cpuTime()-cpu0
	b.ReportMetric(float64(writes)/float64(b.N), "kv-writes/interval")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/interval")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
