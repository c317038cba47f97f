package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Guilds: create one, read one, list a user's, modify and delete (owner only
// for delete and for transferring it). Who may see what is in service_access.go;
// channels, members and invites have their own files, and what gateways ask for
// (Identify, GuildSnapshot) is in service_gateway.go.
//
// Metadata changes (guilds, channels, members, invites) are written to the store
// first and then published as guild events. If the process dies between the two,
// the change is durable but the gateways miss its event. That heals itself: a
// gateway that meets an event naming a channel it does not know re-fetches the
// guild's snapshot (SubjectAPIGuild), and every session that identifies or
// resumes later gets a fresh snapshot. The other order (publish first) could show
// gateways a channel that never becomes durable, which would not heal.

// Guild limits (Discord's).
const (
	MinGuildName   = 2
	MaxGuildName   = 100
	MaxChannelName = 100
	MaxTopic       = 1024
	MaxInviteAge   = 7 * 24 * 3600
	MaxInviteUses  = 100
	// MaxGuildsPerUser, MaxChannelsPerGuild and MaxOverwrites (per channel) are
	// Discord's limits (its errors 30001, 30013, 30060). A guild at all of them
	// has about 26 MB of channels: gateways read a guild's state in parts
	// (guildhall.GuildReply) and a join's user event does not carry it.
	MaxGuildsPerUser    = 100
	MaxChannelsPerGuild = 500
	MaxOverwrites       = 1000
)

var (
	errMaxGuilds     = &guildhall.Error{Status: 400, Code: 30001, Message: "Maximum number of guilds reached (100)"}
	errMaxChannels   = &guildhall.Error{Status: 400, Code: 30013, Message: "Maximum number of guild channels reached (500)"}
	errMaxOverwrites = &guildhall.Error{Status: 400, Code: 30060, Message: "Maximum number of channel permission overwrites reached (1000)"}
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
// and tells u's sessions with a GUILD_JOIN user event (their GUILD_CREATE).
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
	ev, err := guildJoinEvent(owner)
	if err != nil {
		return guildhall.GuildState{}, err
	}
	if _, err := s.publish(ctx, ev, s.ids.Next().String()); err != nil {
		return guildhall.GuildState{}, err
	}
	return st, nil
}

// guildJoinEvent is the user event that brings member m's sessions into its
// guild (gh.in.u.<user>): the member alone. Gateways build the GUILD_CREATE from
// the guild's state, which is no part of it, so a guild of any size can be joined.
func guildJoinEvent(m guildhall.Member) (guildhall.Event, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return guildhall.Event{}, internal("encode member", err)
	}
	return guildhall.Event{Type: guildhall.EventGuildJoin, UserID: m.User.ID, Data: data}, nil
}

// Guild returns a guild the user is a member of, with MemberCount, its channels
// (all of them) and roles.
func (s *Service) Guild(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) (guildhall.GuildState, error) {
	if _, err := s.access(ctx, u, guildID); err != nil {
		return guildhall.GuildState{}, err
	}
	return s.GuildState(ctx, guildID)
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

// GuildParams is what modifying a guild takes; nil means not given. Discord's
// other guild settings (icons, banners, system channels, verification levels)
// are not kept by Guildhall: REST ignores them.
type GuildParams struct {
	Name    *string
	OwnerID *guildhall.Snowflake
}

// guildObject is the payload of GUILD_UPDATE: the guild with its roles, in
// Discord's guild object shape.
type guildObject struct {
	guildhall.Guild
	Roles    []guildhall.Role `json:"roles"`
	Emojis   []struct{}       `json:"emojis"`
	Stickers []struct{}       `json:"stickers"`
	Features []string         `json:"features"`
}

// ModifyGuild renames a guild (MANAGE_GUILD) or, for its owner alone,
// transfers it to another member. It publishes GUILD_UPDATE.
func (s *Service) ModifyGuild(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, p GuildParams, reason string) (guildhall.GuildState, error) {
	if err := checkReason(reason); err != nil {
		return guildhall.GuildState{}, err
	}
	if p.Name != nil {
		if n := utf8.RuneCountInString(strings.TrimSpace(*p.Name)); n < MinGuildName || n > MaxGuildName {
			return guildhall.GuildState{}, guildhall.FieldError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.")
		}
	}
	a, err := s.accessNeeding(ctx, u, guildID, guildhall.PermManageGuild)
	if err != nil {
		return guildhall.GuildState{}, err
	}
	g := a.Guild
	var changes []guildhall.AuditLogChange
	if p.Name != nil && strings.TrimSpace(*p.Name) != g.Name {
		name := strings.TrimSpace(*p.Name)
		changes = append(changes, guildhall.Change("name", g.Name, name))
		g.Name = name
	}
	if p.OwnerID != nil && *p.OwnerID != g.OwnerID {
		if !a.owner() {
			return guildhall.GuildState{}, guildhall.ErrMissingPerms
		}
		to, err := s.member(ctx, a, *p.OwnerID)
		if err != nil {
			return guildhall.GuildState{}, err
		}
		changes = append(changes, guildhall.Change("owner_id", g.OwnerID, to.User.ID))
		g.OwnerID = to.User.ID
	}
	if len(changes) > 0 {
		if err := s.store.PutGuild(ctx, g); err != nil {
			return guildhall.GuildState{}, internal("put guild", err)
		}
		pub := g
		pub.MemberCount = 0
		ev, err := guildEvent(guildhall.EventGuildUpdate, guildID, 0, guildObject{
			Guild: pub, Roles: sortedRoles(a.Roles), Emojis: []struct{}{}, Stickers: []struct{}{}, Features: []string{},
		})
		if err != nil {
			return guildhall.GuildState{}, err
		}
		if err := s.publishEvents(ctx, ev); err != nil {
			return guildhall.GuildState{}, err
		}
		s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditGuildUpdate, target: guildID.String(), changes: changes})
	}
	return s.GuildState(ctx, guildID)
}

// DeleteGuild deletes a guild (its owner only) and publishes GUILD_DELETE:
// every member's sessions are told and get nothing more of it.
func (s *Service) DeleteGuild(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) error {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return err
	}
	if !a.owner() {
		return guildhall.ErrMissingPerms
	}
	if err := s.store.DeleteGuild(ctx, guildID); err != nil {
		return internal("delete guild", err)
	}
	ev, err := guildEvent(guildhall.EventGuildDelete, guildID, 0, guildhall.GuildDelete{ID: guildID})
	if err != nil {
		return err
	}
	return s.publishEvents(ctx, ev)
}
