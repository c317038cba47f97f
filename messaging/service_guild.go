package messaging

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Who sees what. Only members see a guild, its channels, members and events. A
// guild or channel that does not exist answers 404 (Unknown Guild, Unknown Channel);
// one that exists but the user may not see (not a member, or a channel without
// VIEW_CHANNEL) answers 403 Missing Access (50001), as Discord does. An action the
// user may see but not do answers 403 Missing Permissions (50013).
//
// Metadata changes (guilds, channels, members, invites) are written to the store
// first and then published as guild events. If the process dies between the two,
// the change is durable but the gateways miss its event. That heals itself: a
// gateway that meets an event naming a channel it does not know re-fetches the
// guild's snapshot (SubjectAPIGuild), and every session that identifies or
// resumes later gets a fresh snapshot. The other order (publish first) could show
// gateways a channel that never becomes durable, which would not heal.

// guildAccess is what the service knows of a user in a guild. Member.Roles
// lists only roles that exist; Base is cut down while the member is timed out
// (TimedOut). More of the access layer (bans, other members, the role
// hierarchy) is in service_access.go.
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

// access loads a guild and the user's membership: ErrUnknownGuild when the guild
// does not exist, ErrMissingAccess when the user is not a member.
func (s *Service) access(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) (*guildAccess, error) {
	g, err := s.store.Guild(ctx, guildID)
	if errors.Is(err, ErrNotFound) {
		return nil, guildhall.ErrUnknownGuild
	}
	if err != nil {
		return nil, internal("guild", err)
	}
	m, err := s.store.Member(ctx, guildID, u.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, guildhall.ErrMissingAccess
	}
	if err != nil {
		return nil, internal("member", err)
	}
	roles, err := s.store.Roles(ctx, guildID)
	if err != nil {
		return nil, internal("roles", err)
	}
	if m.User.ID == 0 {
		m.User = u
	}
	m.Roles = guildhall.ExistingRoles(g.ID, roles, m.Roles)
	a := &guildAccess{Guild: g, Roles: roles, Member: m, Base: guildhall.BasePermissions(g, roles, m.Roles, u.ID)}
	if m.TimedOut(s.now()) && !a.Base.Has(guildhall.PermAdministrator) {
		a.Base, a.TimedOut = guildhall.TimedOutPermissions(a.Base), true
	}
	return a, nil
}

