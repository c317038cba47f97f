package natsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	ps, err := guildParts(rep, ghnats.MaxReplyPart)
	if err != nil {
		return guildhall.GuildReply{Error: r.replyError("guild", err)}
	}
	return ps
}

// guildParts splits a guild's snapshot into parts of about max bytes of JSON
// each (see guildhall.GuildReply): the guild, its roles and the member first,
// then its channels in order, each channel encoded once. A guild larger than
// ghnats.MaxReplyParts parts is an error: no guild within Discord's limits is.
func guildParts(rep guildhall.GuildReply, max int) (parts, error) {
	var chans [][]byte
	for _, ch := range rep.State.Channels {
		b, err := json.Marshal(ch)
		if err != nil {
			return nil, err
		}
		chans = append(chans, b)
	}
	head := rep
	head.State.Channels = []guildhall.Channel{}
	var out parts
	for i, first := 0, true; first || i < len(chans); first = false {
		// The channels of this part: at least one, then as many as fit.
		n, size := 0, 0
		for i+n < len(chans) && (n == 0 || size+len(chans[i+n])+1 <= max) {
			size += len(chans[i+n]) + 1
			n++
		}
		head.Part, head.More = len(out), i+n < len(chans)
		shell, err := json.Marshal(head)
		if err != nil {
			return nil, err
		}
		// Encoded strings escape their quotes: this is the field itself.
		before, after, ok := bytes.Cut(shell, []byte(`"channels":[]`))
		if !ok {
			return nil, errors.New("guild state without its channels field")
		}
		b := make([]byte, 0, len(shell)+size)
		b = append(b, before...)
		b = append(b, `"channels":[`...)
		for k, c := range chans[i : i+n] {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, c...)
		}
		b = append(b, ']')
		b = append(b, after...)
		out = append(out, json.RawMessage(b))
		head = guildhall.GuildReply{State: guildhall.GuildState{Channels: []guildhall.Channel{}}}
		i += n
	}
	if len(out) > ghnats.MaxReplyParts {
		return nil, fmt.Errorf("guild %d: %d parts of state; at most %d", rep.State.Guild.ID, len(out), ghnats.MaxReplyParts)
	}
	return out, nil
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
