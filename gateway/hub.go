package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Hub is the fan-out path of one gateway. It holds one NATS subscription per guild
// that has at least one local session (two, counting the guild's ephemeral subject)
// and one per local user, taken when the first local session needs it and dropped
// when the last one leaves.
//
// Every subscription delivers into one bounded channel read by one goroutine, the
// pump, in the order the messages arrive. The stream re-publishes events in stream
// order, so the pump sees each guild's events in order and can stamp each frame
// with a sequence that only grows: the pump's watermark, which is the stream
// sequence of the newest event it has handled. That is the s every session gets,
// and what a resume replays after. The pump owns every room; nothing on the
// fan-out path takes a lock shared by sessions beyond each session's own outbox.
//
// A gap in a guild's events (Nats-Last-Sequence ahead of what the room applied:
// NATS dropped messages for a slow pump, or a fresh subscription was not yet in
// place) is filled from the stream before the pump goes on. If it cannot be, the
// room's sessions are asked to reconnect, and their resume replays the stream.
type Hub struct {
	gw     *Gateway
	nc     *natsgo.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// tickForNode names this gateway's ticks: the api publishes them for cut,
	// and the stream re-publishes them to this gateway alone.
	tickForNode string
	tickSub     *natsgo.Subscription

	in      chan *natsgo.Msg
	cmds    chan func()
	stopped chan struct{} // closed when the pump has returned

	// Owned by the pump.
	rooms   map[guildhall.Snowflake]*room
	users   map[guildhall.Snowflake]*userRoom
	w       uint64
	waiters []waiter

	watermark atomic.Uint64 // w, for readers outside the pump
	nRooms    atomic.Int64

	// presence is the gateway's presence state (presence.go); not the pump's.
	presence gatewayPresence
}

// waiter runs in the pump once the watermark reaches seq.
type waiter struct {
	seq uint64
	run func()
}

// userRoom is the local sessions of one user, for user events.
type userRoom struct {
	sessions []*Session
	sub      *natsgo.Subscription
}

func newHub(gw *Gateway, nc *natsgo.Conn, js jetstream.JetStream, stream jetstream.Stream, node string, inbox int) (*Hub, error) {
	h := &Hub{
		gw:          gw,
		nc:          nc,
		js:          js,
		stream:      stream,
		tickForNode: node,
		in:          make(chan *natsgo.Msg, inbox),
		cmds:        make(chan func(), 1024),
		stopped:     make(chan struct{}),
		rooms:       map[guildhall.Snowflake]*room{},
		users:       map[guildhall.Snowflake]*userRoom{},
	}
	sub, err := nc.ChanSubscribe(ghnats.TickEventSubject(node), h.in)
	if err != nil {
		return nil, err
	}
	h.tickSub = sub
	return h, nil
}

func (h *Hub) run(ctx context.Context) {
	defer close(h.stopped)
	for {
		select {
		case m := <-h.in:
			h.handle(m)
		case f := <-h.cmds:
			f()
		case <-ctx.Done():
			return
		}
	}
}

// do runs f in the pump, between two events, and waits for it.
// post queues f for the pump without waiting for it; false if the pump stopped.
func (h *Hub) post(f func()) bool {
	select {
	case h.cmds <- f:
		return true
	case <-h.stopped:
		return false
	}
}

// After the pump has stopped (the gateway closed) f is dropped: nothing is left to
// keep consistent, and a connection closing late must not hang on it.
func (h *Hub) do(f func()) {
	done := make(chan struct{})
	select {
	case h.cmds <- func() { f(); close(done) }:
	case <-h.stopped:
		return
	}
	select {
	case <-done:
	case <-h.stopped:
	}
}

// Joining a session happens at a consistent cut of the stream, so that one s can
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

// prepare makes sure the rooms of states exist and keeps them until attach or
// abort.
func (h *Hub) prepare(states []guildhall.GuildState) []*room {
	rooms := make([]*room, len(states))
	for i := range states {
		r := h.room(&states[i], true)
		r.pending++
		rooms[i] = r
	}
	return rooms
}

// abort gives back rooms taken by prepare when the session will not attach.
func (h *Hub) abort(rooms []*room) {
	for _, r := range rooms {
		r.pending--
		h.dropIfEmpty(r)
	}
}

// cut publishes a tick and returns once the pump has handled it, with f run in
// the pump at that moment.
func (h *Hub) cut(ctx context.Context, f func()) error {
	seq, err := h.gw.api.tick(ctx, h.tickForNode)
	if err != nil {
		return fmt.Errorf("gateway: tick: %w", err)
	}
	done := make(chan struct{})
	if !h.post(func() {
		h.waiters = append(h.waiters, waiter{seq: seq, run: func() { f(); close(done) }})
		h.releaseWaiters()
	}) {
		return errors.New("gateway: closed")
	}
	select {
	case <-done:
		return nil
	case <-h.stopped:
		return errors.New("gateway: closed")
	case <-ctx.Done():
		// f will still run in the pump when the tick arrives; callers make it
		// harmless for a session that has gone.
		return ctx.Err()
	}
}

