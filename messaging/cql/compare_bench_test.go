package cql_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/cql"
)

// The same two benchmarks on the embedded store (bbolt) and on the local Cassandra
// (or GUILDHALL_CQL_HOSTS), with the same data, so that their figures compare:
//
//	go test -run '^$' -bench StoreWriter -benchtime 2000x ./messaging/cql/
//	go test -run '^$' -bench StoreHistoryFixedRate -benchtime 1000x ./messaging/cql/
//
// The bolt cases need no Cassandra.

// benchStores opens each store for a benchmark: bolt in a temp dir, CQL on a fresh
// keyspace.
var benchStores = []struct {
	name string
	open func(b *testing.B) messaging.Store
}{
	{"bolt", func(b *testing.B) messaging.Store {
		s, err := bolt.Open(filepath.Join(b.TempDir(), "store.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"cql", func(b *testing.B) messaging.Store { return openStore(b, cql.Config{}) }},
}

// BenchmarkStoreWriter measures writer throughput: one op is one message, applied
// in ApplyMessages calls of batch messages over 10 channels. Batch 256 is the
// Writer's default (what it applies when the stream has a backlog), batch 1 what it
// applies when messages trickle in. bolt commits (and fsyncs) once per call;
// Cassandra acknowledges after its commit log write, which the test server syncs
// every 10 s (commitlog_sync: periodic), as Cassandra does by default.
func BenchmarkStoreWriter(b *testing.B) {
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) {
			s := st.open(b)
			for _, batch := range []int{1, 256} {
				b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchApplyMessages(b, s, 2, batch) })
			}
		})
	}
}

// historyRate is the fixed request rate of BenchmarkStoreHistoryFixedRate: below
// what the test Cassandra serves on a 2-core machine (about 150 a second one at a
// time, next to the benchmark), so the figures are latency, not queueing.
const historyRate = 50

// BenchmarkStoreHistoryFixedRate measures "the last 50 messages" of a channel
// holding 1,000 messages over 30 days (four 10-day buckets), requested at a fixed
// rate (historyRate) after 200 unmeasured requests that warm the server. The load
// is open-loop: each request starts on its schedule in its own goroutine and its
// latency counts from the scheduled start, so a slow answer shows in the figures
// instead of delaying the requests after it. One op is one request (so ns/op is
// just the interval); it reports p50, p99 and max latency.
func BenchmarkStoreHistoryFixedRate(b *testing.B) {
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) {
			s := st.open(b)
			ch := guildhall.Snowflake(1<<42 + 77)
			start := time.Now().Add(-30 * 24 * time.Hour)
			var writes []messaging.MessageWrite
			for i := range 1000 {
				id := guildhall.SnowflakeAt(start.Add(time.Duration(i) * 43 * time.Minute))
				writes = append(writes, messaging.MessageWrite{Seq: uint64(i + 1), Message: guildhall.Message{
					ID: id, ChannelID: ch, Content: strings.Repeat("y", 120), Timestamp: id.Time(),
				}})
			}
			for len(writes) > 0 {
				n := min(200, len(writes))
				if err := s.ApplyMessages(b.Context(), writes[:n]); err != nil {
					b.Fatal(err)
				}
				writes = writes[n:]
			}
			for range 200 {
				if _, err := s.History(b.Context(), ch, messaging.HistoryQuery{Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, b.N)
			var failed atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			inflight := make(chan struct{}, 512)
			interval := time.Second / historyRate
			b.ResetTimer()
			begin := time.Now()
			for i := 0; i < b.N; i++ {
				at := begin.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				inflight <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-inflight }()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					got, err := s.History(ctx, ch, messaging.HistoryQuery{Limit: 50})
					lat[i] = time.Since(at)
					if err != nil || len(got) != 50 {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("History = %d messages, %v", len(got), err))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(begin)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr.Load())
			}
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}
