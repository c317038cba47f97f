package messaging

import (
	"context"
	"errors"
	"slices"

	guildhall "github.com/guildhall/guildhall"
)

// Who sees what. Only members see a guild, its channels, members and events. A
// guild or channel that does not exist answers 404 (Unknown Guild, Unknown Channel);
// one that exists but the user may not see (not a member, or a channel without
// VIEW_CHANNEL) answers 403 Missing Access (50001), as Discord does. An action the
// user may see but not do answers 403 Missing Permissions (50013).
//
// The access layer (access and channelAccess, which read the projection of the
// event stream when they can, are in projection_access.go): what a user may do in
// a guild read from the store, bans, the members an action targets, and Discord's
// role hierarchy. Every read the service makes to decide who may do what goes
// through these functions and no others, so that they read the projection of the
// event stream (projection.go) when it can answer, and the store when not.

// guildAccess is what the service knows of a user in a guild. Member.Roles
// lists only roles that exist; Base is cut down while the member is timed out
// (TimedOut).
type guildAccess struct {
	Guild    guildhall.Guild
	Roles    []guildhall.Role
	Member   guildhall.Member
	Base     guildhall.Permissions
	TimedOut bool
}

// channel returns the user's permissions in ch.
func (a *guildAccess) channel(ch guildhall.Channel) guildhall.Permissions {
	p := guildhall.ChannelPermissions(a.Base, a.Guild.ID, ch, a.Member.Roles, a.Member.User.ID)
	if a.TimedOut {
		p = guildhall.TimedOutPermissions(p)
	}
	return p
}

// accessFromStore is access (projection_access.go) read from the store:
// ErrUnknownGuild when the guild does not exist, ErrMissingAccess when the user
// is not a member.
func (s *Service) accessFromStore(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) (*guildAccess, error) {
	s.metrics.AccessReads.WithLabelValues("store").Inc()
	g, err := s.store.Guild(ctx, guildID)
	if errors.Is(err, ErrNotFound) {
		return nil, guildhall.ErrUnknownGuild
	}
	if err != nil {
		return nil, s.storeErr("guild", err)
	}
	m, err := s.store.Member(ctx, guildID, u.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, guildhall.ErrMissingAccess
	}
	if err != nil {
		return nil, s.storeErr("member", err)
	}
	roles, err := s.store.Roles(ctx, guildID)
	if err != nil {
		return nil, s.storeErr("roles", err)
	}
	return s.newAccess(u, g, roles, m), nil
}

// newAccess is what user u, member m of guild g with roles, may do.
func (s *Service) newAccess(u guildhall.User, g guildhall.Guild, roles []guildhall.Role, m guildhall.Member) *guildAccess {
	if m.User.ID == 0 {
		m.User = u
	}
	m.Roles = guildhall.ExistingRoles(g.ID, roles, m.Roles)
	a := &guildAccess{Guild: g, Roles: roles, Member: m, Base: guildhall.BasePermissions(g, roles, m.Roles, u.ID)}
	if m.TimedOut(s.now()) && !a.Base.Has(guildhall.PermAdministrator) {
		a.Base, a.TimedOut = guildhall.TimedOutPermissions(a.Base), true
	}
	return a
}

// channelAccessFromStore is channelAccess (projection_access.go) read from
// the store.
func (s *Service) channelAccessFromStore(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (*guildAccess, guildhall.Channel, guildhall.Permissions, error) {
	ch, err := s.store.Channel(ctx, channelID)
	if errors.Is(err, ErrNotFound) {
		return nil, ch, 0, guildhall.ErrUnknownChannel
	}
	if err != nil {
		return nil, ch, 0, s.storeErr("channel", err)
	}
	a, err := s.accessFromStore(ctx, u, ch.GuildID)
	if errors.Is(err, guildhall.ErrUnknownGuild) {
		return nil, ch, 0, guildhall.ErrUnknownChannel
	}
	if err != nil {
		return nil, ch, 0, err
	}
	return viewChannel(a, ch)
}

// viewChannel is the user's access to ch: ErrMissingAccess without
// VIEW_CHANNEL.
func viewChannel(a *guildAccess, ch guildhall.Channel) (*guildAccess, guildhall.Channel, guildhall.Permissions, error) {
	p := a.channel(ch)
	if !p.Has(guildhall.PermViewChannel) {
		return nil, ch, 0, guildhall.ErrMissingAccess
	}
	return a, ch, p, nil
}

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
	read := func(ctx context.Context) (guildhall.Member, error) { return s.storeMember(ctx, a.Guild.ID, userID) }
	m, ok, err := s.proj.member(ctx, a.Guild.ID, userID, read)
	if errors.Is(err, errNotProjected) {
		m, err = read(ctx)
		ok = err == nil
		if errors.Is(err, ErrNotFound) {
			err = nil
		} else if err != nil {
			err = s.storeErr("member", err)
		}
	}
	if err != nil {
		return guildhall.Member{}, err
	}
	if !ok {
		return guildhall.Member{}, guildhall.ErrUnknownMember
	}
	m.GuildID = a.Guild.ID
	m.Roles = guildhall.ExistingRoles(a.Guild.ID, a.Roles, m.Roles)
	return m, nil
}

// storeMember reads a membership from the store with its User filled in:
// ErrNotFound when the user is not a member.
func (s *Service) storeMember(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, error) {
	m, err := s.store.Member(ctx, guildID, userID)
	if err != nil {
		return guildhall.Member{}, err
	}
	if m.User.ID == 0 || m.User.Username == "" {
		u, err := s.store.User(ctx, userID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return guildhall.Member{}, err
		}
		if err == nil {
			m.User = u
		}
		m.User.ID = userID
	}
	return m, nil
}

// memberOf reports whether user is a member of guild, and as what (a mention
// resolves so): from the projection when it holds the guild, else the store.
func (s *Service) memberOf(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, bool, error) {
	read := func(ctx context.Context) (guildhall.Member, error) { return s.storeMember(ctx, guildID, userID) }
	m, ok, err := s.proj.member(ctx, guildID, userID, read)
	if !errors.Is(err, errNotProjected) {
		return m, ok, err
	}
	m, err = read(ctx)
	if errors.Is(err, ErrNotFound) {
		return guildhall.Member{}, false, nil
	}
	if err != nil {
		return guildhall.Member{}, false, s.storeErr("member", err)
	}
	return m, true, nil
}

// channels lists the guild's channels: what channel-level permissions are
// computed from (a.channel) when an action spans several channels. The
// caller may change the slice.
func (s *Service) channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	v, err := s.proj.guild(ctx, guildID)
	if err == nil {
		return slices.Clone(v.Channels), nil
	}
	if !errors.Is(err, errNotProjected) {
		return nil, err
	}
	chs, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return nil, s.storeErr("channels", err)
	}
	return chs, nil
}

// banned reports whether the user is banned from the guild.
func (s *Service) banned(ctx context.Context, guildID, userID guildhall.Snowflake) (bool, error) {
	read := func(ctx context.Context) (bool, error) {
		_, err := s.store.Ban(ctx, guildID, userID)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	b, err := s.proj.banned(ctx, guildID, userID, read)
	if errors.Is(err, errNotProjected) {
		b, err = read(ctx)
	}
	if err != nil {
		return false, s.storeErr("ban", err)
	}
	return b, nil
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
