package gateway

import (
	"encoding/json"
	"slices"

	guildhall "github.com/guildhall/guildhall"
)

// How each event of the stream changes the pump's rooms before it is delivered:
// a guild's events keep its room's state current (channels, roles, the guild,
// members' roles, who is in it), a user's events join their sessions to a guild.

// apply updates the room's state from a guild event and delivers it, framed with
// its own stream sequence (a refilled one too). The state changes through
// guildhall.GuildState.Apply, the one place that reads events into a guild's
// state; this adds what only a gateway keeps: the local sessions' memberships,
// the channel-visibility cache, who is in the room.
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
	live := newDispatch(ev, seq)
	r.recent.push(recentEvent{seq: seq, channel: ev.ChannelID, requires: ev.Requires, d: live})
	// A refilled event may be older than some member's join.
	old := seq <= r.joinedAt
	switch ev.Type {
	case guildhall.EventChannelDelete, guildhall.EventGuildMemberRemove, guildhall.EventGuildBanAdd, guildhall.EventGuildDelete:
		p.deliver(r, ev, live, nil, old)
		p.applyState(r, seq, ev)
		return
	case guildhall.EventChannelUpdate:
		before, _ := r.channelView(ev.ChannelID)
		p.applyState(r, seq, ev)
		p.deliver(r, ev, live, before, old)
		return
	}
	p.applyState(r, seq, ev)
	p.deliver(r, ev, live, nil, old)
}

// applyState changes the room's state and its sessions for one event.
func (p *pump) applyState(r *room, seq uint64, ev guildhall.Event) {
	c := r.state.Apply(ev)
	if c.Access {
		r.invalidate()
		r.channelJSON = nil
	} else if ev.Type == guildhall.EventMessageCreate {
		// The channel's last_message_id moved: its cached JSON is stale.
		delete(r.channelJSON, ev.ChannelID)
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
	p.flush()
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
	p.flush()
	for _, rm := range r.members {
		delete(rm.s.guilds, r.id)
		if rm.m.held {
			rm.m.held = false
			rm.s.out.release()
		}
		rm.m.index = -1
	}
	clear(r.members)
	r.members = r.members[:0]
	p.dropIfEmpty(r)
}

// applyUser handles an event for one user's sessions: joining a guild
// (GUILD_JOIN), leaving one (GUILD_DELETE), and everything of the user's DMs
// (see package messaging), which go to the sessions as they are.
func (p *pump) applyUser(u *userRoom, seq uint64, ev guildhall.Event) {
	// Its frames go out directly and joins change rooms' members: what is
	// planned (lower s) goes first.
	p.flush()
	p.flush()
	p.advance(seq)
	switch ev.Type {
	case guildhall.EventGuildJoin:
		var m guildhall.Member
		if json.Unmarshal(ev.Data, &m) != nil || m.GuildID == 0 {
			return
		}
		p.joinGuild(u, &pendingJoin{user: u.id, seq: seq, member: m}, nil)
		return
	case guildhall.EventGuildCreate:
		// A join written before GUILD_JOIN existed: it carries the joiner's
		// GUILD_CREATE, which goes out as it is.
		var gc guildhall.GuildCreate
		if err := json.Unmarshal(ev.Data, &gc); err != nil || len(gc.Members) == 0 || gc.ID == 0 {
			return
		}
		m := gc.Members[0]
		m.GuildID = gc.ID
		state := guildhall.GuildState{Guild: gc.Guild, Channels: gc.Channels, Roles: gc.Roles}
		p.joinGuild(u, &pendingJoin{user: u.id, seq: seq, member: m, d: newDispatch(ev, seq)}, &state)
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
	d := newDispatch(ev, seq)
	for _, s := range u.sessions {
		if !s.shard.ownsEvent(guild) {
			continue
		}
		if f := d.frameFor(s); f != nil {
			s.send(f)
		}
	}
}

// pendingJoin is the user's sessions joining member.GuildID at the user event
// seq. d is their GUILD_CREATE, or nil to build it from the room's state when
// they join.
type pendingJoin struct {
	user   guildhall.Snowflake
	seq    uint64
	member guildhall.Member
	d      *dispatch
	// queued: the room was catching up when the join came; held are the
	// sessions whose frames wait for the GUILD_CREATE meanwhile.
	queued bool
	held   []*Session
}

// joinGuild adds the user's sessions to the room of the guild they joined. The
// room may be catching up, or not exist here yet (it is made and fetches the
// guild's state; seed, when given, is what it starts from). Either way the
// sessions join the room exactly at j.seq: after every earlier event of the
// guild, before every later one.
func (p *pump) joinGuild(u *userRoom, j *pendingJoin, seed *guildhall.GuildState) {
	if !slices.ContainsFunc(u.sessions, func(s *Session) bool { return s.shard.ownsGuild(j.member.GuildID) }) {
		return // no session here receives the guild (shard.go)
	}
	r := p.rooms[j.member.GuildID]
	if r == nil {
		state := guildhall.GuildState{Guild: guildhall.Guild{ID: j.member.GuildID}}
		if seed != nil {
			state = *seed
		}
		r = p.room(&state, false)
		// The whole state (a seed lists only the channels the joiner may see,
		// and the room serves every local member), and what the guild stored
		// before this subscription was in place.
		p.refreshRoom(r, true)
	}
	if r.catchUp == nil {
		p.attachJoined(r, j)
		return
	}
	// Frames after the join wait for its GUILD_CREATE, which waits for the room.
	for _, s := range u.sessions {
		if _, in := s.guilds[r.id]; !in && s.shard.ownsGuild(r.id) {
			s.out.hold()
			j.held = append(j.held, s)
		}
	}
	r.pending++ // the room stays until the join is done
	j.queued = true
	r.catchUp.queue = append(r.catchUp.queue, queuedEvent{seq: j.seq, join: j})
	p.runCatchUp(r)
}

// attachJoined adds the user's sessions that are not in r yet to r and sends
// them the GUILD_CREATE; r has applied every event of the guild before j.seq.
func (p *pump) attachJoined(r *room, j *pendingJoin) {
	p.flush() // planned events are older than the join: not the joiners'
	if u := p.users[j.user]; u != nil {
		if j.d == nil {
			gd := r.guildCreate(j.member, 0)
			j.d = newDispatch(guildhall.Event{Type: guildhall.EventGuildCreate, UserID: j.user, Data: gd}, j.seq)
		}
		for _, s := range u.sessions {
			if _, in := s.guilds[r.id]; in || s.guilds == nil || !s.shard.ownsGuild(r.id) {
				continue
			}
			m := &membership{roles: j.member.Roles, roleKey: roleKey(j.member.Roles)}
			s.guilds[r.id] = m
			r.add(s, m, j.seq)
			if r.catchUp != nil {
				m.held = true
				s.out.hold()
			}
			if f := j.d.frameFor(s); f != nil {
				s.send(f)
			}
		}
	}
	for _, s := range j.held {
		s.out.release()
	}
	j.held = nil
	if j.queued {
		j.queued = false
		r.pending--
	}
	p.dropIfEmpty(r)
}
