package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

// faultStore is the real bbolt store with ApplyMessages faults injected on
// demand: failing without writing (the database is down), or writing and then
// failing (the write landed but the writer never learns it, so it retries).
type faultStore struct {
	*bolt.Store
	failing      atomic.Bool
	failAfterOne atomic.Int32 // this many calls write and then fail
	failed       atomic.Int32 // calls that failed
	applies      atomic.Int32 // calls that wrote
}

func (s *faultStore) ApplyMessages(ctx context.Context, w []messaging.MessageWrite) error {
	if s.failing.Load() {
		s.failed.Add(1)
		return errors.New("injected: store unavailable")
	}
	if err := s.Store.ApplyMessages(ctx, w); err != nil {
		return err
	}
	s.applies.Add(1)
	if s.failAfterOne.Add(-1) >= 0 {
		s.failed.Add(1)
		return errors.New("injected: written, then the connection dropped")
	}
	return nil
}

type writerRig struct {
	t       *testing.T
	log     *slog.Logger
	nats    *testenv.NATS
	store   *faultStore
	metrics *messaging.Metrics
	guild   guildhall.Snowflake
	channel guildhall.Snowflake
	ids     *guildhall.SnowflakeGenerator
}

func newWriterRig(t *testing.T) *writerRig {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	r := &writerRig{t: t, log: testLog(t), nats: n, store: &faultStore{Store: bs}, metrics: messaging.NewMetrics(nil),
		ids: guildhall.NewSnowflakeGeneratorForNode(3)}
	r.guild, r.channel = r.ids.Next(), r.ids.Next()
	return r
}

