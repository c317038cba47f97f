package gateway

import (
	"slices"
	"strings"

	guildhall "github.com/guildhall/guildhall"
	natsgo "github.com/nats-io/nats.go"
)

// room is what one gateway knows of one guild that has local sessions: the guild's
// state (kept current by its events), the local members' sessions, and the last
// stream sequence applied. Only the hub's pump goroutine touches a room.
type room struct {
	id      guildhall.Snowflake
	state   guildhall.GuildState
	members []roomMember
	lastSeq uint64
	// fresh: created for sessions that have not attached yet; its events are not
	// checked for gaps until the cut that attaches them (see Hub.prepare).
	fresh bool
	// pending counts sessions between prepare and attach; the room stays while any.
	pending int
	subs    []*natsgo.Subscription // the guild's event subject and its ephemeral one
	// view caches, per channel, which role sets may view it; dropped whenever
	// channels, roles or the guild change.
	view map[guildhall.Snowflake]*channelView

	// recent lets a resume replay from memory instead of the stream.
	recent recentEvents
	// vouched: NATS has lost none of the guild's events unnoticed as long as the
	// loss counters still read mark (see Hub.covers); set at the room's first cut,
	// or by checkRoom.
	vouched bool
	mark    lossMark
	checks  int // checkRoom calls in flight
}

// Bounds of a room's recent events. 256 events are a minute or more of a guild
// posting a few a second, longer than a reconnect storm keeps sessions away; 1 MiB
// caps what a room of big messages pins.
const (
	recentMaxEvents = 256
	recentMaxBytes  = 1 << 20
)

// recentEvent is one guild event as a resume replays it: framed with s = seq.
type recentEvent struct {
	seq     uint64
	channel guildhall.Snowflake // 0: guild-wide
	d       *dispatch
}

// recentEvents is a ring of a room's newest events in stream order. Every event
// of the guild with seq > from is in it (when the room is vouched for): evicting
// an event moves from up to it, and so does anything that may have lost events.
type recentEvents struct {
	buf   []recentEvent // grows up to recentMaxEvents
	head  int           // the oldest
	n     int
	bytes int
	from  uint64
}

func (q *recentEvents) push(e recentEvent) {
	size := len(e.d.full.wire)
	for q.n > 0 && (q.n == recentMaxEvents || q.bytes+size > recentMaxBytes) {
		q.dropOldest()
	}
	if size > recentMaxBytes {
		q.from = max(q.from, e.seq)
		return
	}
	if q.n == len(q.buf) {
		grown := make([]recentEvent, min(max(2*len(q.buf), 8), recentMaxEvents))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	q.bytes += size
}

func (q *recentEvents) dropOldest() {
	e := &q.buf[q.head]
	q.from = max(q.from, e.seq)
	q.bytes -= len(e.d.full.wire)
	*e = recentEvent{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}

// restartAfter gives up coverage of events up to seq: some may be missing.
func (q *recentEvents) restartAfter(seq uint64) { q.from = max(q.from, seq) }

// after calls f for each retained event with seq > after, in stream order.
func (q *recentEvents) after(seq uint64, f func(recentEvent)) {
	for i := range q.n {
		if e := q.buf[(q.head+i)%len(q.buf)]; e.seq > seq {
			f(e)
		}
	}
}

type roomMember struct {
	s *Session
	m *membership
}

// channelView answers "may this member view the channel" in O(1) for the common
// cases: everyone may (no per-recipient work at all), or look up the member's role
// set. Users named in member overwrites are computed one by one.
type channelView struct {
	everyone bool
	byRoles  map[string]bool
	special  map[guildhall.Snowflake]bool
	ch       guildhall.Channel
}

func roleKey(roles []guildhall.Snowflake) string {
	if len(roles) == 0 {
		return ""
	}
	r := slices.Clone(roles)
	slices.Sort(r)
	var b strings.Builder
	for _, id := range r {
		b.WriteString(id.String())
		b.WriteByte(',')
	}
	return b.String()
}

func (r *room) channelView(id guildhall.Snowflake) (*channelView, bool) {
	if v, ok := r.view[id]; ok {
		return v, true
	}
	ch, ok := r.state.Channel(id)
	if !ok {
		return nil, false
	}
	v := &channelView{byRoles: map[string]bool{}, ch: ch}
	restricted := false
	for _, o := range ch.PermissionOverwrites {
		if o.Type == guildhall.OverwriteMember {
			if v.special == nil {
				v.special = map[guildhall.Snowflake]bool{}
			}
			v.special[o.ID] = true
			restricted = true
		} else if o.Deny.Has(guildhall.PermViewChannel) {
			restricted = true
		}
	}
	// Everyone may view when @everyone may and nothing on the channel takes it away.
	if !restricted && r.everyoneViews() {
		v.everyone = true
	}
	if r.view == nil {
		r.view = map[guildhall.Snowflake]*channelView{}
	}
	r.view[id] = v
	return v, true
}

func (r *room) everyoneViews() bool {
	for _, role := range r.state.Roles {
		if role.ID == r.state.Guild.ID {
			return role.Permissions.Has(guildhall.PermViewChannel) || role.Permissions.Has(guildhall.PermAdministrator)
		}
	}
	return false
}

// mayView reports whether member m (user uid) may see an event of the channel (0:
// guild-wide, which every member sees). The fan-out looks the view up once per
// event instead.
func (r *room) mayView(channel, uid guildhall.Snowflake, m *membership) bool {
	if channel == 0 {
		return true
	}
	v, ok := r.channelView(channel)
	return ok && r.canView(v, uid, m)
}

// canView reports whether member m (user uid) may view the channel of v.
func (r *room) canView(v *channelView, uid guildhall.Snowflake, m *membership) bool {
	if v.everyone {
		return true
	}
	if v.special != nil {
		if _, ok := v.special[uid]; ok {
			return r.state.CanView(v.ch, uid, m.roles)
		}
	}
	if uid == r.state.Guild.OwnerID {
		return true
	}
	ok, cached := v.byRoles[m.roleKey]
	if !cached {
		ok = r.state.CanView(v.ch, uid, m.roles)
		v.byRoles[m.roleKey] = ok
	}
	return ok
}

func (r *room) invalidate() { r.view = nil }

func (r *room) add(s *Session, m *membership) {
	m.index = len(r.members)
	r.members = append(r.members, roomMember{s: s, m: m})
}

func (r *room) remove(m *membership) {
	last := len(r.members) - 1
	i := m.index
	if i < 0 || i > last || r.members[i].m != m {
		return
	}
	r.members[i] = r.members[last]
	r.members[i].m.index = i
	r.members[last] = roomMember{}
	r.members = r.members[:last]
	m.index = -1
}

// setChannel inserts or replaces a channel in the state.
func (r *room) setChannel(ch guildhall.Channel) {
	for i := range r.state.Channels {
		if r.state.Channels[i].ID == ch.ID {
			r.state.Channels[i] = ch
			r.invalidate()
			return
		}
	}
	r.state.Channels = append(r.state.Channels, ch)
	r.invalidate()
}

func (r *room) deleteChannel(id guildhall.Snowflake) {
	r.state.Channels = slices.DeleteFunc(r.state.Channels, func(c guildhall.Channel) bool { return c.ID == id })
	r.invalidate()
}

func (r *room) setRole(role guildhall.Role) {
	for i := range r.state.Roles {
		if r.state.Roles[i].ID == role.ID {
			r.state.Roles[i] = role
			r.invalidate()
			return
		}
	}
	r.state.Roles = append(r.state.Roles, role)
	r.invalidate()
}