// attach puts a session into rooms taken by prepare (Members[i] belongs to
// rooms[i]) and into its user room. It runs in the pump at a cut and returns the
// watermark the session starts at.
func (h *Hub) attach(s *Session, rooms []*room, members []guildhall.Member) uint64 {
	s.guilds = make(map[guildhall.Snowflake]*membership, len(rooms))
	for i, r := range rooms {
		r.pending--
		if r.fresh {
			// Every event of this guild that reached the pump is before the cut;
			// what did not reach it was stored before the subscription was in place.
			// From here on the room has every event, unless its loss counters move
			// (they were read before it subscribed).
			r.fresh = false
			r.lastSeq = max(r.lastSeq, h.w)
			r.recent.restartAfter(h.w)
			r.vouched = true
		}
		m := &membership{roles: members[i].Roles, roleKey: roleKey(members[i].Roles)}
		s.guilds[r.id] = m
		r.add(s, m)
	}
	h.joinUser(s)
	return h.w
}

func (h *Hub) advance(seq uint64) {
	if seq > h.w {
		h.w = seq
		h.watermark.Store(seq)
		if len(h.waiters) > 0 {
			h.releaseWaiters()
		}
	}
}

func (h *Hub) releaseWaiters() {
	kept := h.waiters[:0]
	for _, w := range h.waiters {
		if w.seq <= h.w {
			w.run()
		} else {
			kept = append(kept, w)
		}
	}
	clear(h.waiters[len(kept):])
	h.waiters = kept
}

// leave takes a session out of every room; empty rooms are dropped.
func (h *Hub) leave(s *Session) {
	for id, m := range s.guilds {
		if r := h.rooms[id]; r != nil {
			r.remove(m)
			h.dropIfEmpty(r)
		}
	}
	s.guilds = nil
	if u := h.users[s.user.ID]; u != nil {
		for i, x := range u.sessions {
			if x == s {
				u.sessions = append(u.sessions[:i], u.sessions[i+1:]...)
				break
			}
		}
		if len(u.sessions) == 0 {
			_ = u.sub.Unsubscribe()
			delete(h.users, s.user.ID)
		}
	}
}

// room returns the room of a guild, creating it (and subscribing) from state. A
// fresh room waits for a cut (see prepare) before it checks its events for gaps.
func (h *Hub) room(state *guildhall.GuildState, fresh bool) *room {
	if r := h.rooms[state.Guild.ID]; r != nil {
		return r
	}
	r := &room{id: state.Guild.ID, state: *state, lastSeq: h.w, fresh: fresh}
	r.recent.from = h.w
	r.mark = lossMark{reconnects: h.nc.Stats().Reconnects} // nothing dropped yet
	for _, subj := range []string{ghnats.GuildEventSubject(uint64(r.id)), ghnats.EphemeralGuildSubject(uint64(r.id))} {
		sub, err := h.nc.ChanSubscribe(subj, h.in)
		if err != nil {
			// Only a closed connection fails here; the gateway is shutting down.
			slog.Error("subscribe", "subject", subj, "err", err)
			continue
		}
		r.subs = append(r.subs, sub)
	}
	h.rooms[r.id] = r
	h.nRooms.Add(1)
	metricRooms.Inc()
	if !fresh {
		// Joined without a cut (a user event): events stored after the watermark but
		// before this subscription reached the stream's server would only show as a
		// gap at the guild's next event. Look once the subscription is surely in
		// place, so a quiet guild is not left behind.
		h.startCheck(r)
	}
	return r
}

func (h *Hub) dropIfEmpty(r *room) {
	if len(r.members) > 0 || r.pending > 0 {
		return
	}
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	delete(h.rooms, r.id)
	h.nRooms.Add(-1)
	metricRooms.Dec()
}

func (h *Hub) joinUser(s *Session) {
	u := h.users[s.user.ID]
	if u == nil {
		u = &userRoom{}
		sub, err := h.nc.ChanSubscribe(ghnats.UserEventSubject(uint64(s.user.ID)), h.in)
		if err != nil {
			slog.Error("subscribe user", "err", err)
		}
		u.sub = sub
		h.users[s.user.ID] = u
	}
	u.sessions = append(u.sessions, s)
}

// lossMark is what moves when NATS loses a room's events without the pump seeing a
// gap yet (it sees one only at the guild's next event): drops on the room's
// subscriptions (inbox full), and reconnects (nats.go counts one before it resends
// anything, so before any later tick can reach the pump).
type lossMark struct {
	dropped    int
	reconnects uint64
}

