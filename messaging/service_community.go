package messaging

import (
	"context"
	"encoding/json"

	guildhall "github.com/guildhall/guildhall"
)

// What the community files (service_roles.go, service_members.go,
// service_moderation.go, service_channels.go, service_pins.go,
// service_invites.go, service_audit.go) share: building their events.
//
// Every change is stored first, then published as a Discord gateway event on
// the guild's stream subject (see the comment at the top of service_guild.go),
// and each event carries what a reader of the stream alone needs to keep the
// guild's authorization state (guildhall.GuildState.Apply): whole channels with
// their overwrites, whole roles, members with their roles and timeout, banned
// users.

// guildEvent builds a guild event with payload v, for channel ch (0:
// guild-wide).
func guildEvent(typ string, guildID, ch guildhall.Snowflake, v any) (guildhall.Event, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return guildhall.Event{}, internal("encode "+typ, err)
	}
	return guildhall.Event{Type: typ, GuildID: guildID, ChannelID: ch, Data: data}, nil
}

// publishEvents publishes events of one guild in order.
func (s *Service) publishEvents(ctx context.Context, evs ...guildhall.Event) error {
	switch len(evs) {
	case 0:
		return nil
	case 1:
		_, err := s.publish(ctx, evs[0], s.ids.Next().String())
		return err
	}
	return s.publishInOrder(ctx, evs...)
}

// memberObject is a member as Discord's REST and GUILD_MEMBER_UPDATE show it:
// roles never null.
func memberObject(m guildhall.Member) guildhall.Member {
	if m.Roles == nil {
		m.Roles = []guildhall.Snowflake{}
	}
	return m
}

// memberUpdate is GUILD_MEMBER_UPDATE for m (with guild_id, as Discord sends
// it): every member's roles, nick and timeout travel whole.
func memberUpdate(m guildhall.Member) (guildhall.Event, error) {
	ev, err := guildEvent(guildhall.EventGuildMemberUpdate, m.GuildID, 0, memberObject(m))
	ev.UserID = m.User.ID
	return ev, err
}

// memberRemoved is what a membership's end publishes: GUILD_MEMBER_REMOVE to
// the guild, then GUILD_DELETE to the user alone (a user event). The second is
// in the stream, so a session that was away when it happened is replayed it on
// resume (through the user's subject) like a live one gets it.
func memberRemoved(guildID guildhall.Snowflake, user guildhall.User) ([]guildhall.Event, error) {
	rm, err := guildEvent(guildhall.EventGuildMemberRemove, guildID, 0, guildhall.GuildMemberRemove{GuildID: guildID, User: user})
	if err != nil {
		return nil, err
	}
	rm.UserID = user.ID
	gd, err := guildEvent(guildhall.EventGuildDelete, 0, 0, guildhall.GuildDelete{ID: guildID})
	if err != nil {
		return nil, err
	}
	gd.UserID = user.ID
	return []guildhall.Event{rm, gd}, nil
}

// sortedRoles returns a copy of roles from the lowest to the highest.
func sortedRoles(roles []guildhall.Role) []guildhall.Role {
	out := append([]guildhall.Role{}, roles...)
	guildhall.SortRoles(out)
	return out
}
