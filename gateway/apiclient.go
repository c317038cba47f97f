package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// apiClient asks the api role over NATS request-reply. The gateway never opens the
// store: this, and the event stream, is all it learns.
type apiClient struct{ nc *natsgo.Conn }

func (a apiClient) identify(ctx context.Context, token string) (guildhall.IdentifyReply, error) {
	var rep guildhall.IdentifyReply
	// The token itself never crosses the bus: its hash identifies the user to the
	// api and is no REST credential.
	err := a.call(ctx, ghnats.SubjectAPIIdentify, guildhall.IdentifyRequest{TokenHash: guildhall.TokenHash(token)}, &rep)
	return rep, err
}

// guildState is a guild's current state (the pump's guildSource).
func (a apiClient) guildState(ctx context.Context, id guildhall.Snowflake) (guildhall.GuildState, error) {
	var rep guildhall.GuildReply
	err := a.call(ctx, ghnats.SubjectAPIGuild, guildhall.GuildRequest{GuildID: id}, &rep)
	if err == nil && rep.Error != nil {
		err = rep.Error
	}
	return rep.State, err
}

// member is a user's membership of a guild, nil when none (the pump's
// guildSource).
func (a apiClient) member(ctx context.Context, guild, user guildhall.Snowflake) (*guildhall.Member, error) {
	var rep guildhall.GuildReply
	err := a.call(ctx, ghnats.SubjectAPIGuild, guildhall.GuildRequest{GuildID: guild, UserID: user}, &rep)
	if err == nil && rep.Error != nil && !errors.Is(rep.Error, guildhall.ErrUnknownGuild) {
		err = rep.Error
	}
	return rep.Member, err
}

// members pages a guild's members for op 8.
func (a apiClient) members(ctx context.Context, req guildhall.MembersRequest) (guildhall.MembersReply, error) {
	var rep guildhall.MembersReply
	if err := a.call(ctx, ghnats.SubjectAPIMembers, req, &rep); err != nil {
		return rep, err
	}
	if rep.Error != nil {
		return rep, rep.Error
	}
	return rep, nil
}

// replay asks the api for a consumer replaying req (gateways may not create
// consumers) and returns its name.
func (a apiClient) replay(ctx context.Context, req guildhall.ReplayRequest) (string, error) {
	var rep guildhall.ReplayReply
	err := a.call(ctx, ghnats.SubjectAPIReplay, req, &rep)
	if err == nil && rep.Error != nil {
		err = rep.Error
	}
	return rep.Consumer, err
}

// tick asks the api to publish a tick for node into the stream and returns its
// sequence (gateways publish nothing into the stream).
func (a apiClient) tick(ctx context.Context, node string) (uint64, error) {
	var rep guildhall.TickReply
	err := a.call(ctx, ghnats.SubjectAPITick, guildhall.TickRequest{Node: node}, &rep)
	if err == nil && rep.Error != nil {
		err = rep.Error
	}
	return rep.Seq, err
}

func (a apiClient) call(ctx context.Context, subject string, req, rep any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	m, err := a.nc.RequestWithContext(ctx, subject, b)
	if err != nil {
		return fmt.Errorf("api %s: %w", subject, err)
	}
	if err := json.Unmarshal(m.Data, rep); err != nil {
		return fmt.Errorf("api %s: reply: %w", subject, err)
	}
	return nil
}
