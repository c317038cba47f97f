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

// apply updates the room's state from a guild event and delivers it. The state
// changes through guildhall.GuildState.Apply, the one place that reads events into
// a guild's state; this adds what only a gateway keeps: the local sessions'
// memberships, the channel-visibility cache, who is in the room.
//
// When to deliver: an event that takes something away (a channel deleted, a
// member removed or banned, the guild deleted) reaches whoever loses it, so it is
// delivered before the state changes; a channel's update reaches whoever could
// view it before or can view it after (those who lose it learn so); the rest are
// delivered with the new state. From the next event on, a session sees only what
// the new state lets it.
//
// An event that changes the room first has what is planned delivered (batch.go).
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
	r.recent.push(recentEvent{seq: seq, channel: ev.ChannelID, requires: ev.Requires, d: kept})
	switch ev.Type {
	case guildhall.EventChannelDelete, guildhall.EventGuildMemberRemove, guildhall.EventGuildBanAdd, guildhall.EventGuildDelete:
		p.deliver(r, ev, live, nil)
		p.applyState(r, seq, ev)
		return
	case guildhall.EventChannelUpdate:
		before, _ := r.channelView(ev.ChannelID)
		p.applyState(r, seq, ev)
		p.deliver(r, ev, live, before)
		return
	}
	p.applyState(r, seq, ev)
	p.deliver(r, ev, live, nil)
}

// applyState changes the room's state and its sessions for one event.
func (p *pump) applyState(r *room, seq uint64, ev guildhall.Event) {
	c := r.state.Apply(ev)
	if c.Access {
		r.invalidate()
	}
	if c.Member != nil {
		r.note(seq, c.Member.User.ID, c.Member.Roles, false)
		for _, rm := range r.members {
			if rm.s.user.ID == c.Member.User.ID {
				rm.m.roles = c.Member.Roles
				rm.m.roleKey = roleKey(c.Member.Roles)
			}
		}
	}
	if c.Removed != 0 {
		r.note(seq, c.Removed, nil, true)
		p.removeUser(r, c.Removed)
	}
	if c.Deleted {
		p.closeRoom(r)
	}
}

// removeUser takes a user who is no longer a member out of the room: their
// sessions get nothing more of the guild. Their GUILD_DELETE is an event of its
// own for the user (see applyUser), so that a resume replays it too.
func (p *pump) removeUser(r *room, uid guildhall.Snowflake) {
	for i := 0; i < len(r.members); {
		rm := r.members[i]
		if rm.s.user.ID == uid {
			r.remove(rm.m)
			delete(rm.s.guilds, r.id)
			continue
		}
		i++
	}
	p.dropIfEmpty(r)
}

// closeRoom takes every session out of the room of a deleted guild (they were
// delivered its GUILD_DELETE) and drops the room.
func (p *pump) closeRoom(r *room) {
	for _, rm := range r.members {
		delete(rm.s.guilds, r.id)
		rm.m.index = -1
	}
	clear(r.members)
	r.members = r.members[:0]
	p.dropIfEmpty(r)
}

// applyUser handles an event for one user's sessions: joining a guild
// (GUILD_CREATE), leaving one (GUILD_DELETE), and everything of the user's DMs
// (see package messaging), which go to the sessions as they are.
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
			if _, ok := s.guilds[gc.ID]; ok || !s.shard.ownsGuild(gc.ID) {
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
	if ev.Type == guildhall.EventGuildDelete {
		// The user's membership ended: the room took the sessions out at its
		// GUILD_MEMBER_REMOVE, unless that event did not reach this gateway.
		var gd guildhall.GuildDelete
		if json.Unmarshal(ev.Data, &gd) == nil {
			if r := p.rooms[gd.ID]; r != nil {
				p.removeUser(r, ev.UserID)
			}
		}
	}
	guild := eventGuild(ev)
	for _, s := range u.sessions {
		if !s.shard.ownsEvent(guild) {
			continue
		}
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
