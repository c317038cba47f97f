package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// violations collects the permission violations the server reports to one
// connection (NATS reports them asynchronously).
type violations struct {
	mu  sync.Mutex
	got []string
}

func (v *violations) option() natsgo.Option {
	return natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
		if errors.Is(err, natsgo.ErrPermissionViolation) {
			v.mu.Lock()
			v.got = append(v.got, err.Error())
			v.mu.Unlock()
		}
	})
}

// wait fails the test unless the server refuses op ("publish" or "subscription")
// on subject within a few seconds.
func (v *violations) wait(t *testing.T, op, subject string) {
	t.Helper()
	want := strings.ToLower(op + ` to "` + subject) // a JetStream API subject may go on
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, e := range v.got {
			if strings.Contains(strings.ToLower(e), want) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t.Fatalf("no permission violation for %s; got %q", want, v.got)
}

// bus is a running NATS with authentication, one node or a cluster.
type bus struct {
	url   string // every node's client URL
	node  string // one node's client URL
	creds string
	js    jetstream.JetStream // the harness's
}

func (b bus) connectAs(t *testing.T, role ghnats.Role, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream) {
	return testenv.NATSConnectAs(t, b.url, b.creds, role, extra...)
}

// onEachBus runs f on one node and, unless -short, on the 3-node cluster the
// cluster tests use (routes authenticated too).
func onEachBus(t *testing.T, f func(t *testing.T, b bus)) {
	t.Run("node", func(t *testing.T) {
		n := testenv.StartNATS(t, ghnats.Topology{})
		f(t, bus{url: n.URL, node: n.URL, creds: n.Creds, js: n.JS})
	})
	t.Run("cluster", func(t *testing.T) {
		testenv.SkipShort(t, "starts a 3-node cluster")
		c := testenv.StartCluster(t, 3, ghnats.Topology{})
		f(t, bus{url: c.URL(), node: c.URLs[2], creds: c.Creds, js: c.JS})
	})
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Without credentials, with an unknown key, or with the leaf link's key, a
// client is refused.
func TestUnauthenticatedConnectionRefused(t *testing.T) {
	onEachBus(t, testUnauthenticatedConnectionRefused)
}

func testUnauthenticatedConnectionRefused(t *testing.T, n bus) {
	if nc, err := natsgo.Connect(n.node); err == nil || !errors.Is(err, natsgo.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect without credentials: err = %v; want an authorization violation", err)
	}
	stranger, _ := nkeys.CreateUser()
	pub, _ := stranger.PublicKey()
	if nc, err := natsgo.Connect(n.node, natsgo.Nkey(pub, stranger.Sign)); err == nil || !errors.Is(err, natsgo.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect with an unknown nkey: err = %v; want an authorization violation", err)
	}
	leaf, err := natsgo.NkeyOptionFromSeed(ghnats.SeedFile(n.creds, ghnats.RoleLeaf))
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := natsgo.Connect(n.node, leaf); err == nil || !errors.Is(err, natsgo.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect as a client with the leaf link's key: err = %v; want an authorization violation", err)
	}
	// The role identities do connect.
	for _, role := range []ghnats.Role{ghnats.RoleAPI, ghnats.RoleWriter, ghnats.RoleGateway, ghnats.RoleOperator} {
		nc, _ := n.connectAs(t, role)
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			t.Fatalf("%s: %v", role, err)
		}
	}
}

// A gateway's identity does its job and nothing more: every refusal below is
// the server's (a permission violation), and none changes anything.
func TestGatewayPermissions(t *testing.T) { onEachBus(t, testGatewayPermissions) }

func testGatewayPermissions(t *testing.T, n bus) {
	var v violations
	gw, gjs := n.connectAs(t, ghnats.RoleGateway, v.option())
	_, ajs := n.connectAs(t, ghnats.RoleAPI)
	ctx := context.Background()
	const guild = 77

	// What it may: read the re-published events (with the stream's sequence),
	// publish its ticks, read the stream, use its buckets.
	events, err := gw.SubscribeSync(ghnats.GuildEventSubject(guild))
	if err != nil {
		t.Fatal(err)
	}
	_ = gw.Flush()
	ack, err := ajs.PublishMsg(ctx, ghnats.EventMsg(guildhall.Event{Type: "MESSAGE_CREATE", GuildID: guild, ChannelID: 5, Data: []byte(`{}`)}, "e1"))
	if err != nil {
		t.Fatalf("api publishes an event: %v", err)
	}
	m, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("gateway receives the re-published event: %v", err)
	}
	if seq, _, ok := ghnats.RePublished(m.Subject, m.Header); !ok || seq != ack.Sequence {
		t.Fatalf("re-published event: RePublished = %d, %v; want %d (headers %v)", seq, ok, ack.Sequence, m.Header)
	}
	// The same event as a direct get's answer aimed at the subject is not
	// mistaken for it.
	if err := gw.PublishRequest("$JS.API.DIRECT.GET.EVENTS."+ghnats.GuildInSubject(guild), ghnats.GuildEventSubject(guild), nil); err != nil {
		t.Fatal(err)
	}
	if m, err := events.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("direct get answer: %v", err)
	} else if seq, _, ok := ghnats.RePublished(m.Subject, m.Header); ok {
		t.Fatalf("a direct get's answer passed for a re-published event (seq %d, headers %v)", seq, m.Header)
	}
	stream, err := gjs.Stream(shortCtx(t), ghnats.StreamEvents)
	if err != nil {
		t.Fatalf("gateway reads the stream's info: %v", err)
	}
	if _, err := stream.GetLastMsgForSubject(shortCtx(t), ghnats.GuildInSubject(guild)); err != nil {
		t.Fatalf("gateway reads the stream: %v", err)
	}
	for _, b := range []string{ghnats.BucketSessions, ghnats.BucketPresence, ghnats.BucketLimits} {
		kv, err := gjs.KeyValue(shortCtx(t), b)
		if err != nil {
			t.Fatalf("gateway opens bucket %s: %v", b, err)
		}
		if _, err := kv.Put(shortCtx(t), "k", []byte("v")); err != nil {
			t.Fatalf("gateway writes bucket %s: %v", b, err)
		}
	}
	info, err := stream.Info(shortCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq

	// Publishing into the stream's input subjects, its own ticks included (the
	// api publishes them for it).
	for _, subj := range []string{ghnats.GuildInSubject(guild), ghnats.UserInSubject(9), ghnats.TickInSubject("gw1")} {
		if _, err := gjs.Publish(shortCtx(t), subj, []byte(`{"forged":true}`)); err == nil {
			t.Fatalf("gateway's publish to %s was stored", subj)
		}
		v.wait(t, "publish", subj)
	}
	// A forged event on a re-published subject, however well its headers imitate
	// the stream's.
	forged := natsgo.NewMsg(ghnats.GuildEventSubject(guild))
	forged.Header.Set(jetstream.SequenceHeader, "18446744073709551000")
	forged.Header.Set(ghnats.HeaderType, "MESSAGE_CREATE")
	if err := gw.PublishMsg(forged); err != nil {
		t.Fatal(err)
	}
	v.wait(t, "publish", ghnats.GuildEventSubject(guild))
	if m, err := events.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("a forged event reached a subscriber: %v", m.Header)
	}
	// The admin subject: minting bots.
	if _, err := gw.Request(ghnats.SubjectAPIBot, []byte(`{"name":"evil"}`), 500*time.Millisecond); err == nil {
		t.Fatal("gateway's request on the admin subject was answered")
	}
	v.wait(t, "publish", ghnats.SubjectAPIBot)

	// The writer's consumer: update (through the create subject), fetch from it,
	// acknowledge for it, delete it. And the stream itself.
	wcfg := ghnats.Topology{}.WriterConsumerConfig()
	wcfg.Description = "hijacked"
	wcfg.FilterSubject = ghnats.TickInSubject("gw1")
	if _, err := gjs.CreateOrUpdateConsumer(shortCtx(t), ghnats.StreamEvents, wcfg); err == nil {
		t.Fatal("gateway updated the writer's consumer")
	}
	v.wait(t, "publish", "$JS.API.CONSUMER.CREATE.EVENTS.writer")
	if err := gjs.DeleteConsumer(shortCtx(t), ghnats.StreamEvents, ghnats.ConsumerWriter); err == nil {
		t.Fatal("gateway deleted the writer's consumer")
	}
	v.wait(t, "publish", "$JS.API.CONSUMER.DELETE.EVENTS.writer")
	if err := gw.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.EVENTS.writer", gw.NewInbox(), []byte(`{"batch":10}`)); err != nil {
		t.Fatal(err)
	}
	v.wait(t, "publish", "$JS.API.CONSUMER.MSG.NEXT.EVENTS.writer")
	if err := gw.Publish("$JS.ACK.EVENTS.writer.1.1.1.1700000000000000000.0", []byte("+ACK")); err != nil {
		t.Fatal(err)
	}
	v.wait(t, "publish", "$JS.ACK.EVENTS.writer.1.1.1.1700000000000000000.0")
	if err := gjs.DeleteStream(shortCtx(t), ghnats.StreamEvents); err == nil {
		t.Fatal("gateway deleted the stream")
	}
	v.wait(t, "publish", "$JS.API.STREAM.DELETE.EVENTS")
	// Any consumer of its own: a push consumer would make JetStream deliver
	// stored messages to any subject, re-published ones included.
	push := jetstream.ConsumerConfig{Name: "mine", DeliverSubject: ghnats.GuildEventSubject(guild), AckPolicy: jetstream.AckNonePolicy}
	if _, err := gw.Request("$JS.API.CONSUMER.CREATE.EVENTS.mine", mustJSON(t, map[string]any{"stream_name": ghnats.StreamEvents, "config": push}), 500*time.Millisecond); err == nil {
		t.Fatal("gateway created a push consumer")
	}
	v.wait(t, "publish", "$JS.API.CONSUMER.CREATE.EVENTS.mine")
	// Purging a bucket.
	if err := gw.Publish("$JS.API.STREAM.PURGE.KV_"+ghnats.BucketSessions, nil); err != nil {
		t.Fatal(err)
	}
	v.wait(t, "publish", "$JS.API.STREAM.PURGE.KV_"+ghnats.BucketSessions)
	// Another identity's inbox, every inbox, the api's requests.
	for _, subj := range []string{ghnats.RoleAPI.InboxPrefix() + ".>", "_INBOX.>", ghnats.SubjectAPIIdentify, ghnats.SubjectAPIBot} {
		if _, err := gw.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		v.wait(t, "subscription", subj)
	}

	// Nothing changed: no event stored, the writer's consumer and the stream as
	// they were.
	s, err := n.js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatalf("stream after the attempts: %v", err)
	}
	if si, _ := s.Info(ctx); si.State.LastSeq != last {
		t.Fatalf("stream's last sequence %d; want %d (something was stored)", si.State.LastSeq, last)
	}
	c, err := s.Consumer(ctx, ghnats.ConsumerWriter)
	if err != nil {
		t.Fatalf("writer's consumer after the attempts: %v", err)
	}
	if ci := c.CachedInfo(); ci.Config.Description != (ghnats.Topology{}).WriterConsumerConfig().Description || !slices.Equal(ci.Config.FilterSubjects, (ghnats.Topology{}).WriterConsumerConfig().FilterSubjects) {
		t.Fatalf("writer's consumer changed: %+v", ci.Config)
	}
	if _, err := s.Consumer(ctx, "mine"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("gateway's push consumer: %v; want not found", err)
	}
}

