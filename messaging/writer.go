package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MessageApplier is what the Writer needs of the store: apply one batch of
// message writes, idempotently and in any order (the contract of
// Store.ApplyMessages). Every Store is one.
type MessageApplier interface {
	ApplyMessages(ctx context.Context, writes []MessageWrite) error
}

// FileRemover is what the Writer needs of the attachment files: delete files,
// idempotently (Files is one).
type FileRemover interface {
	Remove(ctx context.Context, ids []guildhall.Snowflake) error
}

// WriterConfig configures a Writer. Store and JS are required.
type WriterConfig struct {
	// Store receives the messages.
	Store MessageApplier
	// Files are the attachment files, deleted once their message's delete is
	// stored. Zero value means NewFiles(JS).
	Files FileRemover
	// JS reaches the EVENTS stream and the durable "writer" consumer, which
	// ghnats.Apply creates.
	JS jetstream.JetStream
	// Batch is the most stream messages fetched and applied in one store call,
	// and so the most the Writer holds in memory. Zero value means 256.
	Batch int
	// MinBackoff and MaxBackoff bound the delay between retries while the store
	// or NATS fails; each retry waits about twice as long as the one before,
	// with jitter. Zero values mean 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// IdleWait is how long one fetch waits for new events before asking again,
	// and so how long a stopping Writer may wait for its last fetch. Zero value
	// means 1 s.
	IdleWait time.Duration
	// Metrics receives batch sizes, progress and errors. Zero value means
	// unregistered metrics.
	Metrics *Metrics
	// Logger for store and NATS failures. Zero value means no logs.
	Logger *slog.Logger
}

// Writer persists the stream's message events to the store. It is the only writer
// of messages: a durable pull consumer (ghnats.ConsumerWriter) on EVENTS that
// fetches up to Batch guild (and DM log) events, turns MESSAGE_CREATE,
// MESSAGE_UPDATE, MESSAGE_DELETE, the MESSAGE_REACTION_* events (and those of
// writer_community.go: bulk deletes, pins) into MessageWrites tagged with their
// stream sequence, applies them in one Store.ApplyMessages call, deletes the
// attachment files of deleted messages, and acknowledges each event only after
// that succeeded. Other guild events (channels, members) are already in the store
// (the api writes them before publishing) and are just acknowledged.
//
// Store.ApplyMessages is idempotent and order-free by sequence, so every failure
// resolves by redelivery: a crash before the ack, a lost ack, a second writer on
// the same consumer. While the store fails the Writer keeps its one batch, retries
// with bounded jittered backoff, and tells JetStream the batch is still in
// progress so it is not redelivered meanwhile; it fetches nothing more, so memory
// stays bounded however long the outage lasts (the stream keeps the rest).
//
// The Writer tracks its progress, the highest stream sequence up to which every
// event of the consumer is persisted, for the read Barrier and for metrics.
type Writer struct {
	store   MessageApplier
	files   FileRemover
	js      jetstream.JetStream
	batch   int
	minBO   time.Duration
	maxBO   time.Duration
	idle    time.Duration
	metrics *Metrics
	log     *slog.Logger

	running atomic.Bool

	mu sync.Mutex
	// applied: every event of the consumer with a stream sequence ≤ applied is in
	// the store. trusted: applied also advances with each local batch, because
	// nothing older can be outstanding (see Run). changed is closed and replaced
	// whenever applied or trusted change.
	applied uint64
	trusted bool
	changed chan struct{}
}

