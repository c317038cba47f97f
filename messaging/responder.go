package messaging

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

// ResponderConfig configures a Responder. Every field may be left zero.
type ResponderConfig struct {
	// Queue is the NATS queue group, so that several api processes share the
	// requests. Zero value means "api".
	Queue string
	// Concurrency bounds the requests handled at once; beyond it the
	// subscription stops reading and NATS buffers (and, past its limits, drops:
	// the caller times out and retries). Zero value means 64.
	Concurrency int
	// Timeout bounds the handling of one request. Zero value means 10 seconds.
	Timeout time.Duration
	// Logger for internal failures. Zero value means slog.Default().
	Logger *slog.Logger
}

// BotRequest asks SubjectAPIBot for a new bot account.
type BotRequest struct {
	Name string `json:"name"`
}

// BotReply is the new bot's token and id, or Error.
type BotReply struct {
	Token  string              `json:"token,omitempty"`
	UserID guildhall.Snowflake `json:"user_id,omitempty"`
	Error  *guildhall.Error    `json:"error,omitempty"`
}

// Responder serves the api's NATS request-reply endpoints, so that gateways never
// open the store:
//
//	ghnats.SubjectAPIIdentify  guildhall.IdentifyRequest → IdentifyReply
//	ghnats.SubjectAPIGuild     guildhall.GuildRequest    → GuildReply
//	ghnats.SubjectAPIBot       BotRequest                → BotReply
//
// SubjectAPIBot is an admin endpoint: whoever can publish on it mints bot
// accounts. It is meant for the CLI on the same machine (`guildhall token create
// --bot NAME` against the embedded, loopback-only NATS). A deployment whose NATS
// is reachable by others must restrict gh.api.admin.> with NATS permissions.
//
// Errors travel in the reply's Error field. guildhall.Error's HTTP status is not
// serialized, so callers tell them apart by Message: ErrUnauthorized ("401:
// Unauthorized") means a bad token; ErrServiceBusy and ErrInternal mean try again.
type Responder struct {
	svc     *Service
	queue   string
	sem     chan struct{}
	timeout time.Duration
	log     *slog.Logger
	subs    []*natsgo.Subscription
}

// NewResponder subscribes svc's endpoints on nc. Stop it with Close.
func NewResponder(svc *Service, nc *natsgo.Conn, cfg ResponderConfig) (*Responder, error) {
	r := &Responder{svc: svc, queue: cfg.Queue, timeout: cfg.Timeout, log: cfg.Logger}
	if r.queue == "" {
		r.queue = "api"
	}
	n := cfg.Concurrency
	if n <= 0 {
		n = 64
	}
	r.sem = make(chan struct{}, n)
	if r.timeout <= 0 {
		r.timeout = 10 * time.Second
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	endpoints := []struct {
		subject string
		h       func(context.Context, []byte) any
	}{
		{ghnats.SubjectAPIIdentify, r.identify},
		{ghnats.SubjectAPIGuild, r.guild},
		{ghnats.SubjectAPIBot, r.bot},
	}
	for _, e := range endpoints {
		sub, err := nc.QueueSubscribe(e.subject, r.queue, r.handler(e.subject, e.h))
		if err != nil {
			r.Close()
			return nil, err
		}
		r.subs = append(r.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close drains the subscriptions: requests already received are answered.
func (r *Responder) Close() {
	for _, s := range r.subs {
		_ = s.Drain()
	}
	// Wait for the drains (no more handler calls), then for handlers in flight.
	deadline := time.Now().Add(r.timeout)
	for _, s := range r.subs {
		for s.IsValid() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for range cap(r.sem) {
		r.sem <- struct{}{}
	}
	for range cap(r.sem) {
		<-r.sem
	}
}

func (r *Responder) handler(subject string, h func(context.Context, []byte) any) natsgo.MsgHandler {
	return func(m *natsgo.Msg) {
		if m.Reply == "" {
			return
		}
		r.sem <- struct{}{}
		go func() {
			defer func() { <-r.sem }()
			ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
			defer cancel()
			b, err := json.Marshal(h(ctx, m.Data))
			if err != nil {
				r.log.Error("responder: encode reply", "subject", subject, "err", err)
				return
			}
			if err := m.Respond(b); err != nil {
				r.log.Warn("responder: reply", "subject", subject, "err", err)
			}
		}()
	}
}

// replyError turns err into what a reply carries: client errors as they are,
// anything else logged and answered as ErrInternal.
func (r *Responder) replyError(what string, err error) *guildhall.Error {
	var ge *guildhall.Error
	if errors.As(err, &ge) {
		return ge
	}
	r.log.Error("responder: "+what, "err", err)
	return guildhall.ErrInternal
}

func (r *Responder) identify(ctx context.Context, data []byte) any {
	var req guildhall.IdentifyRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.IdentifyReply{Error: guildhall.ErrInvalidJSON}
	}
	rep, err := r.svc.Identify(ctx, req.Token)
	if err != nil {
		return guildhall.IdentifyReply{Error: r.replyError("identify", err)}
	}
	return rep
}

func (r *Responder) guild(ctx context.Context, data []byte) any {
	var req guildhall.GuildRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.GuildReply{Error: guildhall.ErrInvalidJSON}
	}
	rep, err := r.svc.GuildSnapshot(ctx, req)
	if err != nil {
		return guildhall.GuildReply{Error: r.replyError("guild", err)}
	}
	return rep
}

func (r *Responder) bot(ctx context.Context, data []byte) any {
	var req BotRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return BotReply{Error: guildhall.ErrInvalidJSON}
	}
	s, err := r.svc.CreateBot(ctx, req.Name)
	if err != nil {
		return BotReply{Error: r.replyError("create bot", err)}
	}
	r.log.Info("bot account created", "name", req.Name, "user_id", s.UserID)
	return BotReply{Token: s.Token, UserID: s.UserID}
}
