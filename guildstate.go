package guildhall

import (
	"encoding/json"
	"slices"
)

// StateChange is what one event did to a guild besides its GuildState, for
// whoever keeps the guild's members: a gateway keeps its local sessions' (their
// roles decide what each sees), the api would keep all of them (with bans, to
// authorize without the store). Apply is the one place that reads events into
// state; the gateway's rooms call it, and so can a projection of the stream.
type StateChange struct {
	// Access: the guild, a channel or a role changed, so who may see or do what
	// may have changed; caches of it are stale.
	Access bool
	// Member joined (GUILD_MEMBER_ADD) or changed (GUILD_MEMBER_UPDATE): its
	// roles, nick and timeout are now these.
	Member *Member
	// Removed is a user who is no longer a member (GUILD_MEMBER_REMOVE, and
	// GUILD_BAN_ADD, which follows the removal of a banned member).
	Removed Snowflake
	// Banned and Unbanned: a ban of this user was added (GUILD_BAN_ADD) or
	// lifted (GUILD_BAN_REMOVE).
	Banned, Unbanned Snowflake
	// Deleted: the guild is gone (GUILD_DELETE); nobody is a member any more.
	Deleted bool
	// Unknown: the event names a channel this state does not hold, so the state
	// missed a change (the api writes the store before it publishes and may die
	// between the two): fetch a fresh snapshot.
	Unknown bool
}

// Apply updates the state with one of the guild's events, in stream order, and
// says what else it changed. Events that change no state besides a channel's
// last message id (messages, pins, invites) return a zero StateChange unless
// they name an unknown channel. A
// payload that does not decode changes nothing.
func (g *GuildState) Apply(ev Event) StateChange {
	var c StateChange
	switch ev.Type {
	case EventChannelCreate, EventChannelUpdate:
		var ch Channel
		if json.Unmarshal(ev.Data, &ch) == nil && ch.ID != 0 {
			if old, ok := g.Channel(ch.ID); ok && ch.LastMessageID == nil {
				ch.LastMessageID = old.LastMessageID // an update does not forget it
			}
			g.setChannel(ch)
			c.Access = true
		}
		return c
	case EventMessageCreate:
		// The channel's last_message_id, for the GUILD_CREATE of those who join
		// later. Visibility does not depend on it: no Access change.
		if !g.lastMessage(ev.ChannelID, messageID(ev.Data)) && ev.ChannelID != 0 {
			c.Unknown = true
		}
		return c
	case EventChannelDelete:
		id := ev.ChannelID
		var ch Channel
		if json.Unmarshal(ev.Data, &ch) == nil && ch.ID != 0 {
			id = ch.ID
		}
		g.deleteChannel(id)
		c.Access = true
		return c
	case EventGuildUpdate:
		var gu Guild
		if json.Unmarshal(ev.Data, &gu) == nil && gu.ID == g.Guild.ID {
			gu.MemberCount = g.Guild.MemberCount
			g.Guild = gu
			c.Access = true
		}
		return c
	case EventGuildDelete:
		var gd GuildDelete
		if json.Unmarshal(ev.Data, &gd) == nil && !gd.Unavailable {
			c.Deleted = true
		}
		return c
	case EventGuildRoleCreate, EventGuildRoleUpdate:
		var re GuildRoleEvent
		if json.Unmarshal(ev.Data, &re) == nil && re.Role.ID != 0 {
			g.setRole(re.Role)
			c.Access = true
		}
		return c
	case EventGuildRoleDelete:
		var rd GuildRoleDelete
		if json.Unmarshal(ev.Data, &rd) == nil && rd.RoleID != 0 {
			g.deleteRole(rd.RoleID)
			c.Access = true
		}
		return c
	case EventGuildMemberAdd, EventGuildMemberUpdate:
		var m Member
		if json.Unmarshal(ev.Data, &m) == nil && m.User.ID != 0 {
			if ev.Type == EventGuildMemberAdd {
				g.Guild.MemberCount++
			}
			c.Member = &m
		}
		return c
	case EventGuildMemberRemove:
		var p GuildMemberRemove
		if json.Unmarshal(ev.Data, &p) == nil && p.User.ID != 0 {
			g.Guild.MemberCount = max(0, g.Guild.MemberCount-1)
			c.Removed = p.User.ID
		}
		return c
	case EventGuildBanAdd, EventGuildBanRemove:
		var b GuildBanEvent
		if json.Unmarshal(ev.Data, &b) == nil && b.User.ID != 0 {
			if ev.Type == EventGuildBanAdd {
				c.Banned, c.Removed = b.User.ID, b.User.ID
			} else {
				c.Unbanned = b.User.ID
			}
		}
		return c
	}
	if ev.ChannelID != 0 {
		if _, ok := g.Channel(ev.ChannelID); !ok {
			c.Unknown = true
		}
	}
	return c
}