// channelAccess loads a channel the user may view, with the user's permissions in
// it: ErrUnknownChannel when it does not exist, ErrMissingAccess when the user is
// not a member of its guild or may not view it.
func (s *Service) channelAccess(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (*guildAccess, guildhall.Channel, guildhall.Permissions, error) {
	ch, err := s.store.Channel(ctx, channelID)
	if errors.Is(err, ErrNotFound) {
		return nil, ch, 0, guildhall.ErrUnknownChannel
	}
	if err != nil {
		return nil, ch, 0, internal("channel", err)
	}
	a, err := s.access(ctx, u, ch.GuildID)
	if errors.Is(err, guildhall.ErrUnknownGuild) {
		return nil, ch, 0, guildhall.ErrUnknownChannel
	}
	if err != nil {
		return nil, ch, 0, err
	}
	p := a.channel(ch)
	if !p.Has(guildhall.PermViewChannel) {
		return nil, ch, 0, guildhall.ErrMissingAccess
	}
	return a, ch, p, nil
}

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

// Guild limits (Discord's).
const (
	MinGuildName   = 2
	MaxGuildName   = 100
	MaxChannelName = 100
	MaxTopic       = 1024
	MaxOverwrites  = 100
	MaxInviteAge   = 7 * 24 * 3600
	MaxInviteUses  = 100
	// MaxGuildsPerUser and MaxChannelsPerGuild are Discord's limits. They also
	// bound what one IDENTIFY reply carries to a gateway.
	MaxGuildsPerUser    = 100
	MaxChannelsPerGuild = 500
)

var (
	errMaxGuilds   = &guildhall.Error{Status: 400, Code: 30001, Message: "Maximum number of guilds reached (100)"}
	errMaxChannels = &guildhall.Error{Status: 400, Code: 30013, Message: "Maximum number of guild channels reached (500)"}
)

// checkGuildCount refuses a user who is in MaxGuildsPerUser guilds already.
func (s *Service) checkGuildCount(ctx context.Context, u guildhall.User) error {
	ids, err := s.store.UserGuilds(ctx, u.ID)
	if err != nil {
		return internal("user guilds", err)
	}
	if len(ids) >= MaxGuildsPerUser {
		return errMaxGuilds
	}
	return nil
}

// CreateGuild creates a guild owned by u with the @everyone role (id = guild id,
// DefaultEveryonePermissions), a "general" text channel and u as its first member,
// and tells u's sessions with a GUILD_CREATE user event.
func (s *Service) CreateGuild(ctx context.Context, u guildhall.User, name string) (guildhall.GuildState, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n < MinGuildName || n > MaxGuildName {
		return guildhall.GuildState{}, guildhall.FieldError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.")
	}
	unlock, err := s.capLock(ctx, "guilds."+u.ID.String())
	if err != nil {
		return guildhall.GuildState{}, err
	}
	defer unlock()
	if err := s.checkGuildCount(ctx, u); err != nil {
		return guildhall.GuildState{}, err
	}
	id := s.ids.Next()
	g := guildhall.Guild{ID: id, Name: name, OwnerID: u.ID}
	everyone := guildhall.Role{ID: id, Name: "@everyone", Permissions: guildhall.DefaultEveryonePermissions}
	general := guildhall.Channel{
		ID: s.ids.Next(), Type: guildhall.ChannelTypeGuildText, GuildID: id, Name: "general",
		PermissionOverwrites: []guildhall.PermissionOverwrite{},
	}
	owner := guildhall.Member{GuildID: id, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: s.now().UTC()}
	// The membership goes last: until it exists nobody sees the guild, so a crash
	// part-way leaves an invisible guild, never a visible half-made one.
	if err := s.store.PutGuild(ctx, g); err != nil {
		return guildhall.GuildState{}, internal("put guild", err)
	}
	if err := s.store.PutRole(ctx, id, everyone); err != nil {
		return guildhall.GuildState{}, internal("put role", err)
	}
	if err := s.store.PutChannel(ctx, general); err != nil {
		return guildhall.GuildState{}, internal("put channel", err)
	}
	if err := s.store.PutMember(ctx, owner); err != nil {
		return guildhall.GuildState{}, internal("put member", err)
	}
	unlock()
	g.MemberCount = 1
	st := guildhall.GuildState{Guild: g, Channels: []guildhall.Channel{general}, Roles: []guildhall.Role{everyone}}
	if err := s.publishGuildCreate(ctx, &st, owner); err != nil {
		return guildhall.GuildState{}, err
	}
	return st, nil
}

// publishGuildCreate sends GUILD_CREATE to the sessions of member m alone (a user
// event on gh.in.u.<user>).
func (s *Service) publishGuildCreate(ctx context.Context, st *guildhall.GuildState, m guildhall.Member) error {
	ev, err := guildCreateEvent(st, m)
	if err != nil {
		return err
	}
	_, err = s.publish(ctx, ev, s.ids.Next().String())
	return err
}

func guildCreateEvent(st *guildhall.GuildState, m guildhall.Member) (guildhall.Event, error) {
	self := m
	self.GuildID = 0
	data, err := json.Marshal(st.CreatePayload(self))
	if err != nil {
		return guildhall.Event{}, internal("encode guild create", err)
	}
	return guildhall.Event{Type: guildhall.EventGuildCreate, UserID: m.User.ID, Data: data}, nil
}

// Guild returns a guild the user is a member of, with MemberCount, its channels
// (all of them) and roles.
func (s *Service) Guild(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) (guildhall.GuildState, error) {
	if _, err := s.access(ctx, u, guildID); err != nil {
		return guildhall.GuildState{}, err
	}
	return s.GuildState(ctx, guildID)
}

// GuildChannels lists the channels of a guild that the user may view.
func (s *Service) GuildChannels(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	chs, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return nil, internal("channels", err)
	}
	out := make([]guildhall.Channel, 0, len(chs))
	for _, c := range chs {
		if a.channel(c).Has(guildhall.PermViewChannel) {
			out = append(out, c)
		}
	}
	return out, s.fillLastMessages(ctx, out)
}