// NewWriter checks cfg and returns a Writer; Run starts it.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	if cfg.Store == nil || cfg.JS == nil {
		return nil, errors.New("messaging: WriterConfig needs Store and JS")
	}
	w := &Writer{
		store: cfg.Store, files: cfg.Files, js: cfg.JS, batch: cfg.Batch,
		minBO: cfg.MinBackoff, maxBO: cfg.MaxBackoff, idle: cfg.IdleWait,
		metrics: cfg.Metrics, log: cfg.Logger,
		changed: make(chan struct{}),
	}
	if w.files == nil {
		w.files = NewFiles(cfg.JS)
	}
	if w.batch <= 0 {
		w.batch = 256
	}
	if w.minBO <= 0 {
		w.minBO = 50 * time.Millisecond
	}
	if w.maxBO <= 0 {
		w.maxBO = 5 * time.Second
	}
	if w.maxBO < w.minBO {
		w.maxBO = w.minBO
	}
	if w.idle <= 0 {
		w.idle = time.Second
	}
	if w.metrics == nil {
		w.metrics = NewMetrics(nil)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

// Progress returns the highest stream sequence up to which every guild event is
// persisted as far as this Writer knows, whether it is trusted to advance that by
// itself (see Run), and a channel closed at the next change of either.
func (w *Writer) Progress() (applied uint64, trusted bool, changed <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied, w.trusted, w.changed
}

// advance raises applied to seq (never lowers it) and sets trusted.
func (w *Writer) advance(seq uint64, trusted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq <= w.applied && trusted == w.trusted {
		return
	}
	if seq > w.applied {
		w.applied = seq
	}
	w.trusted = trusted
	close(w.changed)
	w.changed = make(chan struct{})
	w.metrics.WriterApplied.Set(float64(w.applied))
}

// Run consumes until ctx is done, then returns nil. It retries every failure
// (NATS down, consumer missing, store failing) with backoff, logging as it goes.
// Only one Run may be active per Writer.
//
// Progress. At start the Writer reads the consumer's ack floor: everything at or
// below it is persisted. If nothing is pending acknowledgement, the Writer is the
// consumer's only reader from here on, so each batch it applies extends applied
// to the batch's last sequence (JetStream delivers a pull consumer's new messages
// in stream order). If events are pending (a previous writer died holding them),
// they will be redelivered later, possibly after newer ones; until the consumer's
// ack floor has passed everything this Writer applied, it reports only the ack
// floor. This reasoning assumes one Writer per consumer, as in the embedded
// deployment; with several, readers must not use a Writer's progress (see
// BarrierConfig.Local) and the ack floor alone is the truth.
func (w *Writer) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("messaging: Writer is already running")
	}
	defer w.running.Store(false)
	// Stopped, the Writer's progress no longer moves; readers fall back to the ack
	// floor, which another writer may move.
	defer func() { w.advance(0, false) }()

	// A fetch in flight when ctx ends is not abandoned, and the batch it brings is
	// still written and acknowledged (for at most shutdownGrace): a pull request
	// cancelled on the client can still be served by the server, and an event
	// delivered to nobody, like a batch handed back, waits out AckWait before
	// redelivery, during which reads of its guild answer 503.
	work, cancelWork := afterGrace(ctx, shutdownGrace)
	defer cancelWork()

	bo := w.backoff()
	var cons jetstream.Consumer
	var ackWait time.Duration
	var seen uint64 // highest sequence this Run applied
	for ctx.Err() == nil {
		if cons == nil {
			c, info, err := w.consumer(ctx)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				w.metrics.WriterErrors.WithLabelValues("consumer").Inc()
				w.log.Error("writer: consumer", "err", err)
				sleep(ctx, bo.next())
				continue
			}
			cons, ackWait = c, info.Config.AckWait
			w.advance(info.AckFloor.Stream, info.NumAckPending == 0 && seen <= info.AckFloor.Stream)
		}
		msgs, err := w.fetch(work, cons)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.metrics.WriterErrors.WithLabelValues("fetch").Inc()
			w.log.Warn("writer: fetch", "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				cons = nil
			}
			sleep(ctx, bo.next())
			continue
		}
		bo.reset()
		if len(msgs) == 0 {
			w.checkTrust(ctx, cons, seen)
			continue
		}
		last, pending, err := w.apply(work, cons, msgs, ackWait)
		if err != nil { // past the grace: hand the batch back at once
			for _, m := range msgs {
				_ = m.Nak()
			}
			break
		}
		seen = max(seen, last)
		w.metrics.WriterLag.Set(float64(pending))
		if _, trusted, _ := w.Progress(); trusted {
			w.advance(last, true)
		} else {
			w.checkTrust(ctx, cons, seen)
		}
	}
	return nil
}

// checkTrust asks the consumer for its ack floor when the Writer is not trusted:
// the floor always bounds progress, and once it has passed everything this Run
// applied, nothing older is outstanding and the Writer becomes trusted.
func (w *Writer) checkTrust(ctx context.Context, cons jetstream.Consumer, seen uint64) {
	if _, trusted, _ := w.Progress(); trusted {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		return
	}
	w.advance(info.AckFloor.Stream, info.AckFloor.Stream >= seen && info.NumAckPending == 0)
	w.metrics.WriterLag.Set(float64(info.NumPending) + float64(info.NumAckPending))
}

