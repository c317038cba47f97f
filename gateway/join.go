package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// A session joins its rooms at a consistent cut of the stream, so that one s can
// say exactly what the session has seen:
//
//  1. prepare (in the pump): subscribe the rooms the session needs that this
//     gateway does not have yet;
//  2. cut (in the caller): have the api publish a tick to the stream on this
//     gateway's tick subject and wait until the pump has handled it. The stream re-publishes in
//     order, so by then the pump has handled every event before the tick of every
//     guild it is subscribed to, and the new subscriptions are in place for every
//     event after it;
//  3. attach (in the pump, at the tick): the session joins its rooms; its s is the
//     watermark, and every later event it may see is queued to it.
//
// Without step 2 a new room could not know where the guild's events stand, and a
// session's s could claim events the pump had not yet seen.
//
// An identify queues READY and its GUILD_CREATEs at the cut (joinIdentified); a
// resume takes what its replay needs there (joinResumed).
//
// The memberships come from the api, read before the cut: an event between the
// read and the cut (a role given or taken, a kick) reached the room but not the
// session, which was not attached yet. Rooms note each member's latest change
// (room.note), and attach applies the notes of events after since, the
// watermark taken before the api was asked; a session kicked in between does not
// join that room (an identify gets GUILD_DELETE for it). A room the cut creates
// has no notes of the moments before it subscribed: verify asks the api again
// for the memberships of the sessions that joined it.

// errClosed: the pump has stopped (the gateway is closing).
var errClosed = errors.New("gateway: closed")

// presenceCounts answers a guild's approximate online count (0: unknown), for
// GUILD_CREATE.
type presenceCounts interface {
	approximatePresenceCount(guild guildhall.Snowflake) int
}

var _ presenceCounts = (*onlineCounts)(nil)

// joinIdentified joins a session that has just identified (guilds[i] and
// members[i] are its guilds and its membership in each) and queues, at the cut,
// READY (its d is ready) and, if its intents ask for GUILDS, a GUILD_CREATE per
// guild, before any live frame. It returns the session's starting sequence. On
// failure the session is closed (4000, try again).
func (p *pump) joinIdentified(ctx context.Context, s *Session, guilds []guildhall.GuildState, members []guildhall.Member, since uint64, ready []byte, counts presenceCounts) (uint64, error) {
	var w uint64
	err := p.join(ctx, s, guilds, members, since, func(rooms []*room, kept []bool) {
		w = p.w
		// READY goes one sequence before its GUILD_CREATEs, as on Discord, where
		// each dispatch's s is above READY's. Clients rely on it: discord.js
		// handles the frames of one read concurrently, and with equal s a
		// GUILD_CREATE overtook READY (ClientReady fired with client.user null).
		// w is nearly always the cut's own tick, which no session receives, so a
		// resume from w-1 replays exactly what one from w does; when the pump had
		// already passed the tick, w is the last event it handled, which the
		// GUILD_CREATEs already show, and such a resume replays that one event.
		s.send(dispatchFrame(guildhall.EventReady, readySeq(w), ready))
		if s.intents&guildhall.IntentGuilds == 0 {
			return // READY lists the guilds; their GUILD_CREATEs need GUILDS
		}
		for i, r := range rooms {
			if !kept[i] {
				gd, _ := json.Marshal(guildhall.GuildDelete{ID: r.id})
				s.send(dispatchFrame(guildhall.EventGuildDelete, w, gd))
				continue
			}
			gc := r.state.CreatePayload(members[i])
			gc.ApproximatePresenceCount = counts.approximatePresenceCount(r.id)
			gd, _ := json.Marshal(gc)
			s.send(dispatchFrame(guildhall.EventGuildCreate, w, gd))
		}
	})
	return w, err
}

// readySeq is READY's s for a session that joined at cut w (see joinIdentified).
func readySeq(w uint64) uint64 { return max(w, 1) - 1 }

// resumeCut is what a resume needs from the pump at its cut.
type resumeCut struct {
	// w is the session's new sequence: the replay ends there, live frames start
	// after it.
	w uint64
	// views are copies of the session's rooms as of the cut, for filtering a
	// stream replay by channel visibility outside the pump.
	views map[guildhall.Snowflake]*replayView
	// recent is the replay from the rooms' recent events, when fromMemory: they
	// held every guild event after the resume's seq.
	recent     []*frame
	fromMemory bool
}

// joinResumed joins a resuming session, whose live frames are held back, and
// returns what its replay of the events after seq needs. On failure the session
// is closed (4000, try again).
func (p *pump) joinResumed(ctx context.Context, s *Session, guilds []guildhall.GuildState, members []guildhall.Member, since, seq uint64) (resumeCut, error) {
	var c resumeCut
	err := p.join(ctx, s, guilds, members, since, func([]*room, []bool) {
		c.w = p.w
		c.views = make(map[guildhall.Snowflake]*replayView, len(s.guilds))
		for id, m := range s.guilds {
			c.views[id] = newReplayView(p.rooms[id], m)
		}
		c.recent, c.fromMemory = p.recentFor(s, seq)
	})
	return c, err
}

