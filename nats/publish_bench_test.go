package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkStreamPublishCeiling is what one EVENTS stream stores per second:
// the api's publishes (a ~400-byte MESSAGE_CREATE each, over 1,000 guild
// subjects, Nats-Msg-Id set as the api sets it) with up to inflight awaiting
// their acknowledgement, on file storage with RePublish on and nobody
// listening. replicas=1 is one node; replicas=3 a cluster of three in this
// process (the acks wait for a quorum), both on this one machine; sync=always
// adds an fsync per write (sync_interval: always). The figure is msgs/s;
// ns/op is the same, inverted.
//
//	go test -run '^$' -bench StreamPublishCeiling -benchtime 20000x -count 3 ./nats/
func BenchmarkStreamPublishCeiling(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, sync := range []bool{false, true} {
			name := fmt.Sprintf("replicas=%d/sync=%s", replicas, map[bool]string{false: "default", true: "always"}[sync])
			b.Run(name, func(b *testing.B) {
				var js jetstream.JetStream
				if replicas == 1 {
					n := testenv.StartNATSWith(b, ghnats.Topology{}, func(c *ghnats.ServerConfig) { c.SyncAlways = sync })
					_, js = n.ConnectAs(b, ghnats.RoleAPI)
				} else {
					c := testenv.StartClusterWith(b, 3, ghnats.Topology{}, func(_ int, c *ghnats.ServerConfig) { c.SyncAlways = sync })
					_, js = c.ConnectAs(0, ghnats.RoleAPI)
				}
				benchPublish(b, js, 256)
			})
		}
	}
}

func benchPublish(b *testing.B, api jetstream.JetStream, inflight int) {
	// A sliding window: a publish waits while inflight await their ack.
	js, err := ghnats.JetStreamLike(api.Conn(), api, jetstream.WithPublishAsyncMaxPending(inflight))
	if err != nil {
		b.Fatal(err)
	}
	content := strings.Repeat("x", 300)
	evs := make([]guildhall.Event, 1000)
	for g := range evs {
		evs[g] = guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: guildhall.Snowflake(1000 + g), ChannelID: 7,
			Data: []byte(`{"id":"1576931646385872896","channel_id":"7","content":"` + content + `"}`)}
	}
	ids := guildhall.NewSnowflakeGeneratorForNode(1)
	// Warm up: the stream's leader elected, the first blocks allocated.
	for i := range 100 {
		if _, err := js.PublishMsg(context.Background(), ghnats.EventMsg(evs[i%len(evs)], ids.Next().String())); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		msg := ghnats.EventMsg(evs[i%len(evs)], ids.Next().String())
		_, err := js.PublishMsgAsync(msg, jetstream.WithExpectStream(ghnats.StreamEvents))
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			<-js.PublishAsyncComplete()
			_, err = js.PublishMsgAsync(msg, jetstream.WithExpectStream(ghnats.StreamEvents))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publish acks did not arrive")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