func (h *Hub) lossMark(r *room) (lossMark, bool) {
	m := lossMark{reconnects: h.nc.Stats().Reconnects}
	for _, sub := range r.subs {
		n, err := sub.Dropped()
		if err != nil {
			return m, false
		}
		m.dropped += n
	}
	return m, true
}

// covers reports whether r's recent events hold every event of the guild after
// seq up to the watermark. A room nobody vouches for now gets a check and answers
// no: the stream replay is always right.
func (h *Hub) covers(r *room, seq uint64) bool {
	if r.fresh || r.recent.from > seq {
		return false
	}
	if r.vouched {
		if m, ok := h.lossMark(r); ok && m == r.mark {
			return true
		}
		r.vouched = false
	}
	if r.checks == 0 {
		h.startCheck(r)
	}
	return false
}

// startCheck runs checkRoom on r with the loss counters read first: once the check
// has caught the room up with the stream, a later loss moves them.
func (h *Hub) startCheck(r *room) {
	mark, ok := h.lossMark(r)
	r.checks++
	go h.checkRoom(r, mark, ok)
}

// checkRoom fills a room's gap, if any, against the stream's last event of the
// guild: used where the next event might be long in coming (a new subscription, a
// NATS reconnect during which core messages were lost, a drop seen by covers).
// Once filled, the room is vouched for as of mark.
func (h *Hub) checkRoom(r *room, mark lossMark, markOK bool) {
	last, ok := h.lastGuildSeq(r.id)
	h.post(func() {
		r.checks--
		if h.rooms[r.id] != r || r.fresh || !ok {
			return // gone, not attached yet, or NATS is away: the next event shows any gap
		}
		if last > r.lastSeq {
			h.fill(r, last+1)
		}
		if markOK {
			r.vouched, r.mark = true, mark
		}
	})
}