// join prepares the rooms of guilds, takes a cut, and attaches s at the cut, where
// it runs atCut in the pump with the rooms (rooms[i] is guilds[i]'s) and whether
// the session joined each (see attach).
func (p *pump) join(ctx context.Context, s *Session, guilds []guildhall.GuildState, members []guildhall.Member, since uint64, atCut func(rooms []*room, kept []bool)) error {
	var rooms []*room
	if !p.do(func() { rooms = p.prepare(guilds) }) {
		return p.joinFailed(s, errClosed)
	}
	attached := false
	var check []guildhall.Snowflake // rooms this cut creates, whose memberships verify checks
	wasFresh := make([]bool, len(rooms))
	err := p.cut(ctx, func() {
		if s.out.isClosed() {
			p.abort(rooms)
			return
		}
		for i, r := range rooms {
			wasFresh[i] = r.fresh
		}
		kept, ok := p.attach(s, rooms, members, since)
		if !ok {
			return
		}
		attached = true
		atCut(rooms, kept)
		for i, r := range rooms {
			if kept[i] && wasFresh[i] {
				check = append(check, r.id)
			}
		}
	})
	if err == nil && !attached {
		err = errors.New("session closed before its cut, or its memberships could not be checked")
	}
	if err != nil {
		return p.joinFailed(s, err)
	}
	if len(check) > 0 {
		go p.verify(s, check)
	}
	return nil
}

// verify checks the session's membership in rooms its cut created: such a room
// subscribed after the api read the guild and the membership, so an event in
// between (a kick, a role taken) reached neither. It asks the api again, now,
// and corrects the membership in the pump unless an event of the user's
// membership came after the question (it is newer).
func (p *pump) verify(s *Session, guilds []guildhall.Snowflake) {
	for _, id := range guilds {
		since := p.current()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := p.guilds.member(ctx, id, s.user.ID)
		cancel()
		if err != nil {
			p.log.Warn("session join: membership check", "guild", id, "session", s.id, "err", err)
			continue
		}
		p.post(func() { p.reconcile(s, id, m, since) })
	}
}

// reconcile sets a session's membership in a room to m (nil: none) as the api
// answered after since, unless the room noted a later change (or cannot tell).
func (p *pump) reconcile(s *Session, id guildhall.Snowflake, m *guildhall.Member, since uint64) {
	r, mem := p.rooms[id], s.guilds[id]
	if r == nil || mem == nil || r.notesCleared > since {
		return
	}
	if n, ok := r.notes[s.user.ID]; ok && n.seq > since {
		return
	}
	if m == nil {
		r.remove(mem)
		delete(s.guilds, id)
		gd, _ := json.Marshal(guildhall.GuildDelete{ID: id})
		if f := newDispatch(guildhall.Event{Type: guildhall.EventGuildDelete, Data: gd}, p.w).frameFor(s); f != nil {
			s.send(f)
		}
		p.dropIfEmpty(r)
		return
	}
	mem.roles, mem.roleKey = m.Roles, roleKey(m.Roles)
}

// joinFailed closes a session whose join failed and takes it out of its rooms:
// the tick may still arrive, and closed first, the session will not attach; if it
// already did, it leaves here.
func (p *pump) joinFailed(s *Session, err error) error {
	p.log.Warn("session join: cut", "session", s.id, "err", err)
	s.close(CloseUnknownError, "Try again")
	p.do(func() { p.leave(s) })
	return err
}

// prepare makes sure the rooms of states exist and keeps them until attach or
// abort.
func (p *pump) prepare(states []guildhall.GuildState) []*room {
	rooms := make([]*room, len(states))
	for i := range states {
		r := p.room(&states[i], true)
		r.pending++
		rooms[i] = r
	}
	return rooms
}

// abort gives back rooms taken by prepare when the session will not attach.
func (p *pump) abort(rooms []*room) {
	for _, r := range rooms {
		r.pending--
		p.dropIfEmpty(r)
	}
}

// cut has a tick published and returns once the pump has handled it, with f run
// in the pump at that moment.
func (p *pump) cut(ctx context.Context, f func()) error {
	seq, err := p.ticks.tick(ctx, p.node)
	if err != nil {
		return fmt.Errorf("gateway: tick: %w", err)
	}
	done := make(chan struct{})
	if !p.post(func() {
		p.waiters = append(p.waiters, waiter{seq: seq, run: func() { f(); close(done) }})
		p.releaseWaiters()
	}) {
		return errClosed
	}
	select {
	case <-done:
		return nil
	case <-p.stopped:
		return errClosed
	case <-ctx.Done():
		// f will still run in the pump when the tick arrives; join makes it
		// harmless for a session that has gone.
		return ctx.Err()
	}
}

