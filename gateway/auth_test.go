package gateway

import (
	"context"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A gateway may publish ticks into the stream, and could give one forged
// Nats-Sequence headers. The stream's RePublish appends its own after them; the
// pump must read those, or one tick would move its watermark past every event
// to come.
func TestForgedTickHeadersDoNotMoveTheWatermark(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	nc, js := n.ConnectAs(t, ghnats.RoleGateway)
	sub, err := nc.SubscribeSync(ghnats.TickEventSubject("victim"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	m := natsgo.NewMsg(ghnats.TickInSubject("victim"))
	m.Header.Set(jetstream.SequenceHeader, "18446744073709551000")
	m.Header.Set(jetstream.LastSequenceHeader, "18446744073709550000")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get(jetstream.SequenceHeader) != "18446744073709551000" {
		t.Fatalf("first Nats-Sequence = %q: the forged header did not survive, so this test shows nothing", got.Header.Get(jetstream.SequenceHeader))
	}
	if seq, last := streamSeqs(got.Header); seq != ack.Sequence || last >= seq {
		t.Fatalf("streamSeqs = %d, %d; want the stream's %d and a smaller last", seq, last, ack.Sequence)
	}
}