// Channel returns a channel the user may view.
func (s *Service) Channel(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (guildhall.Channel, error) {
	_, ch, _, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return ch, err
	}
	chs := []guildhall.Channel{ch}
	if err := s.barrier.Wait(ctx, ch.GuildID); err != nil { // last_message_id reads its writes
		return ch, err
	}
	err = s.fillLastMessages(ctx, chs)
	return chs[0], err
}

// NewChannel is what creating a channel takes. Nil pointers mean "not given".
type NewChannel struct {
	Name                 string
	Type                 int
	Topic                *string
	Position             *int
	ParentID             *guildhall.Snowflake
	PermissionOverwrites []guildhall.PermissionOverwrite
	NSFW                 bool
	RateLimitPerUser     int
	// Reason is the audit log's (X-Audit-Log-Reason).
	Reason string
}

// CreateChannel adds a text channel or a category to a guild (MANAGE_CHANNELS
// needed: the owner and administrators) and publishes CHANNEL_CREATE.
func (s *Service) CreateChannel(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, nc NewChannel) (guildhall.Channel, error) {
	if err := checkReason(nc.Reason); err != nil {
		return guildhall.Channel{}, err
	}
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return guildhall.Channel{}, err
	}
	if !a.Base.Has(guildhall.PermManageChannels) {
		return guildhall.Channel{}, guildhall.ErrMissingPerms
	}
	if err := checkOverwriteChange(a.Base, nil, nc.PermissionOverwrites); err != nil {
		return guildhall.Channel{}, err
	}
	unlock, err := s.capLock(ctx, "channels."+guildID.String())
	if err != nil {
		return guildhall.Channel{}, err
	}
	defer unlock()
	existing, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return guildhall.Channel{}, internal("channels", err)
	}
	if len(existing) >= MaxChannelsPerGuild {
		return guildhall.Channel{}, errMaxChannels
	}
	if err := s.validateChannel(a, existing, &nc); err != nil {
		return guildhall.Channel{}, err
	}
	ch := guildhall.Channel{
		ID:                   s.ids.Next(),
		Type:                 nc.Type,
		GuildID:              guildID,
		Name:                 nc.Name,
		Topic:                nc.Topic,
		ParentID:             nc.ParentID,
		PermissionOverwrites: nc.PermissionOverwrites,
		NSFW:                 nc.NSFW,
		RateLimitPerUser:     nc.RateLimitPerUser,
		Position:             len(existing),
	}
	if nc.Position != nil {
		ch.Position = *nc.Position
	}
	if ch.PermissionOverwrites == nil {
		ch.PermissionOverwrites = []guildhall.PermissionOverwrite{}
	}
	if err := s.store.PutChannel(ctx, ch); err != nil {
		return guildhall.Channel{}, internal("put channel", err)
	}
	unlock()
	data, err := json.Marshal(ch)
	if err != nil {
		return guildhall.Channel{}, internal("encode channel", err)
	}
	ev := guildhall.Event{Type: guildhall.EventChannelCreate, GuildID: guildID, ChannelID: ch.ID, Data: data}
	if _, err := s.publish(ctx, ev, s.ids.Next().String()); err != nil {
		return guildhall.Channel{}, err
	}
	s.audit(ctx, a, nc.Reason, auditEntry{action: guildhall.AuditChannelCreate, target: ch.ID.String(), changes: channelChanges(guildhall.Channel{}, ch)})
	return ch, nil
}