// attach puts a session into rooms taken by prepare (members[i] belongs to
// rooms[i], as the api read it after since) and into its user room. It runs in
// the pump at a cut; the session starts at the watermark. A room's notes of
// events after since correct members[i] in place, and leave the session out of a
// room whose guild it was removed from: kept[i] says whether it joined rooms[i].
// ok is false, and the session joins nothing, when a room cannot tell (its
// notes started over after since): the client is to try again.
func (p *pump) attach(s *Session, rooms []*room, members []guildhall.Member, since uint64) (kept []bool, ok bool) {
	for _, r := range rooms {
		if r.notesCleared > since {
			p.abort(rooms)
			return nil, false
		}
	}
	s.guilds = make(map[guildhall.Snowflake]*membership, len(rooms))
	kept = make([]bool, len(rooms))
	for i, r := range rooms {
		if n, ok := r.notes[s.user.ID]; ok && n.seq > since {
			if n.gone {
				r.pending--
				p.dropIfEmpty(r)
				continue
			}
			members[i].Roles = n.roles
		}
		kept[i] = true
		r.pending--
		if r.fresh {
			// Every event of this guild that reached the pump is before the cut;
			// what did not reach it was stored before the subscription was in place.
			// From here on the room has every event, unless its loss counters move
			// (they were read before it subscribed).
			r.fresh = false
			r.lastSeq = max(r.lastSeq, p.w)
			r.recent.restartAfter(p.w)
			r.vouched = true
		}
		m := &membership{roles: members[i].Roles, roleKey: roleKey(members[i].Roles)}
		s.guilds[r.id] = m
		r.add(s, m)
	}
	p.joinUser(s)
	return kept, true
}

// leave takes a session out of every room; empty rooms are dropped. Run it in
// the pump.
func (p *pump) leave(s *Session) {
	for id, m := range s.guilds {
		if r := p.rooms[id]; r != nil {
			r.remove(m)
			p.dropIfEmpty(r)
		}
	}
	s.guilds = nil
	if u := p.users[s.user.ID]; u != nil {
		if i := slices.Index(u.sessions, s); i >= 0 {
			u.sessions = slices.Delete(u.sessions, i, i+1)
		}
		if len(u.sessions) == 0 {
			u.unsubscribe()
			delete(p.users, s.user.ID)
		}
	}
}

// room returns the room of a guild, creating it (and subscribing) from state. A
// fresh room waits for a cut (see prepare) before it checks its events for gaps.
func (p *pump) room(state *guildhall.GuildState, fresh bool) *room {
	if r := p.rooms[state.Guild.ID]; r != nil {
		return r
	}
	r := &room{id: state.Guild.ID, state: *state, lastSeq: p.w, fresh: fresh}
	r.recent.from = p.w
	r.mark = lossMark{reconnects: p.nc.Stats().Reconnects} // nothing dropped yet
	for _, subj := range []string{ghnats.GuildEventSubject(uint64(r.id)), ghnats.EphemeralGuildSubject(uint64(r.id))} {
		sub, err := p.nc.ChanSubscribe(subj, p.in)
		if err != nil {
			// Only a closed connection fails here; the gateway is shutting down.
			p.log.Error("subscribe", "subject", subj, "err", err)
			continue
		}
		r.subs = append(r.subs, sub)
	}
	p.rooms[r.id] = r
	p.metrics.GuildSubscriptions.Inc()
	if !fresh {
		// Joined without a cut (a user event): events stored after the watermark but
		// before this subscription reached the stream's server would only show as a
		// gap at the guild's next event. Look once the subscription is surely in
		// place, so a quiet guild is not left behind.
		p.startCheck(r)
	}
	return r
}

func (p *pump) dropIfEmpty(r *room) {
	if len(r.members) > 0 || r.pending > 0 {
		return
	}
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	delete(p.rooms, r.id)
	p.metrics.GuildSubscriptions.Dec()
}

func (p *pump) joinUser(s *Session) {
	u := p.users[s.user.ID]
	if u == nil {
		u = &userRoom{}
		sub, err := p.nc.ChanSubscribe(ghnats.UserEventSubject(uint64(s.user.ID)), p.in)
		if err != nil {
			p.log.Error("subscribe user", "err", err)
		}
		u.sub = sub
		if u.typing, err = p.nc.ChanSubscribe(ghnats.EphemeralUserSubject(uint64(s.user.ID)), p.in); err != nil {
			p.log.Error("subscribe user typing", "err", err)
		}
		p.users[s.user.ID] = u
	}
	u.sessions = append(u.sessions, s)
}