func (w *Writer) consumer(ctx context.Context) (jetstream.Consumer, *jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := w.js.Consumer(ctx, ghnats.StreamEvents, ghnats.ConsumerWriter)
	if err != nil {
		return nil, nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, info, nil
}

// fetch waits up to IdleWait for one event, then takes whatever else is already
// there, up to Batch in all. It returns no messages and no error when idle.
func (w *Writer) fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, w.idle)
	first, err := cons.Next(jetstream.FetchContext(fctx))
	cancel()
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, natsgo.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)) {
			return nil, nil
		}
		return nil, err
	}
	msgs := []jetstream.Msg{first}
	if w.batch > 1 {
		more, err := cons.FetchNoWait(w.batch - 1)
		if err != nil {
			return msgs, nil // handle what we have; the rest comes next time
		}
		for m := range more.Messages() {
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// apply writes the batch's message events to the store, retrying until it
// succeeds or ctx is done, then acknowledges every message of the batch. It
// returns the batch's highest stream sequence and the consumer's pending count
// after it.
func (w *Writer) apply(ctx context.Context, cons jetstream.Consumer, msgs []jetstream.Msg, ackWait time.Duration) (last, pending uint64, err error) {
	writes := make([]MessageWrite, 0, len(msgs))
	var files []guildhall.Snowflake // attachments of deleted messages
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			w.metrics.WriterSkipped.Inc()
			w.log.Error("writer: message without metadata", "subject", m.Subject(), "err", err)
			continue
		}
		last = max(last, meta.Sequence.Stream)
		pending = meta.NumPending
		mws, err := decodeWrites(m.Headers(), m.Data(), meta.Sequence.Stream)
		if err != nil {
			w.metrics.WriterSkipped.Inc()
			w.log.Error("writer: undecodable event; acknowledged without writing", "seq", meta.Sequence.Stream, "err", err)
			continue
		}
		writes = append(writes, mws...)
		if len(mws) > 0 && mws[0].Delete { // MESSAGE_DELETE, MESSAGE_DELETE_BULK
			files = append(files, ghnats.HeaderIDs(m.Headers(), ghnats.HeaderAttachments)...)
		}
	}
	if len(writes) > 0 {
		bo := w.backoff()
		stopInProgress := keepInProgress(msgs, ackWait)
		var lagAt time.Time
		for attempt := 1; ; attempt++ {
			err := w.store.ApplyMessages(ctx, writes)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				stopInProgress()
				return 0, 0, ctx.Err()
			}
			w.metrics.WriterErrors.WithLabelValues("store").Inc()
			if attempt == 1 || attempt%20 == 0 {
				w.log.Error("writer: store write failed; retrying", "writes", len(writes), "attempt", attempt, "err", err)
			}
			// The stream keeps filling while the store fails: keep the lag gauge
			// current, so that the backlog shows (and alerts fire) during an outage.
			if time.Since(lagAt) >= lagRefresh {
				if info, ok := w.consumerInfo(ctx, cons); ok {
					w.metrics.WriterLag.Set(float64(info.NumPending) + float64(info.NumAckPending))
				}
				lagAt = time.Now()
			}
			sleep(ctx, bo.next())
		}
		w.removeFiles(ctx, files)
		stopInProgress()
		// The batch's metadata counted what was pending when it was fetched,
		// before the outage: the backlog now is larger.
		if !lagAt.IsZero() {
			if info, ok := w.consumerInfo(ctx, cons); ok {
				pending = info.NumPending
			}
		}
	}
	// Acks are fire-and-forget except the batch's last, which waits for the
	// server: it processes one connection's acks in order, so once it answers
	// the whole batch is acknowledged and the consumer's ack floor (which
	// readers in other processes poll) has moved. It also keeps a shutdown from
	// closing the connection on acks still in flight.
	for i, m := range msgs {
		var err error
		if i == len(msgs)-1 {
			actx, cancel := context.WithTimeout(ctx, ackConfirmTimeout)
			err = m.DoubleAck(actx)
			cancel()
		} else {
			err = m.Ack()
		}
		if err != nil {
			// Not fatal: the event is persisted; JetStream redelivers it after
			// AckWait and the second write changes nothing.
			w.log.Warn("writer: ack", "err", err)
		}
	}
	w.metrics.WriterBatchSize.Observe(float64(len(msgs)))
	return last, pending, nil
}

