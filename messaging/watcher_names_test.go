package messaging_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guildhall/guildhall/messaging"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// A gateway's identity may fetch from and delete any consumer of the EVENTS
// stream whose name it knows (its replays, whose names are random). An api
// process's own long-lived consumers (the projection's, the revocation
// watcher's) must then be as unguessable: a gateway that could name them could
// delete them or take their messages, over and over, and keep every api
// process's projection stale and its token cache dropped. The projection's
// node is in the name of its mark subject, which any gateway reads in the
// stream's info.
func TestGatewayCannotNameTheAPIsConsumers(t *testing.T) {
	t.Parallel()
	r := newProjRig(t, 1, messaging.Config{})
	svc := r.apis[0]
	ctx := context.Background()
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); _ = svc.WatchRevocations(wctx) }()
	t.Cleanup(func() { stop(); <-watched })

	// Requests that the projection answers, until it has sent a mark.
	owner := registerUser(t, svc, "owner")
	st, err := svc.CreateGuild(ctx, owner, "guild")
	if err != nil {
		t.Fatal(err)
	}
	_, gjs := r.nats.ConnectAs(t, ghnats.RoleGateway)
	stream, err := gjs.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	var node string
	for deadline := time.Now().Add(20 * time.Second); node == "" && time.Now().Before(deadline); {
		if _, err := svc.GuildChannels(ctx, owner, st.Guild.ID); err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(ghnats.SubjectMarksIn))
		if err != nil {
			t.Fatalf("gateway reads the stream's subjects: %v", err)
		}
		for subj := range info.State.Subjects {
			node = subj[strings.LastIndexByte(subj, '.')+1:]
		}
		time.Sleep(200 * time.Millisecond)
	}
	if node == "" {
		t.Fatal("no mark in the stream: the projection never sent one")
	}

	apiConsumers := func() []string {
		t.Helper()
		var names []string
		admin, err := r.nats.JS.Stream(ctx, ghnats.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		lister := admin.ListConsumers(ctx)
		for ci := range lister.Info() {
			if strings.HasPrefix(ci.Name, ghnats.ProjectionWatcherPrefix+"_") || strings.HasPrefix(ci.Name, ghnats.RevocationWatcherPrefix+"_") {
				names = append(names, ci.Name)
			}
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names
	}
	before := apiConsumers()
	if len(before) != 2 {
		t.Fatalf("the api's consumers = %q; want the projection's and the revocation watcher's", before)
	}
	// What the names used to be: a kind, the node (or a snowflake of the
	// process's start) and the ordered consumer's serial.
	guessable := regexp.MustCompile(`^[a-z]+_[0-9]+_[0-9]+$`)
	for _, name := range before {
		if guessable.MatchString(name) {
			t.Errorf("api consumer %q: a kind, a number and a serial can be guessed", name)
		}
	}

	// The attack: the projection's consumer named from its node.
	for serial := 1; serial <= 3; serial++ {
		name := ghnats.ProjectionWatcherPrefix + "_" + node + "_" + strconv.Itoa(serial)
		if err := gjs.DeleteConsumer(ctx, ghnats.StreamEvents, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("gateway deletes consumer %s: %v; want not found", name, err)
		}
	}
	after := apiConsumers()
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("the api's consumers went from %q to %q", before, after)
	}
}