// testLog is the logger of the code under test: its lines go with the test's
// output (shown when it fails, or with -v). Whatever logs must be stopped by the
// test's cleanups.
func testLog(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// run starts a writer until the test ends or stop is called.
func (r *writerRig) run(w *messaging.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			r.t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	r.t.Cleanup(stop)
	return stop
}

func (r *writerRig) writer(batch int) *messaging.Writer {
	w, err := messaging.NewWriter(messaging.WriterConfig{
		Store: r.store, JS: r.nats.JS, Batch: batch, Metrics: r.metrics, Logger: r.log,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, IdleWait: time.Second,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

// publish sends an event to the stream as the api would and returns its sequence.
func (r *writerRig) publish(typ string, data any, msgID string) uint64 {
	r.t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		r.t.Fatal(err)
	}
	ev := guildhall.Event{Type: typ, GuildID: r.guild, ChannelID: r.channel, Data: b}
	ack, err := r.nats.JS.PublishMsg(context.Background(), ghnats.EventMsg(ev, msgID))
	if err != nil {
		r.t.Fatal(err)
	}
	return ack.Sequence
}

func (r *writerRig) post(content string) guildhall.Message {
	id := r.ids.Next()
	m := guildhall.Message{ID: id, ChannelID: r.channel, GuildID: r.guild, Content: content, Timestamp: id.Time(),
		Author: guildhall.User{ID: 42, Username: "w", Discriminator: "0"}, Nonce: "n"}
	r.publish(guildhall.EventMessageCreate, m, id.String())
	return m
}

func (r *writerRig) history() []guildhall.Message {
	r.t.Helper()
	ms, err := r.store.History(context.Background(), r.channel, messaging.HistoryQuery{Limit: 100})
	if err != nil {
		r.t.Fatal(err)
	}
	return ms
}

// wantHistory waits until the store holds exactly want (newest first) and checks
// that no message is there twice.
func (r *writerRig) wantHistory(want []guildhall.Message) {
	r.t.Helper()
	testenv.Eventually(r.t, 20*time.Second, func() error {
		got := r.history()
		if len(got) != len(want) {
			return fmt.Errorf("store has %d messages; want %d", len(got), len(want))
		}
		seen := map[guildhall.Snowflake]bool{}
		for i, m := range got {
			if seen[m.ID] {
				return fmt.Errorf("message %s stored twice", m.ID)
			}
			seen[m.ID] = true
			w := want[len(want)-1-i]
			if m.ID != w.ID || m.Content != w.Content {
				return fmt.Errorf("history[%d] = %s %q; want %s %q", i, m.ID, m.Content, w.ID, w.Content)
			}
		}
		return nil
	})
}

func (r *writerRig) consumerInfo() *jetstream.ConsumerInfo {
	r.t.Helper()
	c, err := r.nats.JS.Consumer(context.Background(), ghnats.StreamEvents, ghnats.ConsumerWriter)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return info
}

func counter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return 0
}

// TestWriterPersistsCreateUpdateDelete: message events become store writes whose
// stream sequence orders them; other events and undecodable ones are
// acknowledged without writing, and dispatch-only fields are not stored.
func TestWriterPersistsCreateUpdateDelete(t *testing.T) {
	t.Parallel()
	r := newWriterRig(t)
	a, b := r.post("a"), r.post("b")
	edited := a
	edited.Content = "a, edited"
	r.publish(guildhall.EventMessageUpdate, edited, r.ids.Next().String())
	r.publish(guildhall.EventMessageDelete, guildhall.MessageDelete{ID: b.ID, ChannelID: r.channel, GuildID: r.guild}, r.ids.Next().String())
	r.publish(guildhall.EventChannelCreate, guildhall.Channel{ID: r.ids.Next(), GuildID: r.guild, Name: "x"}, r.ids.Next().String())
	r.publish(guildhall.EventMessageCreate, "not a message", r.ids.Next().String())
	last := r.publish(guildhall.EventMessageCreate, map[string]any{"content": "no id"}, r.ids.Next().String())
	// A retried publish of the same message is stored once by the stream.
	r.publish(guildhall.EventMessageCreate, a, a.ID.String())

	w := r.writer(256)
	r.run(w)
	r.wantHistory([]guildhall.Message{edited})
	testenv.Eventually(t, 10*time.Second, func() error {
		if info := r.consumerInfo(); info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream != last {
			return fmt.Errorf("consumer pending %d, ack pending %d, ack floor %d; want all acknowledged up to %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream, last)
		}
		if applied, _, _ := w.Progress(); applied < last {
			return fmt.Errorf("Progress() applied %d; want ≥ %d", applied, last)
		}
		return nil
	})
	if got := counter(r.metrics.WriterSkipped); got != 2 {
		t.Errorf("skipped = %v; want 2 (the undecodable events)", got)
	}
	m, err := r.store.Message(context.Background(), r.channel, a.ID)
	if err != nil || m.GuildID != 0 || m.Member != nil || m.Nonce != nil {
		t.Errorf("stored message = %+v (%v); want no guild_id, member or nonce", m, err)
	}
}

// TestWriterRetriesWhileStoreFails: while the store fails the writer holds one
// batch, acknowledges nothing and fetches nothing more; when the store is back
// every message lands once.
func TestWriterRetriesWhileStoreFails(t *testing.T) {
	t.Parallel()
	r := newWriterRig(t)
	r.store.failing.Store(true)
	var sent []guildhall.Message
	for i := range 10 {
		sent = append(sent, r.post(fmt.Sprintf("m%d", i)))
	}
	r.run(r.writer(4))
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := r.store.failed.Load(); n < 5 {
			return fmt.Errorf("%d failed writes so far", n)
		}
		return nil
	})
	info := r.consumerInfo()
	if info.NumAckPending > 4 || info.AckFloor.Stream != 0 || info.NumPending < 6 {
		t.Fatalf("while failing: ack pending %d (want ≤ 4, one batch), ack floor %d (want 0), pending %d (want ≥ 6)",
			info.NumAckPending, info.AckFloor.Stream, info.NumPending)
	}
	if got := r.history(); len(got) != 0 {
		t.Fatalf("store has %d messages while failing", len(got))
	}
	r.store.failing.Store(false)
	r.wantHistory(sent)
	if got := counter(r.metrics.WriterErrors.WithLabelValues("store")); got < 5 {
		t.Errorf("store errors metric = %v; want ≥ 5", got)
	}
}

// TestWriterWriteLandedButNotAcked: the store wrote the batch but the writer saw
// an error, so it writes it again; the message is still stored once.
func TestWriterWriteLandedButNotAcked(t *testing.T) {
	t.Parallel()
	r := newWriterRig(t)
	r.store.failAfterOne.Store(2)
	a, b := r.post("a"), r.post("b")
	r.run(r.writer(256))
	testenv.Eventually(t, 10*time.Second, func() error {
		if info := r.consumerInfo(); info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream == 0 {
			return fmt.Errorf("consumer: ack pending %d, pending %d", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if n := r.store.applies.Load(); n < 3 {
		t.Errorf("store applied %d times; want ≥ 3 (two lost acknowledgements)", n)
	}
	r.wantHistory([]guildhall.Message{a, b})
}

// TestWriterRedeliveryAfterDeadWriter: a writer that died holding messages never
// acknowledged them; they come back after AckWait to the next writer and are
// stored once. Meanwhile the new writer persists newer messages, and the read
// barrier does not pass until the old ones are in too.
func TestWriterRedeliveryAfterDeadWriter(t *testing.T) {
	t.Parallel()
	r := newWriterRig(t)
	ctx := context.Background()
	stream, err := r.nats.JS.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ghnats.Topology{}.WriterConsumerConfig()
	cfg.AckWait = time.Second
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sent []guildhall.Message
	for i := range 5 {
		sent = append(sent, r.post(fmt.Sprintf("held %d", i)))
	}
	// The dead writer: fetched, never acknowledged.
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range batch.Messages() {
		held++
	}
	if held != 5 {
		t.Fatalf("dead writer fetched %d; want 5", held)
	}

	w := r.writer(256)
	barrier, err := messaging.NewBarrier(ctx, r.nats.JS, messaging.BarrierConfig{Local: w, Timeout: 20 * time.Second, Logger: r.log})
	if err != nil {
		t.Fatal(err)
	}
	r.run(w)
	for i := range 3 {
		sent = append(sent, r.post(fmt.Sprintf("new %d", i)))
	}
	if err := barrier.Wait(ctx, r.guild); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	// The barrier passed: everything must be in the store now, not eventually.
	if got := r.history(); len(got) != len(sent) {
		t.Fatalf("after the barrier the store has %d messages; want %d", len(got), len(sent))
	}
	r.wantHistory(sent)
}

// TestBarrier: no events means nothing to wait for; with no writer running a
// guild with events answers ErrServiceBusy; a writer started later lets it pass.
func TestBarrier(t *testing.T) {
	t.Parallel()
	r := newWriterRig(t)
	ctx := context.Background()
	b, err := messaging.NewBarrier(ctx, r.nats.JS, messaging.BarrierConfig{Timeout: 200 * time.Millisecond, Metrics: r.metrics, Logger: r.log})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, r.guild); err != nil {
		t.Fatalf("Wait on a guild without events = %v; want nil", err)
	}
	r.post("x")
	if err := b.Wait(ctx, r.guild); !errors.Is(err, guildhall.ErrServiceBusy) {
		t.Fatalf("Wait with no writer = %v; want ErrServiceBusy", err)
	}
	if got := counter(r.metrics.BarrierTimeouts); got != 1 {
		t.Errorf("timeouts metric = %v; want 1", got)
	}
	r.run(r.writer(16))
	testenv.Eventually(t, 10*time.Second, func() error { return b.Wait(ctx, r.guild) })
	// A cancelled context ends the wait with its error.
	r.post("y")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Wait(cctx, r.guild); err == nil {
		// The writer may have been fast enough; that is fine too.
		t.Log("writer won the race against a cancelled context")
	}
}
