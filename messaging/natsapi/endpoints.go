package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// Config configures a Responder or a MembersResponder. Every field may be left
// zero.
type Config struct {
	// Queue is the NATS queue group, so that several api processes share the
	// requests. Zero value means "api".
	Queue string
	// Concurrency bounds the requests handled at once; beyond it the
	// subscription stops reading and NATS buffers (and, past its limits, drops:
	// the caller times out and retries). Zero value means 64 for a Responder
	// and 16 for a MembersResponder (member pages are the heavy requests).
	Concurrency int
	// Timeout bounds the handling of one request. Zero value means 10 seconds.
	Timeout time.Duration
	// Logger for internal failures. Zero value means no logs.
	Logger *slog.Logger
}

// endpoints serves request-reply handlers in a queue group with bounded
// concurrency and a timeout per request; Responder and MembersResponder share it.
type endpoints struct {
	queue   string
	sem     chan struct{}
	timeout time.Duration
	log     *slog.Logger
	subs    []*natsgo.Subscription
}

func newEndpoints(cfg Config, concurrency int) *endpoints {
	e := &endpoints{queue: cfg.Queue, timeout: cfg.Timeout, log: cfg.Logger}
	if e.queue == "" {
		e.queue = "api"
	}
	if cfg.Concurrency > 0 {
		concurrency = cfg.Concurrency
	}
	e.sem = make(chan struct{}, concurrency)
	if e.timeout <= 0 {
		e.timeout = 10 * time.Second
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e
}

// serve subscribes each handler on its subject; on failure nothing stays
// subscribed.
func (e *endpoints) serve(nc *natsgo.Conn, handlers map[string]func(context.Context, []byte) any) error {
	for subject, h := range handlers {
		sub, err := nc.QueueSubscribe(subject, e.queue, e.handler(subject, h))
		if err != nil {
			e.Close()
			return err
		}
		e.subs = append(e.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		e.Close()
		return err
	}
	return nil
}

// Close drains the subscriptions: requests already received are answered.
func (e *endpoints) Close() {
	for _, s := range e.subs {
		_ = s.Drain()
	}
	// Wait for the drains (no more handler calls), then for handlers in flight.
	deadline := time.Now().Add(e.timeout)
	for _, s := range e.subs {
		for s.IsValid() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for range cap(e.sem) {
		e.sem <- struct{}{}
	}
	for range cap(e.sem) {
		<-e.sem
	}
}

func (e *endpoints) handler(subject string, h func(context.Context, []byte) any) natsgo.MsgHandler {
	return func(m *natsgo.Msg) {
		if !ghnats.ValidReply(m.Reply) {
			return // no answer wanted, or an answer aimed at a subject with a meaning
		}
		e.sem <- struct{}{}
		go func() {
			defer func() { <-e.sem }()
			ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
			defer cancel()
			rep := h(ctx, m.Data)
			ps, ok := rep.(parts)
			if !ok {
				ps = parts{rep}
			}
			for _, p := range ps {
				b, ok := p.(json.RawMessage) // encoded already
				if !ok {
					var err error
					if b, err = json.Marshal(p); err != nil {
						e.log.Error("responder: encode reply", "subject", subject, "err", err)
						return
					}
				}
				if err := m.Respond(b); err != nil {
					e.log.Warn("responder: reply", "subject", subject, "err", err)
					return
				}
			}
		}()
	}
}

// parts is a reply in several messages, sent in order on the request's inbox (see
// guildhall.GuildReply); at most ghnats.MaxReplyParts of them. A json.RawMessage
// part goes as it is.
type parts []any

// replyError turns err into what a reply carries: client errors as they are,
// anything else logged and answered as ErrInternal.
func (e *endpoints) replyError(what string, err error) *guildhall.RemoteError {
	var ge *guildhall.Error
	if errors.As(err, &ge) {
		return ge.Remote()
	}
	e.log.Error("responder: "+what, "err", err)
	return guildhall.ErrInternal.Remote()
}
