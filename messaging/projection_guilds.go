package messaging

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// The projection's guilds and memberships (projection.go says how they are
// loaded and kept current).

// projGuild is one guild held.
type projGuild struct {
	id guildhall.Snowflake
	// state's Channels and Roles are shared with requests: replaced, never
	// changed in place.
	state guildhall.GuildState
	// deleted: GUILD_DELETE was applied (or the store no longer has it).
	deleted bool
	// refreshAt is when the guild is next read again from the store.
	refreshAt time.Time
	// memberGen moves with every membership or ban event of the guild: a store
	// read that raced one is used but not kept.
	memberGen uint64
	members   map[guildhall.Snowflake]*list.Element // user → *projMember in projection.members
	messages  map[guildhall.Snowflake]*list.Element // message → *projMessage in projection.messages
	elem      *list.Element                         // in projection.lru
}

// guildView is what a request reads of a guild: its slices are shared and
// must not be changed.
type guildView struct {
	Guild    guildhall.Guild
	Channels []guildhall.Channel
	Roles    []guildhall.Role
}

func (g *projGuild) view() guildView {
	return guildView{Guild: g.state.Guild, Channels: g.state.Channels, Roles: g.state.Roles}
}

// channel returns one of the view's channels.
func (v guildView) channel(id guildhall.Snowflake) (guildhall.Channel, bool) {
	for _, c := range v.Channels {
		if c.ID == id {
			return c, true
		}
	}
	return guildhall.Channel{}, false
}

// projMember is what is known of one user in one guild. A zero time means not
// known.
type projMember struct {
	guild    *projGuild
	user     guildhall.Snowflake
	member   *guildhall.Member // nil: not a member
	memberAt time.Time
	banned   bool
	banAt    time.Time
}

// guildLoad is a guild being read from the store, with the guild's events the
// consumer delivered meanwhile.
type guildLoad struct {
	events   []guildhall.Event
	overflow bool
	done     chan struct{}
	err      error
}

func (l *guildLoad) keep(ev guildhall.Event) {
	if len(l.events) >= maxLoadEvents {
		l.overflow = true
		return
	}
	l.events = append(l.events, ev)
}

// apply changes a held guild with one of its events, in stream order; ids
// are the messages a message event is about.
func (p *projection) apply(g *projGuild, ev guildhall.Event, ids messageIDs) {
	switch ev.Type {
	case guildhall.EventMessageCreate, guildhall.EventMessageUpdate:
		p.noteMessage(g, ev, ids)
	case guildhall.EventMessageDelete, guildhall.EventMessageDeleteBulk:
		p.noteDeleted(g, ev, ids)
	case guildhall.EventChannelPinsUpdate:
		p.notePin(g, ev)
	case guildhall.EventMessageReactionAdd, guildhall.EventMessageReactionRemove,
		guildhall.EventMessageReactionRemoveAll, guildhall.EventMessageReactionRemoveEmoji:
		p.noteReaction(g, ev, ids)
	}
	if !stateEvent(ev.Type) {
		if ev.ChannelID != 0 && p.channels[ev.ChannelID] != g && !g.deleted {
			// A channel the guild lacks: a change whose event was never
			// published. Read the guild again when next used.
			g.refreshAt = time.Time{}
		}
		return
	}
	before := g.state.Channels
	switch ev.Type {
	case guildhall.EventChannelCreate, guildhall.EventChannelUpdate, guildhall.EventChannelDelete,
		guildhall.EventGuildRoleCreate, guildhall.EventGuildRoleUpdate, guildhall.EventGuildRoleDelete:
		// Requests may hold the current slices: change copies.
		g.state.Channels = slices.Clone(g.state.Channels)
		g.state.Roles = slices.Clone(g.state.Roles)
	}
	c := g.state.Apply(ev)
	if c.Access {
		p.index(g, before)
	}
	now := time.Now()
	if c.Member != nil {
		m := *c.Member
		e := p.memberEntry(g, m.User.ID, true)
		e.member, e.memberAt = &m, now
		g.memberGen++
	}
	if c.Removed != 0 {
		e := p.memberEntry(g, c.Removed, true)
		e.member, e.memberAt = nil, now
		g.memberGen++
	}
	if c.Banned != 0 || c.Unbanned != 0 {
		e := p.memberEntry(g, c.Banned|c.Unbanned, true)
		e.banned, e.banAt = c.Banned != 0, now
		g.memberGen++
	}
	if c.Deleted {
		p.forgetContents(g)
		g.deleted = true
	}
	if c.Unknown {
		g.refreshAt = time.Time{}
	}
}

// index points the channel index at g's channels, of which before were the
// ones it had.
func (p *projection) index(g *projGuild, before []guildhall.Channel) {
	for _, c := range before {
		if p.channels[c.ID] == g {
			delete(p.channels, c.ID)
		}
	}
	if g.deleted {
		return
	}
	for _, c := range g.state.Channels {
		p.channels[c.ID] = g
	}
}