// lastGuildSeq is the stream sequence of the guild's last event (0: none yet), read
// once this connection's subscriptions are surely in place on the server.
func (h *Hub) lastGuildSeq(id guildhall.Snowflake) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.nc.FlushWithContext(ctx); err != nil {
		return 0, false
	}
	msg, err := h.stream.GetLastMsgForSubject(ctx, ghnats.GuildInSubject(uint64(id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	return msg.Sequence, true
}

// reconnected runs after the NATS connection came back: events re-published while
// it was away are lost to this gateway, so every room checks the stream.
func (h *Hub) reconnected() {
	h.post(func() {
		for _, r := range h.rooms {
			h.startCheck(r)
		}
	})
}

// handle routes one message from a subscription.
func (h *Hub) handle(m *natsgo.Msg) {
	kind, id, ok := parseSubject(m.Subject)
	if !ok {
		return
	}
	if kind == "eph" {
		// The api's typing and presence, published as they are: never anything
		// JetStream sent (a stream's answer aimed here) or of another guild.
		if r := h.rooms[id]; r != nil && m.Header.Get(jetstream.StreamHeader) == "" {
			if ev := ghnats.DecodeEvent(m.Header, m.Data); ev.GuildID == id && ev.Type != "" {
				h.deliver(r, ev, newDispatch(ev, h.w))
			}
		}
		return
	}
	// Only what the stream re-published for this subject carries a sequence the
	// pump may believe.
	seq, last, ok := ghnats.RePublished(m.Subject, m.Header)
	if !ok {
		metricForeign.Inc()
		return
	}
	switch kind {
	case "t":
		h.advance(seq)
	case "g":
		r := h.rooms[id]
		if r == nil {
			return // the room was dropped; this was in flight
		}
		if seq <= r.lastSeq {
			return // already applied (a fill got it first)
		}
		if last > r.lastSeq && !r.fresh {
			h.fill(r, seq)
		}
		h.apply(r, seq, ghnats.DecodeEvent(m.Header, m.Data))
	case "u":
		if u := h.users[id]; u != nil {
			h.applyUser(u, seq, ghnats.DecodeEvent(m.Header, m.Data))
		}
	}
}

// fill applies the room's events from the stream that came after r.lastSeq and
// before seq, in order.
func (h *Hub) fill(r *room, before uint64) {
	metricGapFills.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subject := ghnats.GuildInSubject(uint64(r.id))
	next := r.lastSeq + 1
	for next < before {
		msg, err := h.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			r.recent.restartAfter(before - 1) // gone from the stream: not ours to vouch for
			return
		}
		if err != nil {
			slog.Error("gap fill failed; asking the room's sessions to resume", "guild", r.id, "err", err)
			r.recent.restartAfter(before - 1) // the gap stays in the room's recent events
			h.reconnectRoom(r)
			return
		}
		if msg.Sequence >= before {
			return
		}
		h.apply(r, msg.Sequence, ghnats.DecodeEvent(natsgo.Header(msg.Header), msg.Data))
		next = msg.Sequence + 1
	}
}

// reconnectRoom asks every session of a room to reconnect and resume: used when the
// gateway cannot tell what it missed, so that the stream replay fills it instead.
func (h *Hub) reconnectRoom(r *room) {
	f := opFrame(OpReconnect, []byte("null"))
	for _, rm := range r.members {
		rm.s.send(f)
		rm.s.close(CloseUnknownError, "reconnect")
	}
}

// apply updates the room's state from a guild event and delivers it.
func (h *Hub) apply(r *room, seq uint64, ev guildhall.Event) {
	r.lastSeq = seq
	h.advance(seq)
	live := newDispatch(ev, h.w)
	kept := live
	if h.w != seq {
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
		h.deliver(r, ev, live)
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
		var p struct {
			Role guildhall.Role `json:"role"`
		}
		if json.Unmarshal(ev.Data, &p) == nil {
			r.setRole(p.Role)
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
		h.deliver(r, ev, live)
		var p guildhall.GuildMemberRemove
		if json.Unmarshal(ev.Data, &p) == nil {
			r.state.Guild.MemberCount--
			h.removeUser(r, p.User.ID)
		}
		return
	}
	h.deliver(r, ev, live)
}

// removeUser takes a user who left the guild out of the room and tells their
// sessions with GUILD_DELETE.
func (h *Hub) removeUser(r *room, uid guildhall.Snowflake) {
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
		gd := newDispatch(guildhall.Event{Type: guildhall.EventGuildDelete, GuildID: r.id, Data: d}, h.w)
		for _, s := range gone {
			if f := gd.frameFor(s); f != nil {
				s.send(f)
			}
		}
	}
	h.dropIfEmpty(r)
}

// deliver hands one framed event to every session of the room that may see it and
// whose intents ask for it. The frames are shared; nothing here allocates per
// recipient.
func (h *Hub) deliver(r *room, ev guildhall.Event, d *dispatch) {
	start := time.Now()
	if ev.ChannelID == 0 {
		sendAll(r.members, d)
	} else {
		v, ok := r.channelView(ev.ChannelID)
		if !ok {
			h.refresh(r)
			if v, ok = r.channelView(ev.ChannelID); !ok {
				return // the channel is gone: nobody may see it
			}
		}
		if v.everyone {
			sendAll(r.members, d)
		} else {
			// canView fills the view's cache: one goroutine only.
			for _, rm := range r.members {
				if f := d.frameFor(rm.s); f != nil && r.canView(v, rm.s.user.ID, rm.m) {
					rm.s.send(f)
				}
			}
		}
	}
	metricDispatches.Add(float64(len(r.members)))
	metricFanout.Observe(time.Since(start).Seconds())
}

// refresh re-fetches a guild's state from the api: an event named a channel the
// room does not know, so the room missed a change (see messaging: the api writes
// the store before it publishes, and may die between the two).
func (h *Hub) refresh(r *room) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rep, err := h.gw.api.guild(ctx, r.id, 0)
	if err != nil {
		slog.Warn("guild refresh failed", "guild", r.id, "err", err)
		return
	}
	rep.State.Guild.MemberCount = max(rep.State.Guild.MemberCount, r.state.Guild.MemberCount)
	r.state = rep.State
	r.invalidate()
}

// applyUser handles an event for one user's sessions: today, joining a guild.
func (h *Hub) applyUser(u *userRoom, seq uint64, ev guildhall.Event) {
	h.advance(seq)
	d := newDispatch(ev, h.w)
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
			_, existed := h.rooms[gc.ID]
			r := h.room(&state, false)
			if !existed {
				// The joiner's GUILD_CREATE lists only the channels the joiner may
				// see; the room serves every local member, so take the whole state.
				h.refresh(r)
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

// parseSubject splits gh.ev.g.<id>, gh.ev.u.<id>, gh.ev.t.<node> and gh.eph.g.<id>.
func parseSubject(subj string) (kind string, id guildhall.Snowflake, ok bool) {
	if strings.HasPrefix(subj, "gh.ev.t.") {
		return "t", 0, true
	}
	i := strings.LastIndexByte(subj, '.')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(subj[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	switch {
	case strings.HasPrefix(subj, "gh.eph."):
		return "eph", guildhall.Snowflake(n), true
	case strings.HasPrefix(subj, "gh.ev.g."):
		return "g", guildhall.Snowflake(n), true
	case strings.HasPrefix(subj, "gh.ev.u."):
		return "u", guildhall.Snowflake(n), true
	case strings.HasPrefix(subj, "gh.ev.t."):
		return "t", 0, true
	}
	return "", 0, false
}
