package nats_test

import (
	"context"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// LastSequence reads what was just acknowledged, every time, on a 3-node
// cluster; a direct get of the same may come from a replica that lags, which
// the test counts and shows.
func TestLastSequenceReadsItsWrites(t *testing.T) {
	testenv.SkipShort(t, "starts a 3-node cluster")
	c := testenv.StartCluster(t, 3, ghnats.Topology{})
	_, js := c.ConnectAs(0, ghnats.RoleAPI)
	ctx := context.Background()
	stream, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	stale := 0
	const n = 300
	for i := range n {
		ack, err := js.PublishMsg(ctx, ghnats.EventMsg(guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: 5, Data: []byte(`{}`)}, ""))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := stream.GetLastMsgForSubject(ctx, ghnats.GuildInSubject(5)); err == nil && m.Sequence < ack.Sequence {
			stale++
		}
		got, err := ghnats.LastSequence(ctx, js, ghnats.StreamEvents, ghnats.GuildInSubject(5))
		if err != nil || got != ack.Sequence {
			t.Fatalf("publish %d acknowledged as s=%d; LastSequence = %d, %v", i, ack.Sequence, got, err)
		}
	}
	t.Logf("%d of %d direct gets right after the acknowledgement answered an older message", stale, n)
	if got, err := ghnats.LastSequence(ctx, js, ghnats.StreamEvents, ghnats.GuildInSubject(6)); err != nil || got != 0 {
		t.Fatalf("LastSequence(a subject without messages) = %d, %v; want 0", got, err)
	}
}
