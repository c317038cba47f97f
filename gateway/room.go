package gateway

import (
	"slices"
	"strings"

	guildhall "github.com/guildhall/guildhall"
	natsgo "github.com/nats-io/nats.go"
)

// room is what one gateway knows of one guild that has local sessions: the guild's
// state (kept current by its events), the local members' sessions, and the last
// stream sequence applied. Only the pump goroutine touches a room.
type room struct {
	id      guildhall.Snowflake
	state   guildhall.GuildState
	members []roomMember
	lastSeq uint64
	// fresh: created for sessions that have not attached yet; its events are not
	// checked for gaps until the cut that attaches them (see pump.prepare).
	fresh bool
	// pending counts sessions between prepare and attach; the room stays while any.
	pending int
	subs    []*natsgo.Subscription // the guild's event subject and its ephemeral one
	// view caches, per channel, which role sets may view it; dropped whenever
	// channels, roles or the guild change.
	view map[guildhall.Snowflake]*channelView

	// recent lets a resume replay from memory instead of the stream.
	recent recentEvents
	// notes are the newest membership change of each user seen in the room's
	// events, for sessions that attach at a cut with a membership the api read
	// before it (join.go); bounded by maxNotes, and complete for events after
	// notesCleared.
	notes        map[guildhall.Snowflake]memberNote
	notesCleared uint64
	// vouched: NATS has lost none of the guild's events unnoticed as long as the
	// loss counters still read mark (see pump.covers); set at the room's first cut,
	// or by checkRoom.
	vouched bool
	mark    lossMark
	checks  int // checkRoom calls in flight
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

// allows reports whether member m (user uid) has every permission of want in
// the channel (0: guild-wide), computed in full: for the rare events that
// require more than viewing (Event.Requires).
func (r *room) allows(channel, uid guildhall.Snowflake, m *membership, want guildhall.Permissions) bool {
	p := guildhall.BasePermissions(r.state.Guild, r.state.Roles, m.roles, uid)
	if channel != 0 {
		ch, ok := r.state.Channel(channel)
		if !ok {
			return false
		}
		p = guildhall.ChannelPermissions(p, r.state.Guild.ID, ch, m.roles, uid)
		want |= guildhall.PermViewChannel
	}
	return p.Has(want)
}

// memberNote is a membership as an event of the room left it.
type memberNote struct {
	seq   uint64
	roles []guildhall.Snowflake
	gone  bool // removed, banned
}

// maxNotes bounds a room's notes; past it they start over.
const maxNotes = 1024

// note records the membership an event at seq left for user.
func (r *room) note(seq uint64, user guildhall.Snowflake, roles []guildhall.Snowflake, gone bool) {
	if r.notes == nil {
		r.notes = map[guildhall.Snowflake]memberNote{}
	}
	if _, ok := r.notes[user]; !ok && len(r.notes) >= maxNotes {
		clear(r.notes)
		r.notesCleared = seq - 1
	}
	r.notes[user] = memberNote{seq: seq, roles: roles, gone: gone}
}

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
