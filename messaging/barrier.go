package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// WriterProgress is what the Barrier needs of a Writer in its process: how far
// it has persisted the stream, whether that is to be trusted, and a channel
// closed when that changes (see Writer.Progress).
type WriterProgress interface {
	Progress() (applied uint64, trusted bool, changed <-chan struct{})
}

// BarrierConfig configures a Barrier. Every field may be left zero.
type BarrierConfig struct {
	// Local is the Writer running in this process. With it, a read waits on the
	// Writer's in-memory progress and wakes the moment the event it needs is
	// persisted. Set it only when that Writer is the only one consuming the
	// durable consumer (the embedded deployment: one process owns the store).
	// Zero value means no local Writer: poll the consumer's ack floor, which is
	// right with any number of writers in any processes.
	Local WriterProgress
	// Timeout bounds the wait; past it the read answers ErrServiceBusy (503)
	// rather than a page that may miss acknowledged messages. Zero value means
	// 3 seconds.
	Timeout time.Duration
	// PollInterval is how often the consumer's ack floor is polled. Zero value
	// means 5 ms.
	PollInterval time.Duration
	// Metrics receives wait times and timeouts. Zero value means unregistered
	// metrics.
	Metrics *Metrics
	// Logger for NATS failures. Zero value means no logs.
	Logger *slog.Logger
}

// Barrier makes history read-your-writes although the Writer persists messages
// asynchronously. Before a read of a guild's messages it finds the stream
// sequence of the guild's latest event (a direct get of the last message on
// gh.in.g.<guild>, cheap with AllowDirect) and waits until the Writer has
// persisted every guild event up to it. A post that returned was acknowledged by
// the stream before, so its sequence is at most that one, and the read sees it.
type Barrier struct {
	stream   jetstream.Stream
	consumer jetstream.Consumer
	local    WriterProgress
	timeout  time.Duration
	poll     time.Duration
	metrics  *Metrics
	log      *slog.Logger
}

// NewBarrier looks up the EVENTS stream and the writer's consumer (ghnats.Apply
// creates them).
func NewBarrier(ctx context.Context, js jetstream.JetStream, cfg BarrierConfig) (*Barrier, error) {
	stream, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("messaging: barrier: stream %s: %w", ghnats.StreamEvents, err)
	}
	cons, err := stream.Consumer(ctx, ghnats.ConsumerWriter)
	if err != nil {
		return nil, fmt.Errorf("messaging: barrier: consumer %s: %w", ghnats.ConsumerWriter, err)
	}
	b := &Barrier{
		stream: stream, consumer: cons, local: cfg.Local,
		timeout: cfg.Timeout, poll: cfg.PollInterval, metrics: cfg.Metrics, log: cfg.Logger,
	}
	if b.timeout <= 0 {
		b.timeout = 3 * time.Second
	}
	if b.poll <= 0 {
		b.poll = 5 * time.Millisecond
	}
	if b.metrics == nil {
		b.metrics = NewMetrics(nil)
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b, nil
}

// Wait returns once every event of the guild that the stream held when Wait was
// called is in the store, ErrServiceBusy when that takes longer than the timeout
// (or NATS cannot be asked), or ctx's error.
func (b *Barrier) Wait(ctx context.Context, guildID guildhall.Snowflake) error {
	return b.WaitSubject(ctx, ghnats.GuildInSubject(uint64(guildID)))
}

// WaitSubject is Wait for the events of one subject of the stream (a DM's log,
// say): it returns once every event the subject held when called is in the store.
func (b *Barrier) WaitSubject(ctx context.Context, subject string) error {
	start := time.Now()
	target, err := b.target(ctx, subject)
	if err != nil {
		return err
	}
	if target == 0 {
		return nil
	}
	deadline := time.NewTimer(b.timeout)
	defer deadline.Stop()
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		var changed <-chan struct{}
		if b.local != nil {
			applied, trusted, ch := b.local.Progress()
			if applied >= target {
				b.metrics.BarrierWait.Observe(time.Since(start).Seconds())
				return nil
			}
			if trusted {
				changed = ch
			}
		}
		var tc <-chan time.Time
		if changed == nil {
			// No trusted local progress: ask the consumer.
			floor, err := b.ackFloor(ctx)
			if err == nil && floor >= target {
				b.metrics.BarrierWait.Observe(time.Since(start).Seconds())
				return nil
			}
			if tick == nil {
				tick = time.NewTicker(b.poll)
			}
			tc = tick.C
		}
		select {
		case <-changed:
		case <-tc:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			b.metrics.BarrierTimeouts.Inc()
			b.log.Warn("read barrier: writer behind; answering 503", "subject", subject, "target", target, "waited", b.timeout)
			return guildhall.ErrServiceBusy
		}
	}
}

// target is the stream sequence of the subject's latest event, 0 when it has none.
func (b *Barrier) target(ctx context.Context, subject string) (uint64, error) {
	gctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	last, err := b.stream.GetLastMsgForSubject(gctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		b.log.Warn("read barrier: last event of subject", "subject", subject, "err", err)
		return 0, guildhall.ErrServiceBusy
	}
	return last.Sequence, nil
}

func (b *Barrier) ackFloor(ctx context.Context) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	info, err := b.consumer.Info(ictx)
	if err != nil {
		return 0, err
	}
	return info.AckFloor.Stream, nil
}