// lastMessage raises a channel's LastMessageID to id; false when the state has
// no such channel.
func (g *GuildState) lastMessage(channel, id Snowflake) bool {
	for i := range g.Channels {
		c := &g.Channels[i]
		if c.ID == channel {
			if id != 0 && (c.LastMessageID == nil || *c.LastMessageID < id) {
				c.LastMessageID = &id
			}
			return true
		}
	}
	return false
}

// messageID reads a message payload's id without decoding it all (this runs
// for every message of a guild): the api encodes Message, whose id comes
// first; anything else is decoded.
func messageID(data []byte) Snowflake {
	const prefix = `{"id":"`
	if len(data) > len(prefix) && string(data[:len(prefix)]) == prefix {
		var id Snowflake
		for _, c := range data[len(prefix):] {
			if c == '"' {
				return id
			}
			if c < '0' || c > '9' {
				break
			}
			id = id*10 + Snowflake(c-'0')
		}
	}
	var m struct {
		ID Snowflake `json:"id"`
	}
	_ = json.Unmarshal(data, &m)
	return m.ID
}

// setChannel inserts or replaces a channel.
func (g *GuildState) setChannel(ch Channel) {
	for i := range g.Channels {
		if g.Channels[i].ID == ch.ID {
			g.Channels[i] = ch
			return
		}
	}
	g.Channels = append(g.Channels, ch)
}

// deleteChannel removes a channel; a deleted category's channels lose their
// parent, as on Discord.
func (g *GuildState) deleteChannel(id Snowflake) {
	g.Channels = slices.DeleteFunc(g.Channels, func(c Channel) bool { return c.ID == id })
	for i := range g.Channels {
		if p := g.Channels[i].ParentID; p != nil && *p == id {
			g.Channels[i].ParentID = nil
		}
	}
}

func (g *GuildState) setRole(r Role) {
	for i := range g.Roles {
		if g.Roles[i].ID == r.ID {
			g.Roles[i] = r
			return
		}
	}
	g.Roles = append(g.Roles, r)
}

// deleteRole removes a role and every channel overwrite naming it: members may
// still list the role's id, and an overwrite left behind would still apply to
// them.
func (g *GuildState) deleteRole(id Snowflake) {
	g.Roles = slices.DeleteFunc(g.Roles, func(r Role) bool { return r.ID == id })
	for i := range g.Channels {
		ow := g.Channels[i].PermissionOverwrites
		if slices.ContainsFunc(ow, func(o PermissionOverwrite) bool { return o.Type == OverwriteRole && o.ID == id }) {
			g.Channels[i].PermissionOverwrites = slices.DeleteFunc(slices.Clone(ow), func(o PermissionOverwrite) bool {
				return o.Type == OverwriteRole && o.ID == id
			})
		}
	}
}

// Role returns the role with id, if the guild has it.
func (g *GuildState) Role(id Snowflake) (Role, bool) {
	for _, r := range g.Roles {
		if r.ID == id {
			return r, true
		}
	}
	return Role{}, false
}
