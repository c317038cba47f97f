package natsapi

import (
	"context"
	"encoding/json"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BotRequest asks ghnats.SubjectAPIBot for a new bot account.
type BotRequest struct {
	Name string `json:"name"`
	// Owner is the username of the user who owns the bot (lists it, revokes and
	// resets its tokens); empty: the operators alone.
	Owner string `json:"owner,omitempty"`
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
//	ghnats.SubjectAPIRevoke    RevokeRequest             → RevokeReply
//	ghnats.SubjectAPIReplay    guildhall.ReplayRequest   → ReplayReply
//	ghnats.SubjectAPITick      guildhall.TickRequest     → TickReply
//
// SubjectAPIBot is an admin endpoint: whoever can publish on it mints bot
// accounts. Only the operator identity may (`guildhall token create --bot NAME`);
// see package nats, Permissions.
//
// Errors travel in the reply's Error field as a guildhall.RemoteError (status and
// code), which callers match with errors.Is: ErrUnauthorized means a bad token;
// ErrServiceBusy and ErrInternal mean try again.
type Responder struct {
	*endpoints
	svc *messaging.Service
	js  jetstream.JetStream // replay consumers and ticks
}

// NewResponder subscribes svc's endpoints on nc. Stop it with Close.
func NewResponder(svc *messaging.Service, nc *natsgo.Conn, cfg Config) (*Responder, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	r := &Responder{endpoints: newEndpoints(cfg, 64), svc: svc, js: js}
	err = r.serve(nc, map[string]func(context.Context, []byte) any{
		ghnats.SubjectAPIIdentify: r.identify,
		ghnats.SubjectAPIGuild:    r.guild,
		ghnats.SubjectAPIBot:      r.bot,
		ghnats.SubjectAPIRevoke:   r.revoke,
		ghnats.SubjectAPIReplay:   r.replay,
		ghnats.SubjectAPITick:     r.tick,
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Responder) identify(ctx context.Context, data []byte) any {
	var req guildhall.IdentifyRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.IdentifyReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	rep, err := r.svc.Identify(ctx, req.TokenHash)
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
	s, err := r.svc.CreateOwnedBot(ctx, req.Name, req.Owner)
	if err != nil {
		return BotReply{Error: r.replyError("create bot", err)}
	}
	r.log.Info("bot account created", "name", req.Name, "user_id", s.UserID, "owner", req.Owner)
	return BotReply{Token: s.Token, UserID: s.UserID}
}
