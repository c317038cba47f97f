package gateway

import (
	"context"
	"encoding/json"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// How each event of the stream changes the pump's rooms before it is delivered:
// a guild's events keep its room's state current (channels, roles, the guild,
// members' roles, who is in it), a user's events join their sessions to a guild.

// apply updates the room's state from a guild event and delivers it. An event
// that changes the room first has what is planned delivered (batch.go).
func (p *pump) apply(r *room, seq uint64, ev guildhall.Event) {
	if !batchable(ev.Type) {
		p.flush()
	}
	r.lastSeq = seq
	p.advance(seq)
	live := newDispatch(ev, p.w)
	kept := live
	if p.w != seq {
		// A filled gap: live sessions get the watermark, a replay the event's seq
		// (as the stream replay sends it).
		kept = newDispatch(ev, seq)
	}
	r.recent.push(recentEvent{seq: seq, channel: ev.ChannelID, d: kept})
	switch ev.Type {
	case guildhall.EventChannelCreate, guildhall.EventChannelUpdate:
		var ch guildhall.Channel
		if json.Unmarshal(ev.Data, &ch) == nil {
			r.setChannel(ch)
		}
	case guildhall.EventChannelDelete:
		p.deliver(r, ev, live)
		r.deleteChannel(ev.ChannelID)
		return
	case guildhall.EventGuildUpdate:
		var g guildhall.Guild
		if json.Unmarshal(ev.Data, &g) == nil {
			g.MemberCount = r.state.Guild.MemberCount
			r.state.Guild = g
			r.invalidate()
		}
	case guildhall.EventGuildRoleCreate, guildhall.EventGuildRoleUpdate:
		var rc struct {
			Role guildhall.Role `json:"role"`
		}
		if json.Unmarshal(ev.Data, &rc) == nil {
			r.setRole(rc.Role)
		}
	case guildhall.EventGuildMemberAdd:
		r.state.Guild.MemberCount++
	case guildhall.EventGuildMemberUpdate:
		var m guildhall.Member
		if json.Unmarshal(ev.Data, &m) == nil {
			for _, rm := range r.members {
				if rm.s.user.ID == m.User.ID {
					rm.m.roles = m.Roles
					rm.m.roleKey = roleKey(m.Roles)
				}
			}
		}
	case guildhall.EventGuildMemberRemove:
		p.deliver(r, ev, live)
		var gone guildhall.GuildMemberRemove
		if json.Unmarshal(ev.Data, &gone) == nil {
			r.state.Guild.MemberCount--
			p.removeUser(r, gone.User.ID)
		}
		return
	}
	p.deliver(r, ev, live)
}

// removeUser takes a user who left the guild out of the room and tells their
// sessions with GUILD_DELETE.
func (p *pump) removeUser(r *room, uid guildhall.Snowflake) {
	var gone []*Session
	for i := 0; i < len(r.members); {
		rm := r.members[i]
		if rm.s.user.ID == uid {
			r.remove(rm.m)
			delete(rm.s.guilds, r.id)
			gone = append(gone, rm.s)
			continue
		}
		i++
	}
	if len(gone) > 0 {
		d, _ := json.Marshal(unavailableGuild{ID: r.id})
		gd := newDispatch(guildhall.Event{Type: guildhall.EventGuildDelete, GuildID: r.id, Data: d}, p.w)
		for _, s := range gone {
			if f := gd.frameFor(s); f != nil {
				s.send(f)
			}
		}
	}
	p.dropIfEmpty(r)
}

// applyUser handles an event for one user's sessions: today, joining a guild.
func (p *pump) applyUser(u *userRoom, seq uint64, ev guildhall.Event) {
	p.flush()
	p.advance(seq)
	d := newDispatch(ev, p.w)
	if ev.Type == guildhall.EventGuildCreate {
		var gc guildhall.GuildCreate
		if err := json.Unmarshal(ev.Data, &gc); err != nil || len(gc.Members) == 0 {
			return
		}
		state := guildhall.GuildState{Guild: gc.Guild, Channels: gc.Channels, Roles: gc.Roles}
		self := gc.Members[0]
		for _, s := range u.sessions {
			if _, ok := s.guilds[gc.ID]; ok {
				continue
			}
			_, existed := p.rooms[gc.ID]
			r := p.room(&state, false)
			if !existed {
				// The joiner's GUILD_CREATE lists only the channels the joiner may
				// see; the room serves every local member, so take the whole state.
				p.refresh(r)
			}
			m := &membership{roles: self.Roles, roleKey: roleKey(self.Roles)}
			s.guilds[r.id] = m
			r.add(s, m)
			if f := d.frameFor(s); f != nil {
				s.send(f)
			}
		}
		return
	}
	for _, s := range u.sessions {
		if f := d.frameFor(s); f != nil {
			s.send(f)
		}
	}
}

// refresh re-fetches a guild's state from the api: an event named a channel the
// room does not know, so the room missed a change (see messaging: the api writes
// the store before it publishes, and may die between the two).
func (p *pump) refresh(r *room) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	state, err := p.guilds.guildState(ctx, r.id)
	if err != nil {
		p.log.Warn("guild refresh failed", "guild", r.id, "err", err)
		return
	}
	state.Guild.MemberCount = max(state.Guild.MemberCount, r.state.Guild.MemberCount)
	r.state = state
	r.invalidate()
}
