package natsapi_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/natsapi"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
)

// apiOnBus runs the api's responder with the api's identity, as deployed.
func apiOnBus(t *testing.T) (*testenv.NATS, *messaging.Service) {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	nc, js := n.ConnectAs(t, ghnats.RoleAPI)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := messaging.NewService(context.Background(), messaging.Config{
		Store: store, Conn: nc, JS: js, IDs: guildhall.NewSnowflakeGeneratorForNode(6), BcryptCost: bcrypt.MinCost,
		Logger: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := natsapi.NewResponder(svc, nc, natsapi.Config{Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return n, svc
}

// A request names its reply subject, and NATS lets a responder answer there
// once whatever its permissions deny. The api answers on inboxes only: a
// gateway cannot have an answer delivered as a user event, or stored in the
// stream as a guild event.
func TestResponderAnswersOnInboxesOnly(t *testing.T) {
	n, svc := apiOnBus(t)
	ctx := context.Background()
	owner, err := svc.Register(ctx, messaging.Credentials{Username: "owner", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := svc.Authenticate(ctx, owner.Token)
	st, err := svc.CreateGuild(ctx, u, "Reply")
	if err != nil {
		t.Fatal(err)
	}
	watch, err := n.Conn.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	_ = n.Conn.Flush()
	stream, _ := n.JS.Stream(ctx, ghnats.StreamEvents)
	before, _ := stream.Info(ctx)

	gw, _ := n.ConnectAs(t, ghnats.RoleGateway)
	req, _ := json.Marshal(guildhall.GuildRequest{GuildID: st.Guild.ID})
	aimed := []string{ghnats.UserEventSubject(uint64(u.ID)), ghnats.GuildInSubject(uint64(st.Guild.ID)), ghnats.EphemeralGuildSubject(uint64(st.Guild.ID)), ghnats.RoleAPI.InboxPrefix() + ".x"}
	for _, reply := range aimed {
		if err := gw.PublishRequest(ghnats.SubjectAPIGuild, reply, req); err != nil {
			t.Fatal(err)
		}
	}
	// The same request with an inbox is answered: the responder is there.
	if m, err := gw.Request(ghnats.SubjectAPIGuild, req, 5*time.Second); err != nil || len(m.Data) == 0 {
		t.Fatalf("request with an inbox: %v", err)
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		m, err := watch.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		for _, reply := range aimed {
			if m.Subject == reply {
				t.Fatalf("the api answered on %s: %s", reply, m.Data)
			}
		}
	}
	if after, _ := stream.Info(ctx); after.State.LastSeq != before.State.LastSeq {
		t.Fatalf("stream went from %d to %d: an answer was stored", before.State.LastSeq, after.State.LastSeq)
	}
}

// A gateway gets a replay consumer from the api: a pull consumer of exactly the
// guilds and user asked for, from the sequence asked for, that it may read and
// delete; out-of-bounds requests get an error and no consumer.
func TestReplayConsumerFromTheAPI(t *testing.T) {
	n, _ := apiOnBus(t)
	ctx := context.Background()
	_, ajs := n.ConnectAs(t, ghnats.RoleAPI)
	var seqs []uint64
	for _, g := range []guildhall.Snowflake{11, 12, 11} {
		ack, err := ajs.PublishMsg(ctx, ghnats.EventMsg(guildhall.Event{Type: "MESSAGE_CREATE", GuildID: g, Data: []byte(`{}`)}, ""))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	gw, gjs := n.ConnectAs(t, ghnats.RoleGateway)
	ask := func(req guildhall.ReplayRequest) guildhall.ReplayReply {
		b, _ := json.Marshal(req)
		m, err := gw.Request(ghnats.SubjectAPIReplay, b, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep guildhall.ReplayReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := ask(guildhall.ReplayRequest{Guilds: []guildhall.Snowflake{11}, User: 99, After: seqs[0]})
	if rep.Error != nil || rep.Consumer == "" {
		t.Fatalf("replay = %+v", rep)
	}
	stream, err := gjs.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stream.Consumer(ctx, rep.Consumer)
	if err != nil {
		t.Fatalf("gateway binds its replay consumer: %v", err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(3 * time.Second))
	if err != nil {
		t.Fatalf("gateway fetches its replay: %v", err)
	}
	if md, _ := m.Metadata(); md.Sequence.Stream != seqs[2] || natsgo.Header(m.Headers()).Get(ghnats.HeaderGuild) != "11" {
		t.Fatalf("replay delivered stream sequence %d of guild %s; want %d of guild 11", md.Sequence.Stream, natsgo.Header(m.Headers()).Get(ghnats.HeaderGuild), seqs[2])
	}
	if ci := c.CachedInfo(); ci.Config.AckPolicy != jetstream.AckNonePolicy || ci.Config.DeliverSubject != "" || ci.Config.Durable != "" {
		t.Fatalf("replay consumer config %+v; want a pull consumer without acks", ci.Config)
	}
	if err := stream.DeleteConsumer(ctx, rep.Consumer); err != nil {
		t.Fatalf("gateway deletes its replay consumer: %v", err)
	}

	many := make([]guildhall.Snowflake, ghnats.MaxReplayGuilds+1)
	for i := range many {
		many[i] = guildhall.Snowflake(i + 1)
	}
	for _, bad := range []guildhall.ReplayRequest{
		{Guilds: many, User: 99},
		{Guilds: []guildhall.Snowflake{11}},
		{Guilds: []guildhall.Snowflake{11, 11}, User: 99},
	} {
		if rep := ask(bad); rep.Error == nil || rep.Consumer != "" {
			t.Errorf("replay of %d guilds for user %d = %+v; want an error", len(bad.Guilds), bad.User, rep)
		}
	}
	info, _ := stream.Info(ctx)
	if info.State.Consumers != 1 {
		t.Fatalf("EVENTS has %d consumers; want only the writer's", info.State.Consumers)
	}
}
