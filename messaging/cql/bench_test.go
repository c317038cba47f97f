package cql_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/cql"
)

// Benchmarks against the local Cassandra (or GUILDHALL_CQL_HOSTS):
//
//	go test -run '^$' -bench CQL -benchtime 2000x ./messaging/cql/

// BenchmarkCQLApplyMessages measures writer throughput: one op is one message,
// applied in ApplyMessages calls of batch messages spread over 10 channels (what
// the writer sends after pulling a batch from the stream).
func BenchmarkCQLApplyMessages(b *testing.B) {
	s := openStore(b, cql.Config{})
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchApplyMessages(b, s, 1, batch) })
	}
}

// benchApplyMessages writes b.N short messages over 10 channels in ApplyMessages
// calls of batch, and reports messages per second. worker keeps the snowflakes of
// different benchmarks apart.
func benchApplyMessages(b *testing.B, s messaging.Store, worker, batch int) {
	content := strings.Repeat("x", 120)
	author := guildhall.User{ID: 1 << 41, Username: "bench", Discriminator: "0"}
	gen := guildhall.NewSnowflakeGenerator(worker, batch%32)
	seq := uint64(time.Now().UnixNano()) >> 8
	writes := make([]messaging.MessageWrite, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for i := 0; i < b.N; i++ {
		seq++
		id := gen.Next()
		writes = append(writes, messaging.MessageWrite{Seq: seq, Message: guildhall.Message{
			ID: id, ChannelID: guildhall.Snowflake(1<<42 + i%10), GuildID: 1 << 43,
			Author: author, Content: content, Timestamp: id.Time(),
		}})
		if len(writes) == batch || i == b.N-1 {
			if err := s.ApplyMessages(b.Context(), writes); err != nil {
				b.Fatal(err)
			}
			writes = writes[:0]
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "msgs/s")
}

// BenchmarkCQLHistoryLatest50 measures "the last 50 messages" of a channel with
// 1,000 messages over several buckets, one request at a time, and reports p50 and
// p99 latency.
func BenchmarkCQLHistoryLatest50(b *testing.B) {
	s := openStore(b, cql.Config{})
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
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		got, err := s.History(b.Context(), ch, messaging.HistoryQuery{Limit: 50})
		lat = append(lat, time.Since(t0))
		if err != nil || len(got) != 50 {
			b.Fatalf("History = %d, %v", len(got), err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
