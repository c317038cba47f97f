package messaging

import (
	"context"
	"errors"

	guildhall "github.com/guildhall/guildhall"
)

// The rest of the access layer (access and channelAccess are in
// service_guild.go): bans, the members an action targets, and Discord's role
// hierarchy. Every read the service makes to decide who may do what goes through
// these functions and no others, so that they can later read a projection of the
// event stream instead of the store.

// owner reports whether the user is the guild's owner.
func (a *guildAccess) owner() bool { return a.Member.User.ID == a.Guild.OwnerID }

// highest is the user's highest role (@everyone when none).
func (a *guildAccess) highest() guildhall.Role {
	return guildhall.HighestRole(a.Guild.ID, a.Roles, a.Member.Roles)
}

// managesRole reports whether the user may manage role r under the hierarchy:
// the owner may manage any role; anyone else only roles below their highest.
func (a *guildAccess) managesRole(r guildhall.Role) bool {
	return a.owner() || a.highest().Above(r)
}

// outranks reports whether the user may act on member m (kick, ban, nick,
// timeout): nobody acts on the owner, the owner acts on anyone else, and anyone
// else only on members whose highest role is below theirs.
func (a *guildAccess) outranks(m guildhall.Member) bool {
	if m.User.ID == a.Guild.OwnerID {
		return false
	}
	return a.owner() || a.highest().Above(guildhall.HighestRole(a.Guild.ID, a.Roles, m.Roles))
}

// role returns a role of the guild: ErrUnknownRole when there is none.
func (a *guildAccess) role(id guildhall.Snowflake) (guildhall.Role, error) {
	for _, r := range a.Roles {
		if r.ID == id {
			return r, nil
		}
	}
	return guildhall.Role{}, guildhall.ErrUnknownRole
}

// basePerms is what a member's roles grant guild-wide, before a timeout.
func (a *guildAccess) basePerms(m guildhall.Member) guildhall.Permissions {
	return guildhall.BasePermissions(a.Guild, a.Roles, m.Roles, m.User.ID)
}

// member loads another member of the guild a is about, with only roles that
// exist: ErrUnknownMember when the user is not a member.
func (s *Service) member(ctx context.Context, a *guildAccess, userID guildhall.Snowflake) (guildhall.Member, error) {
	if userID == a.Member.User.ID {
		return a.Member, nil
	}
	m, err := s.store.Member(ctx, a.Guild.ID, userID)
	if errors.Is(err, ErrNotFound) {
		return guildhall.Member{}, guildhall.ErrUnknownMember
	}
	if err != nil {
		return guildhall.Member{}, internal("member", err)
	}
	if m.User.ID == 0 || m.User.Username == "" {
		u, err := s.store.User(ctx, userID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return guildhall.Member{}, internal("user", err)
		}
		if err == nil {
			m.User = u
		}
		m.User.ID = userID
	}
	m.GuildID = a.Guild.ID
	m.Roles = guildhall.ExistingRoles(a.Guild.ID, a.Roles, m.Roles)
	return m, nil
}

// channels lists the guild's channels: what channel-level permissions are
// computed from (a.channel) when an action spans several channels.
func (s *Service) channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	chs, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return nil, internal("channels", err)
	}
	return chs, nil
}

// banned reports whether the user is banned from the guild.
func (s *Service) banned(ctx context.Context, guildID, userID guildhall.Snowflake) (bool, error) {
	_, err := s.store.Ban(ctx, guildID, userID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("ban", err)
	}
	return true, nil
}

// notBanned answers ErrBanned when the user is banned from the guild: the check
// before (and after) a join.
func (s *Service) notBanned(ctx context.Context, guildID, userID guildhall.Snowflake) error {
	b, err := s.banned(ctx, guildID, userID)
	if err != nil {
		return err
	}
	if b {
		return guildhall.ErrBanned
	}
	return nil
}

// need answers ErrMissingPerms unless p has every bit of want.
func need(p, want guildhall.Permissions) error {
	if !p.Has(want) {
		return guildhall.ErrMissingPerms
	}
	return nil
}
