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
	Token  string                 `json:"token,omitempty"`
	UserID guildhall.Snowflake    `json:"user_id,omitempty"`
	Error  *guildhall.RemoteError `json:"error,omitempty"`
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
// Errors travel in the reply's Error field as a guildhall.RemoteError (status and
// code), which callers match with errors.Is: ErrUnauthorized means a bad token;
// ErrServiceBusy and ErrInternal mean try again.
type Responder struct {
	*endpoints
	svc *Service
}

// NewResponder subscribes svc's endpoints on nc. Stop it with Close.
func NewResponder(svc *Service, nc *natsgo.Conn, cfg ResponderConfig) (*Responder, error) {
	r := &Responder{endpoints: newEndpoints(cfg, 64), svc: svc}
	err := r.serve(nc, map[string]func(context.Context, []byte) any{
		ghnats.SubjectAPIIdentify: r.identify,
		ghnats.SubjectAPIGuild:    r.guild,
		ghnats.SubjectAPIBot:      r.bot,
	})
	if err != nil {
		return nil, err
	}
	return r, nil
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

func newEndpoints(cfg ResponderConfig, concurrency int) *endpoints {
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
		e.log = slog.Default()
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
		if m.Reply == "" {
			return
		}
		e.sem <- struct{}{}
		go func() {
			defer func() { <-e.sem }()
			ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
			defer cancel()
			b, err := json.Marshal(h(ctx, m.Data))
			if err != nil {
				e.log.Error("responder: encode reply", "subject", subject, "err", err)
				return
			}
			if err := m.Respond(b); err != nil {
				e.log.Warn("responder: reply", "subject", subject, "err", err)
			}
		}()
	}
}

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

func (r *Responder) identify(ctx context.Context, data []byte) any {
	var req guildhall.IdentifyRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.IdentifyReply{Error: guildhall.ErrInvalidJSON.Remote()}
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
		return guildhall.GuildReply{Error: guildhall.ErrInvalidJSON.Remote()}
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
		return BotReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	s, err := r.svc.CreateBot(ctx, req.Name)
	if err != nil {
		return BotReply{Error: r.replyError("create bot", err)}
	}
	r.log.Info("bot account created", "name", req.Name, "user_id", s.UserID)
	return BotReply{Token: s.Token, UserID: s.UserID}
}