func (s *Service) validateChannel(a *guildAccess, existing []guildhall.Channel, nc *NewChannel) error {
	nc.Name = strings.TrimSpace(nc.Name)
	if n := utf8.RuneCountInString(nc.Name); n < 1 || n > MaxChannelName {
		return guildhall.FieldError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
	}
	if nc.Type != guildhall.ChannelTypeGuildText && nc.Type != guildhall.ChannelTypeGuildCategory {
		return guildhall.FieldError("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 4}.")
	}
	if nc.Topic != nil && utf8.RuneCountInString(*nc.Topic) > MaxTopic {
		return guildhall.FieldError("topic", "BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length.")
	}
	if nc.Position != nil && (*nc.Position < 0 || *nc.Position > 10000) {
		return guildhall.FieldError("position", "NUMBER_TYPE_MAX", "Must be between 0 and 10000.")
	}
	if nc.RateLimitPerUser < 0 || nc.RateLimitPerUser > 21600 {
		return guildhall.FieldError("rate_limit_per_user", "NUMBER_TYPE_MAX", "Must be between 0 and 21600.")
	}
	if nc.ParentID != nil && *nc.ParentID != 0 {
		if nc.Type == guildhall.ChannelTypeGuildCategory {
			return guildhall.FieldError("parent_id", "CHANNEL_PARENT_INVALID_TYPE", "A category cannot have a parent.")
		}
		found := false
		for _, c := range existing {
			if c.ID == *nc.ParentID && c.Type == guildhall.ChannelTypeGuildCategory {
				found = true
			}
		}
		if !found {
			return guildhall.FieldError("parent_id", "CHANNEL_PARENT_INVALID", "Not a category of this guild.")
		}
	} else {
		nc.ParentID = nil
	}
	if len(nc.PermissionOverwrites) > MaxOverwrites {
		return guildhall.FieldError("permission_overwrites", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
	}
	seen := make(map[guildhall.Snowflake]bool, len(nc.PermissionOverwrites))
	for _, o := range nc.PermissionOverwrites {
		switch o.Type {
		case guildhall.OverwriteRole:
			ok := false
			for _, r := range a.Roles {
				if r.ID == o.ID {
					ok = true
				}
			}
			if !ok {
				return guildhall.FieldError("permission_overwrites", "UNKNOWN_ROLE", "Unknown role "+o.ID.String()+".")
			}
		case guildhall.OverwriteMember:
			if o.ID == 0 {
				return guildhall.FieldError("permission_overwrites", "UNKNOWN_USER", "Unknown member.")
			}
		default:
			return guildhall.FieldError("permission_overwrites", "BASE_TYPE_CHOICES", "Overwrite type must be one of {0, 1}.")
		}
		if seen[o.ID] {
			return guildhall.FieldError("permission_overwrites", "DUPLICATE", "Duplicate overwrite for "+o.ID.String()+".")
		}
		seen[o.ID] = true
		if (o.Allow|o.Deny)&^guildhall.PermAll != 0 {
			return guildhall.FieldError("permission_overwrites", "PERMISSIONS_INVALID", "Unknown permission bits.")
		}
	}
	return nil
}

// NewInvite is what creating an invite takes. MaxAge nil means Discord's default,
// 86400 seconds; 0 means never expires.
type NewInvite struct {
	MaxAge  *int
	MaxUses int
	// Reason is the audit log's (X-Audit-Log-Reason).
	Reason string
}

// InviteInfo is an invite with what its Discord JSON shape shows: the guild, the
// channel and the inviter.
type InviteInfo struct {
	Invite  guildhall.Invite
	Guild   guildhall.Guild
	Channel guildhall.Channel
	Inviter guildhall.User
}

// CreateInvite makes an invite to a channel the user may view and invite to
// (CREATE_INSTANT_INVITE).
func (s *Service) CreateInvite(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, ni NewInvite) (InviteInfo, error) {
	if err := checkReason(ni.Reason); err != nil {
		return InviteInfo{}, err
	}
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return InviteInfo{}, err
	}
	if !p.Has(guildhall.PermCreateInstantInvite) {
		return InviteInfo{}, guildhall.ErrMissingPerms
	}
	age := 86400
	if ni.MaxAge != nil {
		age = *ni.MaxAge
	}
	if age < 0 || age > MaxInviteAge {
		return InviteInfo{}, guildhall.FieldError("max_age", "NUMBER_TYPE_MAX", "Must be between 0 and 604800.")
	}
	if ni.MaxUses < 0 || ni.MaxUses > MaxInviteUses {
		return InviteInfo{}, guildhall.FieldError("max_uses", "NUMBER_TYPE_MAX", "Must be between 0 and 100.")
	}
	now := s.now().UTC()
	inv := guildhall.Invite{
		GuildID: a.Guild.ID, ChannelID: ch.ID, InviterID: u.ID,
		MaxUses: ni.MaxUses, MaxAge: age, CreatedAt: now,
	}
	if age > 0 {
		exp := now.Add(time.Duration(age) * time.Second)
		inv.ExpiresAt = &exp
	}
	for range 5 {
		inv.Code = inviteCode()
		_, err := s.store.Invite(ctx, inv.Code)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return InviteInfo{}, internal("invite", err)
		}
		inv.Code = ""
	}
	if inv.Code == "" {
		return InviteInfo{}, internal("invite", errors.New("no free invite code after 5 tries"))
	}
	unlock, err := s.capLock(ctx, "invites."+a.Guild.ID.String())
	if err != nil {
		return InviteInfo{}, err
	}
	defer unlock()
	if err := s.checkInviteCaps(ctx, a.Guild.ID, ch.ID); err != nil {
		return InviteInfo{}, err
	}
	if err := s.store.PutInvite(ctx, inv); err != nil {
		return InviteInfo{}, internal("put invite", err)
	}
	unlock()
	if err := s.inviteCreated(ctx, a, inv, u, ni.Reason); err != nil {
		return InviteInfo{}, err
	}
	a.Guild.MemberCount = 0
	return InviteInfo{Invite: inv, Guild: a.Guild, Channel: ch, Inviter: u}, nil
}

const inviteAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// inviteCode is 10 random characters of [a-zA-Z0-9] (59 bits), like Discord's.
func inviteCode() string {
	var b [10]byte
	out := make([]byte, 0, len(b))
	for len(out) < len(b) {
		_, _ = rand.Read(b[:])
		for _, c := range b {
			if c < 248 && len(out) < len(b) { // 248 = 4*62: no modulo bias
				out = append(out, inviteAlphabet[int(c)%62])
			}
		}
	}
	return string(out)
}

// AcceptInvite makes u a member of the invite's guild. An unknown, expired or used
// up invite answers Unknown Invite. Accepting again while a member changes nothing
// (no use counted, no event). A new member is announced with GUILD_MEMBER_ADD to the
// guild and GUILD_CREATE to the joiner's own sessions. joined reports whether u
// became a member now.
//
// The store counts the use together with the membership (Store.JoinGuild), so
// joins by one invite run concurrently here; api processes sharing a CQL store may
// together let an invite be used a few times past max_uses.
func (s *Service) AcceptInvite(ctx context.Context, u guildhall.User, code string) (info InviteInfo, joined bool, err error) {
	if code == "" || len(code) > 32 {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	inv, err := s.store.Invite(ctx, code)
	if errors.Is(err, ErrNotFound) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, false, internal("invite", err)
	}
	st, err := s.GuildState(ctx, inv.GuildID)
	if errors.Is(err, guildhall.ErrUnknownGuild) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, false, err
	}
	ch, ok := st.Channel(inv.ChannelID)
	if !ok {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	inviter, err := s.store.User(ctx, inv.InviterID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return InviteInfo{}, false, internal("inviter", err)
	}
	info = InviteInfo{Invite: inv, Guild: st.Guild, Channel: ch, Inviter: inviter}
	info.Guild.MemberCount = 0
	_, err = s.store.Member(ctx, inv.GuildID, u.ID)
	if err == nil {
		return info, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return InviteInfo{}, false, internal("member", err)
	}
	if inv.Expired(s.now()) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err := s.notBanned(ctx, inv.GuildID, u.ID); err != nil {
		return InviteInfo{}, false, err
	}
	unlock, err := s.capLock(ctx, "guilds."+u.ID.String())
	if err != nil {
		return InviteInfo{}, false, err
	}
	defer unlock()
	if err := s.checkGuildCount(ctx, u); err != nil {
		return InviteInfo{}, false, err
	}
	m := guildhall.Member{GuildID: inv.GuildID, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: s.now().UTC()}
	inv, joined, err = s.store.JoinGuild(ctx, m, code)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInviteUsedUp) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, false, internal("join guild", err)
	}
	unlock()
	if !joined { // a concurrent accept by the same user won
		return info, false, nil
	}
	// A ban that raced the join: whichever of the two wrote last, one of them
	// sees the other (the ban removes the member, or this read finds the ban).
	if err := s.notBanned(ctx, inv.GuildID, u.ID); err != nil {
		if rerr := s.store.RemoveMember(ctx, inv.GuildID, u.ID); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			return InviteInfo{}, false, internal("remove banned joiner", rerr)
		}
		return InviteInfo{}, false, err
	}
	info.Invite = inv
	// Other joins ran concurrently since GuildState: count them too.
	st.Guild.MemberCount++
	if n, err := s.store.MemberCount(ctx, inv.GuildID); err == nil {
		st.Guild.MemberCount = max(n, st.Guild.MemberCount)
	}

	data, err := json.Marshal(m)
	if err != nil {
		return InviteInfo{}, false, internal("encode member", err)
	}
	add := guildhall.Event{Type: guildhall.EventGuildMemberAdd, GuildID: inv.GuildID, UserID: u.ID, Data: data}
	create, err := guildCreateEvent(&st, m)
	if err != nil {
		return InviteInfo{}, false, err
	}
	// In this order: the joiner's sessions enter the room after the add, so they
	// do not receive their own GUILD_MEMBER_ADD.
	if err := s.publishInOrder(ctx, add, create); err != nil {
		return InviteInfo{}, false, err
	}
	return info, true, nil
}

