package nats_test

import (
	"context"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// What TestGatewayPermissions does not try: a gateway's identity (and so an
// edge site's) may not read or write the attachments' object store (the files
// are served by the api to those holding their capability URL), nor touch the
// buckets that are not its own: the api's state (count-cap locks), slowmode,
// and the snowflake leases (taking an api's worker id would make it hand out
// ids another process also hands out).
func TestGatewayRefusedFilesAndOtherBuckets(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	var v violations
	gw, gjs := n.ConnectAs(t, ghnats.RoleGateway, v.option())
	_, ajs := n.ConnectAs(t, ghnats.RoleAPI)

	// A file, put by the api.
	obs, err := ajs.ObjectStore(shortCtx(t), ghnats.BucketAttachments)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(shortCtx(t), "1", []byte("secret file")); err != nil {
		t.Fatal(err)
	}

	if _, err := gjs.ObjectStore(shortCtx(t), ghnats.BucketAttachments); err == nil {
		t.Fatal("gateway opened the attachments' object store")
	}
	v.wait(t, "publish", "$JS.API.STREAM.INFO."+ghnats.StreamAttachments)
	for _, subj := range []string{
		"$JS.API.DIRECT.GET." + ghnats.StreamAttachments,
		"$JS.API.STREAM.MSG.GET." + ghnats.StreamAttachments,
		"$JS.API.STREAM.PURGE." + ghnats.StreamAttachments,
		"$O." + ghnats.BucketAttachments + ".M.evil",
		"$O." + ghnats.BucketAttachments + ".C.evil",
	} {
		if err := gw.PublishRequest(subj, gw.NewInbox(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		v.wait(t, "publish", subj)
	}
	if _, err := gw.SubscribeSync("$O." + ghnats.BucketAttachments + ".>"); err != nil {
		t.Fatal(err)
	}
	v.wait(t, "subscription", "$O."+ghnats.BucketAttachments+".>")

	for _, b := range []string{ghnats.BucketAPIState, ghnats.BucketSlowmode, ghnats.BucketLeases} {
		if _, err := gjs.KeyValue(shortCtx(t), b); err == nil {
			t.Errorf("gateway opened bucket %s", b)
		}
		v.wait(t, "publish", "$JS.API.STREAM.INFO.KV_"+b)
		if err := gw.Publish("$KV."+b+".k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		v.wait(t, "publish", "$KV."+b+".k")
	}

	// Nothing changed: the file is whole, the buckets empty.
	if got, err := obs.GetBytes(shortCtx(t), "1"); err != nil || string(got) != "secret file" {
		t.Fatalf("the file after the attempts: %q, %v", got, err)
	}
	for _, b := range []string{ghnats.BucketAPIState, ghnats.BucketSlowmode, ghnats.BucketLeases} {
		kv, err := n.JS.KeyValue(shortCtx(t), b)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := kv.Status(shortCtx(t)); err != nil || st.Values() != 0 {
			t.Errorf("bucket %s after the attempts: %d values, %v", b, st.Values(), err)
		}
	}
}

// A pull consumer delivers where the fetch request's reply subject says, and
// NATS does not check a requester's permission on it: a gateway that knows a
// replay consumer's name can have its stored events delivered on a
// re-published subject of another guild. Like a direct get's answer, such a
// delivery is not taken for a re-published event.
func TestFetchAimedAtARePublishedSubject(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	gw, _ := n.ConnectAs(t, ghnats.RoleGateway)
	_, ajs := n.ConnectAs(t, ghnats.RoleAPI)
	ctx := context.Background()
	const guildA, guildB = 5, 6
	if _, err := ajs.PublishMsg(ctx, ghnats.EventMsg(guildhall.Event{Type: "MESSAGE_CREATE", GuildID: guildA, ChannelID: 1, Data: []byte(`{"content":"of A"}`)}, "a1")); err != nil {
		t.Fatal(err)
	}
	cfg, err := ghnats.ReplayConsumerConfig(guildhall.ReplayRequest{Guilds: []guildhall.Snowflake{guildA}, User: 9})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.CreateConsumer(ctx, ghnats.StreamEvents, cfg); err != nil {
		t.Fatal(err)
	}
	events, err := gw.SubscribeSync(ghnats.GuildEventSubject(guildB))
	if err != nil {
		t.Fatal(err)
	}
	_ = gw.Flush()
	if err := gw.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+ghnats.StreamEvents+"."+cfg.Name, ghnats.GuildEventSubject(guildB), []byte(`{"batch":1}`)); err != nil {
		t.Fatal(err)
	}
	m, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("the fetch's delivery: %v", err)
	}
	if seq, _, ok := ghnats.RePublished(m.Subject, m.Header); ok {
		t.Fatalf("a fetch's delivery aimed at %s passed for a re-published event (seq %d, headers %v)", m.Subject, seq, m.Header)
	}
	// Only the stream's own copies are: none arrived for guild B.
	if m, err := events.NextMsg(200 * time.Millisecond); err == nil {
		if _, _, ok := ghnats.RePublished(m.Subject, m.Header); ok {
			t.Fatalf("an event of guild %d arrived re-published on guild %d's subject: %v", guildA, guildB, m.Header)
		}
	}
}

// The writer reads its consumer, stores, and deletes the files of deleted
// messages: it may not read the stream by other means, purge or delete it,
// write a file's content, or touch any bucket.
func TestWriterRefusals(t *testing.T) {
	n := testenv.StartNATS(t, ghnats.Topology{})
	var v violations
	w, _ := n.ConnectAs(t, ghnats.RoleWriter, v.option())
	for _, subj := range []string{
		"$JS.API.DIRECT.GET." + ghnats.StreamEvents,
		"$JS.API.STREAM.MSG.GET." + ghnats.StreamEvents,
		"$JS.API.STREAM.PURGE." + ghnats.StreamEvents,
		"$JS.API.STREAM.MSG.DELETE." + ghnats.StreamEvents,
		"$JS.API.CONSUMER.DELETE." + ghnats.StreamEvents + "." + ghnats.ConsumerWriter,
		"$O." + ghnats.BucketAttachments + ".C.evil",
		"$KV." + ghnats.BucketSessions + ".k",
		"$KV." + ghnats.BucketLeases + ".k",
		ghnats.SubjectAPIBot,
	} {
		if err := w.PublishRequest(subj, w.NewInbox(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		v.wait(t, "publish", subj)
	}
	for _, subj := range []string{ghnats.SubjectEvAll, ghnats.RoleAPI.InboxPrefix() + ".>", "$O." + ghnats.BucketAttachments + ".>"} {
		if _, err := w.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		v.wait(t, "subscription", subj)
	}
}
