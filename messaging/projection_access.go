package messaging

import (
	"context"
	"errors"

	guildhall "github.com/guildhall/guildhall"
)

// access loads a guild and the user's membership: ErrUnknownGuild when the guild
// does not exist, ErrMissingAccess when the user is not a member. It reads the
// projection (projection.go) when it can answer, the store when not.
func (s *Service) access(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) (*guildAccess, error) {
	v, err := s.proj.guild(ctx, guildID)
	if err == nil {
		a, err := s.accessIn(ctx, u, v)
		if !errors.Is(err, errNotProjected) {
			return a, err
		}
	} else if !errors.Is(err, errNotProjected) {
		return nil, err
	}
	return s.accessFromStore(ctx, u, guildID)
}

// accessNeeding is access for an action that needs perm in the guild as a
// whole: ErrMissingPerms when the user's base permissions lack it.
func (s *Service) accessNeeding(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, perm guildhall.Permissions) (*guildAccess, error) {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	if err := need(a.Base, perm); err != nil {
		return nil, err
	}
	return a, nil
}

// accessIn is the user's access to a guild the projection holds.
func (s *Service) accessIn(ctx context.Context, u guildhall.User, v guildView) (*guildAccess, error) {
	m, ok, err := s.proj.member(ctx, v.Guild.ID, u.ID, func(ctx context.Context) (guildhall.Member, error) {
		return s.storeMember(ctx, v.Guild.ID, u.ID)
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, guildhall.ErrMissingAccess
	}
	s.metrics.AccessReads.WithLabelValues("projection").Inc()
	return s.newAccess(u, v.Guild, v.Roles, m), nil
}

// channelAccess loads a channel the user may view, with the user's permissions in
// it: ErrUnknownChannel when it does not exist, ErrMissingAccess when the user is
// not a member of its guild or may not view it. Like access, from the projection
// when it can answer.
func (s *Service) channelAccess(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (*guildAccess, guildhall.Channel, guildhall.Permissions, error) {
	v, ch, err := s.proj.channel(ctx, channelID)
	if err == nil {
		a, err := s.accessIn(ctx, u, v)
		switch {
		case err == nil:
			return viewChannel(a, ch)
		case !errors.Is(err, errNotProjected):
			return nil, ch, 0, err
		}
	} else if !errors.Is(err, errNotProjected) {
		return nil, ch, 0, err
	}
	return s.channelAccessFromStore(ctx, u, channelID)
}