// Members pages a guild's members by user id, after the given id, at most limit
// (1..1000) of them. Only members may list.
func (s *Service) Members(ctx context.Context, u guildhall.User, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error) {
	if limit < 1 || limit > 1000 {
		return nil, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 1000.")
	}
	if _, err := s.access(ctx, u, guildID); err != nil {
		return nil, err
	}
	ms, err := s.store.Members(ctx, guildID, after, limit)
	if err != nil {
		return nil, internal("members", err)
	}
	if ms == nil {
		ms = []guildhall.Member{}
	}
	return ms, nil
}

// UserGuild is one entry of a user's guild list: the guild, whether the user owns
// it, and the user's guild-wide permissions.
type UserGuild struct {
	Guild       guildhall.Guild
	Owner       bool
	Permissions guildhall.Permissions
}

// UserGuilds lists the guilds the user is a member of, by id ascending.
func (s *Service) UserGuilds(ctx context.Context, u guildhall.User) ([]UserGuild, error) {
	ids, err := s.store.UserGuilds(ctx, u.ID)
	if err != nil {
		return nil, internal("user guilds", err)
	}
	out := make([]UserGuild, 0, len(ids))
	for _, id := range ids {
		a, err := s.access(ctx, u, id)
		if errors.Is(err, guildhall.ErrUnknownGuild) || errors.Is(err, guildhall.ErrMissingAccess) {
			continue // left or vanished between the two reads
		}
		if err != nil {
			return nil, err
		}
		out = append(out, UserGuild{Guild: a.Guild, Owner: a.Guild.OwnerID == u.ID, Permissions: a.Base})
	}
	return out, nil
}

// Identify is what a gateway needs when a session identifies: the token's user,
// each of the user's guilds and the user's membership in each. It takes the
// token's guildhall.TokenHash, as gateways send it (never the token itself).
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
	r := guildhall.IdentifyReply{User: u, Guilds: make([]guildhall.GuildState, 0, len(ids)), Members: make([]guildhall.Member, 0, len(ids))}
	for _, id := range ids {
		st, err := s.GuildState(ctx, id)
		if errors.Is(err, guildhall.ErrUnknownGuild) {
			continue
		}
		if err != nil {
			return guildhall.IdentifyReply{}, err
		}
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
		r.Guilds = append(r.Guilds, st)
		r.Members = append(r.Members, m)
	}
	return r, s.identifyConversations(ctx, u, &r)
}

// GuildSnapshot answers a gateway's GuildRequest: the guild's state, and the
// membership of req.UserID when it is set and the user is a member.
func (s *Service) GuildSnapshot(ctx context.Context, req guildhall.GuildRequest) (guildhall.GuildReply, error) {
	st, err := s.GuildState(ctx, req.GuildID)
	if err != nil {
		return guildhall.GuildReply{}, err
	}
	r := guildhall.GuildReply{State: st}
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
