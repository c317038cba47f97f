package messaging

import (
	"context"
	"errors"

	guildhall "github.com/guildhall/guildhall"
)

// What gateways ask the service for, over NATS (package natsapi answers them):
// a session's user and memberships when it identifies (Identify), and a guild's
// state and one user's membership of it (GuildSnapshot, built on GuildState,
// which GUILD_CREATE for REST callers shares).

// GuildState is a guild's snapshot for gateways and GUILD_CREATE: the guild (with
// MemberCount), all its channels and roles. It does not check who asks.
func (s *Service) GuildState(ctx context.Context, guildID guildhall.Snowflake) (guildhall.GuildState, error) {
	g, err := s.store.Guild(ctx, guildID)
	if errors.Is(err, ErrNotFound) {
		return guildhall.GuildState{}, guildhall.ErrUnknownGuild
	}
	if err != nil {
		return guildhall.GuildState{}, internal("guild", err)
	}
	chs, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return guildhall.GuildState{}, internal("channels", err)
	}
	roles, err := s.store.Roles(ctx, guildID)
	if err != nil {
		return guildhall.GuildState{}, internal("roles", err)
	}
	n, err := s.store.MemberCount(ctx, guildID)
	if err != nil {
		return guildhall.GuildState{}, internal("member count", err)
	}
	g.MemberCount = n
	if chs == nil {
		chs = []guildhall.Channel{}
	}
	if err := s.fillLastMessages(ctx, chs); err != nil {
		return guildhall.GuildState{}, err
	}
	if roles == nil {
		roles = []guildhall.Role{}
	}
	return guildhall.GuildState{Guild: g, Channels: chs, Roles: roles}, nil
}

// Identify is what a gateway needs when a session identifies: the token's user
// and its membership of each of its guilds (no guild's state: the gateway asks
// for those it lacks, one at a time). It takes the token's guildhall.TokenHash,
// as gateways send it (never the token itself).
func (s *Service) Identify(ctx context.Context, tokenHash string) (guildhall.IdentifyReply, error) {
	if !guildhall.ValidTokenHash(tokenHash) {
		return guildhall.IdentifyReply{}, guildhall.ErrUnauthorized
	}
	u, err := s.authenticateHash(ctx, tokenHash)
	if err != nil {
		return guildhall.IdentifyReply{}, err
	}
	ids, err := s.store.UserGuilds(ctx, u.ID)
	if err != nil {
		return guildhall.IdentifyReply{}, internal("user guilds", err)
	}
	r := guildhall.IdentifyReply{User: u, Members: make([]guildhall.Member, 0, len(ids))}
	for _, id := range ids {
		m, err := s.store.Member(ctx, id, u.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return guildhall.IdentifyReply{}, internal("member", err)
		}
		if m.User.ID == 0 {
			m.User = u
		}
		m.GuildID = id
		r.Members = append(r.Members, m)
	}
	return r, s.identifyConversations(ctx, u, &r)
}

// GuildSnapshot answers a gateway's GuildRequest: the guild's state (not with
// req.MemberOnly), and the membership of req.UserID when it is set and the user
// is a member.
func (s *Service) GuildSnapshot(ctx context.Context, req guildhall.GuildRequest) (guildhall.GuildReply, error) {
	var r guildhall.GuildReply
	if req.MemberOnly {
		if _, err := s.store.Guild(ctx, req.GuildID); errors.Is(err, ErrNotFound) {
			return guildhall.GuildReply{}, guildhall.ErrUnknownGuild
		} else if err != nil {
			return guildhall.GuildReply{}, internal("guild", err)
		}
	} else {
		st, err := s.GuildState(ctx, req.GuildID)
		if err != nil {
			return guildhall.GuildReply{}, err
		}
		r.State = st
	}
	if req.UserID != 0 {
		m, err := s.store.Member(ctx, req.GuildID, req.UserID)
		switch {
		case err == nil:
			if m.User.ID == 0 {
				if m.User, err = s.store.User(ctx, req.UserID); err != nil {
					return guildhall.GuildReply{}, internal("user", err)
				}
			}
			r.Member = &m
		case !errors.Is(err, ErrNotFound):
			return guildhall.GuildReply{}, internal("member", err)
		}
	}
	return r, nil
}