// guild returns a view of a guild once the projection is fresh: from memory,
// or read from the store (one load per guild at a time). ErrUnknownGuild when
// there is no such guild; errNotProjected when the projection cannot answer;
// errStoreUnavailable when the guild is not held and the store is down.
func (p *projection) guild(ctx context.Context, id guildhall.Snowflake) (guildView, error) {
	if err := p.await(ctx); err != nil {
		return guildView{}, err
	}
	return p.held(ctx, id)
}

// held is guild without the wait for freshness.
func (p *projection) held(ctx context.Context, id guildhall.Snowflake) (guildView, error) {
	for range 3 {
		p.mu.Lock()
		if !p.running {
			p.mu.Unlock()
			return guildView{}, errNotProjected
		}
		if g := p.guilds[id]; g != nil {
			p.lru.MoveToFront(g.elem)
			if g.deleted {
				p.mu.Unlock()
				return guildView{}, guildhall.ErrUnknownGuild
			}
			v := g.view()
			if now := time.Now(); now.After(g.refreshAt) && p.loads[id] == nil {
				// Due for a refresh: read it again in the background, and
				// answer from what is held meanwhile.
				g.refreshAt = now.Add(p.cfg.Wait + 10*time.Second)
				l := p.beginLoad(id)
				epoch := p.epoch
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					p.load(ctx, id, l, epoch)
				}()
			}
			p.mu.Unlock()
			return v, nil
		}
		l, owner := p.loads[id], false
		if l == nil {
			l, owner = p.beginLoad(id), true
		}
		epoch := p.epoch
		p.mu.Unlock()
		if owner {
			p.load(ctx, id, l, epoch)
		} else {
			select {
			case <-l.done:
			case <-ctx.Done():
				return guildView{}, ctx.Err()
			}
		}
		if l.err != nil && !errors.Is(l.err, context.Canceled) && !errors.Is(l.err, context.DeadlineExceeded) {
			return guildView{}, l.err
		}
		if err := ctx.Err(); err != nil {
			return guildView{}, err
		}
		// Installed (or the owner's request went away): look again.
	}
	return guildView{}, errNotProjected
}

// beginLoad registers a load of guild id: from now on the consumer keeps the
// guild's events for it.
func (p *projection) beginLoad(id guildhall.Snowflake) *guildLoad {
	l := &guildLoad{done: make(chan struct{})}
	p.loads[id] = l
	return l
}

// load reads guild id from the store and installs it with the events kept
// meanwhile applied (see projection.go for why this is exact).
func (p *projection) load(ctx context.Context, id guildhall.Snowflake, l *guildLoad, epoch uint64) {
	st, err := p.readGuild(ctx, id)
	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(l.done)
	if p.loads[id] == l {
		delete(p.loads, id)
	}
	g := p.guilds[id]
	switch {
	case errors.Is(err, guildhall.ErrUnknownGuild):
		if g != nil {
			p.forgetContents(g)
			g.deleted = true
		}
		l.err = err
		return
	case err != nil:
		if g != nil {
			// Try again in a while; meanwhile the events keep it current.
			g.refreshAt = time.Now().Add(10 * time.Second)
		}
		l.err = err
		return
	case l.overflow || epoch != p.epoch || !p.running:
		l.err = errNotProjected
		return
	}
	deleted := false
	for _, ev := range l.events {
		if st.Apply(ev).Deleted {
			deleted = true
		}
	}
	if g == nil {
		g = &projGuild{id: id, members: map[guildhall.Snowflake]*list.Element{}, messages: map[guildhall.Snowflake]*list.Element{}}
		g.elem = p.lru.PushFront(g)
		p.guilds[id] = g
		for p.lru.Len() > p.cfg.Guilds {
			p.dropGuild(p.lru.Back().Value.(*projGuild))
		}
		p.metrics.ProjectionGuilds.Set(float64(len(p.guilds)))
	}
	before := g.state.Channels
	g.state, g.refreshAt = st, time.Now().Add(p.cfg.Refresh)
	if deleted {
		p.forgetContents(g)
	}
	g.deleted = deleted
	p.index(g, before)
}

// readGuild reads a guild's state from the store.
func (p *projection) readGuild(ctx context.Context, id guildhall.Snowflake) (guildhall.GuildState, error) {
	g, err := p.store.Guild(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return guildhall.GuildState{}, guildhall.ErrUnknownGuild
	}
	if err != nil {
		return guildhall.GuildState{}, p.storeErr("guild", err)
	}
	chs, err := p.store.Channels(ctx, id)
	if err != nil {
		return guildhall.GuildState{}, p.storeErr("channels", err)
	}
	roles, err := p.store.Roles(ctx, id)
	if err != nil {
		return guildhall.GuildState{}, p.storeErr("roles", err)
	}
	return guildhall.GuildState{Guild: g, Channels: chs, Roles: roles}, nil
}

// dropGuild stops holding a guild.
func (p *projection) dropGuild(g *projGuild) {
	p.forgetContents(g)
	for _, c := range g.state.Channels {
		if p.channels[c.ID] == g {
			delete(p.channels, c.ID)
		}
	}
	p.lru.Remove(g.elem)
	delete(p.guilds, g.id)
	p.metrics.ProjectionGuilds.Set(float64(len(p.guilds)))
}

