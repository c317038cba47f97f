package nats_test

import (
	"context"
	"slices"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// A deployment made before DMs has a writer consumer filtered on guild events
// alone and no attachments' object store: applying the topology again moves the
// consumer to both filters, keeping its place, and adds the object store.
func TestApplyUpgradesAnOlderTopology(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{}) // applies today's topology
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := n.JS
	if err := js.DeleteObjectStore(ctx, ghnats.BucketAttachments); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer as it was: one filter subject, some events already acked.
	old := (ghnats.Topology{}).WriterConsumerConfig()
	old.FilterSubjects, old.FilterSubject = nil, ghnats.SubjectInGuild
	if err := stream.DeleteConsumer(ctx, ghnats.ConsumerWriter); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateConsumer(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, ghnats.GuildInSubject(1), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}

	if err := ghnats.Apply(ctx, js, ghnats.Topology{}); err != nil {
		t.Fatalf("Apply over the older topology: %v", err)
	}
	c, err := stream.Consumer(ctx, ghnats.ConsumerWriter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Config.FilterSubjects, []string{ghnats.SubjectInGuild, ghnats.SubjectInDM}) || info.AckFloor.Stream < 3 {
		t.Errorf("writer consumer after the upgrade: filters %v, ack floor %d; want both filters and the floor kept", info.Config.FilterSubjects, info.AckFloor.Stream)
	}
	if _, err := js.ObjectStore(ctx, ghnats.BucketAttachments); err != nil {
		t.Errorf("attachments after the upgrade: %v", err)
	}
}