// removeFiles deletes the attachment files of the batch's deleted messages,
// once their deletes are stored. It tries a few times, then logs and gives up:
// a file that cannot be deleted (NATS refusing, say) must not stop every
// message behind it. Such a file is an orphan, which the Sweeper deletes later;
// its message is deleted all the same.
func (w *Writer) removeFiles(ctx context.Context, files []guildhall.Snowflake) {
	if len(files) == 0 {
		return
	}
	bo := w.backoff()
	for attempt := 1; ; attempt++ {
		err := w.files.Remove(ctx, files)
		if err == nil {
			return
		}
		w.metrics.WriterErrors.WithLabelValues("files").Inc()
		if attempt == 3 || ctx.Err() != nil {
			w.log.Error("writer: attachment files of deleted messages not deleted", "files", len(files), "err", err)
			return
		}
		sleep(ctx, bo.next())
	}
}

// keepInProgress tells JetStream every ackWait/3 that the batch is still being
// written, for as long as the store takes (a slow write or an outage), so that it
// is not redelivered meanwhile; the returned func stops it.
func keepInProgress(msgs []jetstream.Msg, ackWait time.Duration) (stop func()) {
	if ackWait <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// shutdownGrace bounds how long a Writer whose context ended keeps writing and
// acknowledging the batch it holds; ackConfirmTimeout bounds the wait for the
// server to confirm a batch's acks.
const (
	shutdownGrace     = 5 * time.Second
	ackConfirmTimeout = 5 * time.Second
)

// afterGrace returns a context that ends d after ctx does.
func afterGrace(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d, cancel) })
	return g, func() { stop(); cancel() }
}

// lagRefresh is how often the Writer asks the consumer for its backlog while the
// store fails.
const lagRefresh = 2 * time.Second

// consumerInfo asks for the consumer's counts; ok is false if NATS did not answer.
func (w *Writer) consumerInfo(ctx context.Context, cons jetstream.Consumer) (*jetstream.ConsumerInfo, bool) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	return info, err == nil
}

// decodeWrite turns a stream message into a store write. ok is false for events
// that are not message events (nothing to write).
func decodeWrite(h natsgo.Header, data []byte, seq uint64) (MessageWrite, bool, error) {
	ev := ghnats.DecodeEvent(h, data)
	switch ev.Type {
	case guildhall.EventMessageCreate, guildhall.EventMessageUpdate:
		var m guildhall.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			return MessageWrite{}, false, fmt.Errorf("%s: %w", ev.Type, err)
		}
		if m.ID == 0 || m.ChannelID == 0 {
			return MessageWrite{}, false, fmt.Errorf("%s: message without id or channel", ev.Type)
		}
		// What history shows: no dispatch-only fields (guild_id, member, nonce).
		return MessageWrite{Seq: seq, Message: restMessage(m)}, true, nil
	case guildhall.EventMessageReactionAdd, guildhall.EventMessageReactionRemove,
		guildhall.EventMessageReactionRemoveAll, guildhall.EventMessageReactionRemoveEmoji:
		w, err := reactionWrite(ev.Type, ev.Data, seq)
		if err != nil {
			return MessageWrite{}, false, fmt.Errorf("%s: %w", ev.Type, err)
		}
		return w, true, nil
	case guildhall.EventMessageDelete:
		var d guildhall.MessageDelete
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return MessageWrite{}, false, fmt.Errorf("%s: %w", ev.Type, err)
		}
		if d.ID == 0 || d.ChannelID == 0 {
			return MessageWrite{}, false, fmt.Errorf("%s: delete without id or channel", ev.Type)
		}
		return MessageWrite{Seq: seq, Delete: true, Message: guildhall.Message{ID: d.ID, ChannelID: d.ChannelID}}, true, nil
	}
	return MessageWrite{}, false, nil
}

// backoff is a jittered exponential delay between bounds.
type backoff struct {
	min, max, cur time.Duration
}

func (w *Writer) backoff() *backoff { return &backoff{min: w.minBO, max: w.maxBO} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	// Full jitter on the upper half: between cur/2 and cur.
	half := b.cur / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
