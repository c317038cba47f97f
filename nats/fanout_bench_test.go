package nats_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkEventFanout is the bus's part of the fan-out path: the api publishes a
// guild event into the EVENTS stream, the stream re-publishes it, and each of
// benchGateways connections (gateways) subscribed to the guild receives it. ns/op
// is per event, to every gateway.
//
// roles: the api and gateways with their identities and permissions, as deployed.
// noauth: the same on a server without authentication (what the bus was before
// it had identities), to see what permissions cost on this path.
//
//	go test -run '^$' -bench EventFanout -benchtime 20000x -count 5 ./nats/
func BenchmarkEventFanout(b *testing.B) {
	b.Run("roles", func(b *testing.B) {
		n := testenv.StartNATS(b, ghnats.Topology{})
		api, _ := n.ConnectAs(b, ghnats.RoleAPI)
		benchFanout(b, api, func(i int) *natsgo.Conn {
			nc, _ := n.ConnectAs(b, ghnats.RoleGateway)
			return nc
		})
	})
	b.Run("noauth", func(b *testing.B) {
		s, err := server.NewServer(&server.Options{
			Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: b.TempDir(),
			NoSigs: true, NoLog: true, MaxPayload: 4 << 20, JetStreamMaxMemory: 256 << 20,
		})
		if err != nil {
			b.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(30 * time.Second) {
			b.Fatal("server not ready")
		}
		b.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		connect := func() *natsgo.Conn {
			nc, _, err := ghnats.Connect(s.ClientURL(), "bench")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(nc.Close)
			return nc
		}
		api := connect()
		js, _ := jetstream.New(api)
		if err := ghnats.Apply(context.Background(), js, ghnats.Topology{}); err != nil {
			b.Fatal(err)
		}
		benchFanout(b, api, func(int) *natsgo.Conn { return connect() })
	})
}

const benchGateways = 8

func benchFanout(b *testing.B, api *natsgo.Conn, gateway func(i int) *natsgo.Conn) {
	const guild = 42
	var got atomic.Int64
	for i := range benchGateways {
		nc := gateway(i)
		sub, err := nc.Subscribe(ghnats.GuildEventSubject(guild), func(*natsgo.Msg) { got.Add(1) })
		if err != nil {
			b.Fatal(err)
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	js, err := jetstream.New(api)
	if err != nil {
		b.Fatal(err)
	}
	ev := guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: guild, ChannelID: 7, Data: []byte(`{"content":"the quick brown fox jumps over the lazy dog"}`)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := js.PublishMsgAsync(ghnats.EventMsg(ev, ""))
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// A busy machine: let the acks catch up.
			<-js.PublishAsyncComplete()
			_, err = js.PublishMsgAsync(ghnats.EventMsg(ev, ""))
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
	want := int64(b.N) * benchGateways
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for got.Load() < want {
		if ctx.Err() != nil {
			b.Fatalf("delivered %d of %d", got.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
