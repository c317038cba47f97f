package gateway

import (
	"bytes"
	"encoding/json"
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
	// channelJSON caches each channel's encoding for GUILD_CREATE, so that a
	// large guild's channels are encoded once rather than once per session
	// that joins; a channel's entry goes when it changes.
	channelJSON map[guildhall.Snowflake][]byte

	// recent lets a resume replay from memory instead of the stream.
	recent recentEvents
	// catchUp is set while the room waits for what it missed: events NATS lost,
	// or its state (see gapfill.go). Nil when the room is up to date as far as it
	// knows.
	catchUp *catchUp
	// joinedAt is the highest sequence a member joined at: an event up to it (a
	// refilled one) is not for every member (see deliverSince).
	joinedAt uint64
	// notes are the newest membership change of each user seen in the room's
	// events, for sessions that attach at a cut with a membership the api read
	// before it (join.go); bounded by maxNotes, and complete for events after
	// notesCleared.
	notes        map[guildhall.Snowflake]memberNote
	notesCleared uint64
}

type roomMember struct {
	s *Session
	m *membership
	// from is the sequence the session joined the room at: its READY, its
	// resume's replay or its GUILD_CREATE covered every event up to it.
	from uint64
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

// setState replaces the room's state (a refresh), keeping the member count it
// counted, which may be newer.
func (r *room) setState(st guildhall.GuildState) {
	st.Guild.MemberCount = max(st.Guild.MemberCount, r.state.Guild.MemberCount)
	r.state = st
	r.channelJSON = nil
	r.invalidate()
}

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

// guildCreate is the GUILD_CREATE payload for member self (its guild id unset,
// as Discord's members list in GUILD_CREATE has it), with the channels self may
// view in their cached encoding.
func (r *room) guildCreate(self guildhall.Member, presenceCount int) []byte {
	self.GuildID = 0
	gc := r.state.CreatePayload(self)
	gc.ApproximatePresenceCount = presenceCount
	visible := gc.Channels
	gc.Channels = []guildhall.Channel{}
	shell, err := json.Marshal(gc)
	if err != nil {
		return nil
	}
	// Encoded strings escape their quotes: this is the field itself.
	before, after, _ := bytes.Cut(shell, []byte(`"channels":[]`))
	if r.channelJSON == nil {
		r.channelJSON = map[guildhall.Snowflake][]byte{}
	}
	b := make([]byte, 0, len(shell)+512*len(visible))
	b = append(b, before...)
	b = append(b, `"channels":[`...)
	for i, ch := range visible {
		cj, ok := r.channelJSON[ch.ID]
		if !ok {
			cj, _ = json.Marshal(ch)
			r.channelJSON[ch.ID] = cj
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, cj...)
	}
	b = append(b, ']')
	return append(b, after...)
}

// add makes s a member, joined at sequence from.
func (r *room) add(s *Session, m *membership, from uint64) {
	m.index = len(r.members)
	r.members = append(r.members, roomMember{s: s, m: m, from: from})
	r.joinedAt = max(r.joinedAt, from)
}

// remove takes a member out of the room, ending the room's hold on its frames.
func (r *room) remove(m *membership) {
	last := len(r.members) - 1
	i := m.index
	if i < 0 || i > last || r.members[i].m != m {
		return
	}
	if m.held {
		m.held = false
		r.members[i].s.out.release()
	}
	r.members[i] = r.members[last]
	r.members[i].m.index = i
	r.members[last] = roomMember{}
	r.members = r.members[:last]
	m.index = -1
}