// forgetContents drops a guild's memberships and messages.
func (p *projection) forgetContents(g *projGuild) {
	for _, e := range g.members {
		p.members.Remove(e)
	}
	clear(g.members)
	for _, e := range g.messages {
		p.messages.Remove(e)
	}
	clear(g.messages)
	p.metrics.ProjectionMembers.Set(float64(p.members.Len()))
}

// memberEntry returns the entry of user in g, made if create (the least
// recently used entry across guilds goes when there are too many).
func (p *projection) memberEntry(g *projGuild, user guildhall.Snowflake, create bool) *projMember {
	if e := g.members[user]; e != nil {
		p.members.MoveToFront(e)
		return e.Value.(*projMember)
	}
	if !create {
		return nil
	}
	m := &projMember{guild: g, user: user}
	g.members[user] = p.members.PushFront(m)
	for p.members.Len() > p.cfg.Members {
		last := p.members.Back()
		old := last.Value.(*projMember)
		delete(old.guild.members, old.user)
		p.members.Remove(last)
	}
	p.metrics.ProjectionMembers.Set(float64(p.members.Len()))
	return m
}

// member answers whether user is a member of held guild id, and as what:
// from memory, or from the store (and then kept). errNotProjected when the
// guild is not held or the projection is not fresh.
func (p *projection) member(ctx context.Context, id, user guildhall.Snowflake, read func(context.Context) (guildhall.Member, error)) (guildhall.Member, bool, error) {
	p.mu.Lock()
	g := p.guilds[id]
	if g == nil || g.deleted || !p.usableLocked(time.Now()) {
		p.mu.Unlock()
		return guildhall.Member{}, false, errNotProjected
	}
	var stale *projMember
	if e := p.memberEntry(g, user, false); e != nil && !e.memberAt.IsZero() {
		c := *e
		if time.Since(e.memberAt) < p.cfg.Refresh {
			p.mu.Unlock()
			return c.value()
		}
		stale = &c
	}
	gen := g.memberGen
	p.mu.Unlock()

	m, err := read(ctx)
	isMember := err == nil
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		if stale != nil && p.unavailable(err) {
			return stale.value()
		}
		return guildhall.Member{}, false, p.storeErr("member", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.guilds[id] == g && g.memberGen == gen {
		e := p.memberEntry(g, user, true)
		e.member, e.memberAt = nil, time.Now()
		if isMember {
			e.member = &m
		}
	}
	return m, isMember, nil
}

func (e *projMember) value() (guildhall.Member, bool, error) {
	if e.member == nil {
		return guildhall.Member{}, false, nil
	}
	return *e.member, true, nil
}

// banned answers whether user is banned from held guild id, like member.
func (p *projection) banned(ctx context.Context, id, user guildhall.Snowflake, read func(context.Context) (bool, error)) (bool, error) {
	p.mu.Lock()
	g := p.guilds[id]
	if g == nil || g.deleted || !p.usableLocked(time.Now()) {
		p.mu.Unlock()
		return false, errNotProjected
	}
	var stale *bool
	if e := p.memberEntry(g, user, false); e != nil && !e.banAt.IsZero() {
		b := e.banned
		if time.Since(e.banAt) < p.cfg.Refresh {
			p.mu.Unlock()
			return b, nil
		}
		stale = &b
	}
	gen := g.memberGen
	p.mu.Unlock()

	b, err := read(ctx)
	if err != nil {
		if stale != nil && p.unavailable(err) {
			return *stale, nil
		}
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.guilds[id] == g && g.memberGen == gen {
		e := p.memberEntry(g, user, true)
		e.banned, e.banAt = b, time.Now()
	}
	return b, nil
}

// channel finds a channel and its guild once the projection is fresh: from
// the channel index when its guild is held, else from the store (which names
// the guild to load). errNotProjected when the store knows a channel the
// guild held lacks: the projection is behind, the store answers.
func (p *projection) channel(ctx context.Context, id guildhall.Snowflake) (guildView, guildhall.Channel, error) {
	if err := p.await(ctx); err != nil {
		return guildView{}, guildhall.Channel{}, err
	}
	p.mu.Lock()
	var guildID guildhall.Snowflake
	if g := p.channels[id]; g != nil {
		guildID = g.id
	}
	p.mu.Unlock()
	if guildID == 0 {
		ch, err := p.store.Channel(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return guildView{}, guildhall.Channel{}, guildhall.ErrUnknownChannel
		}
		if err != nil {
			return guildView{}, guildhall.Channel{}, p.storeErr("channel", err)
		}
		guildID = ch.GuildID
	}
	v, err := p.held(ctx, guildID)
	if errors.Is(err, guildhall.ErrUnknownGuild) {
		return guildView{}, guildhall.Channel{}, guildhall.ErrUnknownChannel
	}
	if err != nil {
		return guildView{}, guildhall.Channel{}, err
	}
	ch, ok := v.channel(id)
	if !ok {
		return guildView{}, guildhall.Channel{}, errNotProjected
	}
	return v, ch, nil
}