// The writer reads and acknowledges its consumer and may not publish events.
func TestWriterPermissions(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	var v violations
	_, wjs := n.ConnectAs(t, ghnats.RoleWriter, v.option())
	_, ajs := n.ConnectAs(t, ghnats.RoleAPI)
	if _, err := ajs.PublishMsg(context.Background(), ghnats.EventMsg(guildhall.Event{Type: "MESSAGE_CREATE", GuildID: 3, Data: []byte(`{}`)}, "w1")); err != nil {
		t.Fatal(err)
	}
	c, err := wjs.Consumer(shortCtx(t), ghnats.StreamEvents, ghnats.ConsumerWriter)
	if err != nil {
		t.Fatalf("writer binds its consumer: %v", err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(3 * time.Second))
	if err != nil {
		t.Fatalf("writer fetches: %v", err)
	}
	if err := m.DoubleAck(shortCtx(t)); err != nil {
		t.Fatalf("writer acknowledges: %v", err)
	}
	if _, err := wjs.Publish(shortCtx(t), ghnats.GuildInSubject(3), []byte(`{}`)); err == nil {
		t.Fatal("writer published an event")
	}
	v.wait(t, "publish", ghnats.GuildInSubject(3))
	if _, err := wjs.CreateConsumer(shortCtx(t), ghnats.StreamEvents, jetstream.ConsumerConfig{Name: "w"}); err == nil {
		t.Fatal("writer created a consumer")
	}
	v.wait(t, "publish", "$JS.API.CONSUMER.CREATE.EVENTS.w")
}

// The api answers a gateway through its response permission, although it may
// publish on no inbox; it may not publish re-published events or delete the
// stream. The operator reaches the admin subject and publishes no events.
func TestAPIAndOperatorPermissions(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	var av, ov violations
	api, ajs := n.ConnectAs(t, ghnats.RoleAPI, av.option())
	gw, _ := n.ConnectAs(t, ghnats.RoleGateway)
	op, ojs := n.ConnectAs(t, ghnats.RoleOperator, ov.option())
	for _, subj := range []string{ghnats.SubjectAPIGuild, ghnats.SubjectAPIBot} {
		if _, err := api.QueueSubscribe(subj, "api", func(m *natsgo.Msg) { _ = m.Respond([]byte("ok:" + m.Subject)) }); err != nil {
			t.Fatal(err)
		}
	}
	_ = api.Flush()
	if m, err := gw.Request(ghnats.SubjectAPIGuild, []byte(`{}`), 5*time.Second); err != nil || string(m.Data) != "ok:"+ghnats.SubjectAPIGuild {
		t.Fatalf("gateway's request answered by the api: %v %v", m, err)
	}
	if m, err := op.Request(ghnats.SubjectAPIBot, []byte(`{}`), 5*time.Second); err != nil || string(m.Data) != "ok:"+ghnats.SubjectAPIBot {
		t.Fatalf("operator's admin request answered by the api: %v %v", m, err)
	}
	// The api may publish on an inbox only in answer to a request.
	if err := api.Publish(ghnats.RoleGateway.InboxPrefix()+".x", []byte("unasked")); err != nil {
		t.Fatal(err)
	}
	av.wait(t, "publish", ghnats.RoleGateway.InboxPrefix()+".x")
	if err := api.Publish(ghnats.GuildEventSubject(1), nil); err != nil {
		t.Fatal(err)
	}
	av.wait(t, "publish", ghnats.GuildEventSubject(1))
	if err := ajs.DeleteStream(shortCtx(t), ghnats.StreamEvents); err == nil {
		t.Fatal("api deleted the stream")
	}
	av.wait(t, "publish", "$JS.API.STREAM.DELETE.EVENTS")
	if _, err := ojs.Publish(shortCtx(t), ghnats.GuildInSubject(1), nil); err == nil {
		t.Fatal("operator published an event")
	}
	ov.wait(t, "publish", ghnats.GuildInSubject(1))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(v uint64) string { b, _ := json.Marshal(v); return string(b) }

func TestValidReply(t *testing.T) {
	for reply, want := range map[string]bool{
		ghnats.RoleGateway.InboxPrefix() + ".abc.1": true,
		ghnats.RoleOperator.InboxPrefix() + ".abc":  true,
		"_INBOX.x7Hn2.1":                    true, // nats.go's default prefix
		"":                                  false,
		ghnats.UserEventSubject(5):          false,
		ghnats.GuildInSubject(5):            false,
		ghnats.EphemeralGuildSubject(5):     false,
		ghnats.RoleAPI.InboxPrefix() + ".x": false, // the api's own requests' replies
		"$JS.API.STREAM.DELETE.EVENTS":      false,
	} {
		if got := ghnats.ValidReply(reply); got != want {
			t.Errorf("ValidReply(%q) = %v; want %v", reply, got, want)
		}
	}
}
