package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Presence and member lists on the gateway side (op 3 PRESENCE_UPDATE, op 8
// REQUEST_GUILD_MEMBERS, and a session's start and end). See package presence for
// the whole design; what a gateway does:
//
//   - It keeps, per local user, the local sessions, the presence the user last set
//     here, and what it last wrote to the user's key in the presence bucket; a
//     worker (one of Workers, picked by user id, so one user's writes are in order)
//     makes the key agree with that (presence.Tracker.Sync). Keys are written when
//     something changes, not to stay alive: the gateway's heartbeat key
//     (presence.Tracker.Run, every TTL/3) keeps all its users' parts alive at once.
//   - Every TTL/3 it recomputes its users' small guilds and writes the keys whose
//     guilds changed, whose last write failed, or that are older than a third of
//     the bucket's key TTL (a backstop that expires keys nobody cleaned up).
//   - It writes the user's small guilds (member count at most
//     SmallGuildThreshold) into the key; the presence Notifier announces changes
//     there. It never publishes PRESENCE_UPDATE itself: the pump delivers the
//     Notifier's on the guild's ephemeral subject like typing.
//   - Every CountInterval it counts, in the pump, the distinct visible users of
//     each room and reports them to the aggregators; their answers are the
//     approximate_presence_count of GUILD_CREATE.
//   - Op 8 runs in a goroutine per session (one request at a time, at most
//     MaxMemberRequests waiting), asks the api for pages of members over NATS and
//     writes GUILD_MEMBERS_CHUNK frames as the session's outbox drains.
//
// Lock order: the pump may take gatewayPresence.mu; nothing waits for the pump
// while holding it.

// PresenceConfig configures presence and member lists of a gateway. Zero values
// are usable defaults.
type PresenceConfig struct {
	// SmallGuildThreshold: in a guild with at most this many members, members get
	// PRESENCE_UPDATE for each other; larger guilds only get online counts. Zero
	// value means guildhall.LargeThreshold (250); negative means no guild is small.
	SmallGuildThreshold int
	// CountInterval is how often online counts are reported; their TTL at the
	// aggregators is three intervals. Zero value means 5 s. Keep it at most 10 s:
	// the aggregators keep no count longer than 30 s.
	CountInterval time.Duration
	// MinUpdateInterval spaces one user's presence changes (op 3): a change that
	// comes sooner waits, and only the latest waiting one is written. Zero value
	// means 1 s.
	MinUpdateInterval time.Duration
	// Workers is how many presence writes run at once. Zero value means 8.
	Workers int
	// MaxMemberRequests bounds the op 8 requests one session may have waiting; one
	// more closes it with 4008. Zero value means 100.
	MaxMemberRequests int
	// MemberRequestConcurrency bounds the op 8 requests served at once by this
	// gateway. Zero value means 16.
	MemberRequestConcurrency int
	// MaxQueryScan bounds the members one op 8 query reads looking for username
	// prefix matches (there is no username index): in a guild with more members,
	// a query may miss some. Zero value means 100,000.
	MaxQueryScan int
}

func (c PresenceConfig) withDefaults() PresenceConfig {
	if c.SmallGuildThreshold == 0 {
		c.SmallGuildThreshold = guildhall.LargeThreshold
	}
	if c.CountInterval <= 0 {
		c.CountInterval = 5 * time.Second
	}
	if c.MinUpdateInterval <= 0 {
		c.MinUpdateInterval = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.MaxMemberRequests <= 0 {
		c.MaxMemberRequests = 100
	}
	if c.MemberRequestConcurrency <= 0 {
		c.MemberRequestConcurrency = 16
	}
	if c.MaxQueryScan <= 0 {
		c.MaxQueryScan = 100000
	}
	return c
}

// ErrPresenceStarted: ConfigurePresence came after presence started with defaults.
var ErrPresenceStarted = errors.New("gateway: presence already started; configure it before serving")

// ConfigurePresence sets presence and member-list options. Call it after New and
// before the gateway serves anyone; without it the defaults apply.
func (g *Gateway) ConfigurePresence(cfg PresenceConfig) error {
	started := false
	g.hub.presence.once.Do(func() {
		started = true
		g.hub.presence.start(g, cfg)
	})
	if !started {
		return ErrPresenceStarted
	}
	return nil
}

// gatewayPresence is a gateway's presence state. Its zero value waits for start
// (see Gateway.presence).
type gatewayPresence struct {
	once    sync.Once
	cfg     PresenceConfig
	tracker *presence.Tracker
	// trackerDone is closed once the tracker has said goodbye (nil when presence
	// never started): Close waits for it, so that the process does not close its
	// NATS connection on the goodbye.
	trackerDone chan struct{}
	js          jetstream.JetStream
	queues      []chan guildhall.Snowflake
	inbox       string
	members     chan struct{} // op 8 requests being served

	mu       sync.Mutex
	sessions map[*Session]guildhall.Snowflake
	users    map[guildhall.Snowflake]*localUser
	requests map[*Session]*memberQueue
	totals   map[guildhall.Snowflake]int // the aggregators' last answers
	reported map[guildhall.Snowflake]bool
	reader   *presence.Reader
}

// localUser is what this gateway knows of one user with local sessions.
type localUser struct {
	sessions map[*Session]struct{}
	pending  *presence.Update // set here, not yet written
	known    presence.Known   // the key as this gateway last wrote or read it
	queued   bool             // waiting for a worker
	delayed  bool             // a pending change waits for MinUpdateInterval
	failed   bool             // the last write failed: the refresh tries again
	written  time.Time        // when the key was last written
	next     time.Time        // when the next change may be written
	// guilds are the user's small guilds; dirty: recompute before the next write.
	guilds   []guildhall.Snowflake
	guildsOK bool
	dirty    bool
}

type memberQueue struct {
	reqs    []memberRequest
	running bool
}

// presence returns the gateway's presence state, starting it with the defaults if
// ConfigurePresence was not called.
func (g *Gateway) presence() *gatewayPresence {
	p := &g.hub.presence
	p.once.Do(func() { p.start(g, PresenceConfig{}) })
	return p
}

func (p *gatewayPresence) start(g *Gateway, cfg PresenceConfig) {
	p.cfg = cfg.withDefaults()
	// Under mu: the pump reads totals (approximatePresenceCount) without going
	// through once, possibly while a first session starts presence.
	p.mu.Lock()
	p.sessions = map[*Session]guildhall.Snowflake{}
	p.users = map[guildhall.Snowflake]*localUser{}
	p.requests = map[*Session]*memberQueue{}
	p.totals = map[guildhall.Snowflake]int{}
	p.reported = map[guildhall.Snowflake]bool{}
	p.mu.Unlock()
	p.members = make(chan struct{}, p.cfg.MemberRequestConcurrency)
	js, err := jetstream.New(g.hub.nc)
	if err != nil {
		// Only a nil connection fails here.
		slog.Error("presence: jetstream", "err", err)
		return
	}
	p.js = js
	p.tracker = presence.NewTracker(js, g.cfg.Node)
	hctx, stop := context.WithCancel(context.Background())
	go func() { <-g.done; stop() }()
	p.trackerDone = make(chan struct{})
	go func() {
		defer close(p.trackerDone)
		p.tracker.Run(hctx, func() { go g.rewriteAll(nil) })
	}()
	p.queues = make([]chan guildhall.Snowflake, p.cfg.Workers)
	for i := range p.queues {
		p.queues[i] = make(chan guildhall.Snowflake, 4096)
		go g.presenceWorker(p.queues[i])
	}
	p.inbox = g.hub.nc.NewInbox()
	if _, err := g.hub.nc.Subscribe(p.inbox, p.totalsArrived); err != nil {
		slog.Error("presence: subscribe totals", "err", err)
	}
	go g.refreshPresence()
	go g.reportCounts()
}

// sessionStarted runs after IDENTIFY succeeded, with the identify's presence
// field, and after RESUME (presence nil: the user's status stays as it was).
func (g *Gateway) sessionStarted(s *Session, raw json.RawMessage) {
	var up *presence.Update
	if len(raw) > 0 && string(raw) != "null" {
		// A bad presence in IDENTIFY is ignored rather than failing the session.
		if u, err := presence.ParseUpdate(raw); err == nil {
			up = &u
		}
	}
	p := g.presence()
	if p.tracker == nil {
		return
	}
	uid := s.user.ID
	p.mu.Lock()
	if _, dup := p.sessions[s]; dup {
		p.mu.Unlock()
		return
	}
	p.sessions[s] = uid
	u := p.users[uid]
	if u == nil {
		u = &localUser{sessions: map[*Session]struct{}{}}
		p.users[uid] = u
	}
	u.sessions[s] = struct{}{}
	u.dirty = true
	if up != nil {
		u.pending = up
		u.next = time.Now().Add(p.cfg.MinUpdateInterval)
	}
	p.mu.Unlock()
	g.enqueuePresence(uid)
}

// sessionEnded runs when an identified session's connection closed.
func (g *Gateway) sessionEnded(s *Session) {
	p := g.presence()
	p.mu.Lock()
	uid, ok := p.sessions[s]
	delete(p.sessions, s)
	if q := p.requests[s]; q != nil {
		q.reqs = nil
	}
	if u := p.users[uid]; ok && u != nil {
		delete(u.sessions, s)
		u.dirty = true
	}
	p.mu.Unlock()
	if ok {
		g.enqueuePresence(uid)
	}
}

// presenceUpdate handles op 3.
func (g *Gateway) presenceUpdate(s *Session, d json.RawMessage) {
	up, err := presence.ParseUpdate(d)
	if err != nil {
		s.close(CloseDecodeError, "Invalid presence update")
		return
	}
	p := g.presence()
	p.mu.Lock()
	uid, ok := p.sessions[s]
	u := p.users[uid]
	if !ok || u == nil {
		p.mu.Unlock()
		return
	}
	u.pending = &up
	now := time.Now()
	if now.Before(u.next) {
		if !u.delayed {
			u.delayed = true
			time.AfterFunc(u.next.Sub(now), func() {
				p.mu.Lock()
				u.delayed = false
				u.next = time.Now().Add(p.cfg.MinUpdateInterval)
				p.mu.Unlock()
				g.enqueuePresence(uid)
			})
		}
		p.mu.Unlock()
		return
	}
	u.next = now.Add(p.cfg.MinUpdateInterval)
	p.mu.Unlock()
	g.enqueuePresence(uid)
}

// enqueuePresence asks the user's worker to write the user's key.
func (g *Gateway) enqueuePresence(uid guildhall.Snowflake) {
	p := &g.hub.presence
	p.mu.Lock()
	u := p.users[uid]
	if u == nil || u.queued || p.queues == nil {
		p.mu.Unlock()
		return
	}
	u.queued = true
	p.mu.Unlock()
	select {
	case p.queues[uint64(uid)%uint64(len(p.queues))] <- uid:
	case <-g.done:
	}
}

func (g *Gateway) presenceWorker(q chan guildhall.Snowflake) {
	for {
		select {
		case uid := <-q:
			g.syncPresence(uid)
		case <-g.done:
			return
		}
	}
}

// syncPresence writes what this gateway knows of a user to the user's key.
func (g *Gateway) syncPresence(uid guildhall.Snowflake) {
	p := &g.hub.presence
	p.mu.Lock()
	u := p.users[uid]
	if u == nil {
		p.mu.Unlock()
		return
	}
	u.queued = false
	st := presence.State{Sessions: len(u.sessions), Update: u.pending}
	var sessions []*Session
	if u.dirty && len(u.sessions) > 0 {
		for s := range u.sessions {
			sessions = append(sessions, s)
		}
	}
	u.dirty = false
	known := u.known
	p.mu.Unlock()

	if sessions != nil {
		if all, ok := g.smallGuilds(map[guildhall.Snowflake][]*Session{uid: sessions}); ok {
			p.mu.Lock()
			u.guilds, u.guildsOK = all[uid], true
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	st.Guilds, st.GuildsKnown = u.guilds, u.guildsOK
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
	k, err := p.tracker.Sync(ctx, uid, st, known)
	cancel()

	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// The next refresh tries again (a part left behind stops counting once this
		// gateway's heartbeat is gone, and the Notifier removes it).
		if !errors.Is(err, natsgo.ErrConnectionClosed) {
			slog.Warn("presence: write", "user", uid, "err", err)
		}
		u.failed = true
	} else {
		u.known, u.failed, u.written = k, false, time.Now()
		if u.pending == st.Update {
			u.pending = nil
		}
	}
	if len(u.sessions) == 0 && !u.queued && !u.delayed && !u.failed && p.users[uid] == u {
		delete(p.users, uid)
	}
}

// smallGuilds returns, per user, the guilds of the given sessions with at most
// SmallGuildThreshold members. It asks the pump, which owns rooms and memberships.
func (g *Gateway) smallGuilds(users map[guildhall.Snowflake][]*Session) (map[guildhall.Snowflake][]guildhall.Snowflake, bool) {
	threshold := g.hub.presence.cfg.SmallGuildThreshold
	out := make(map[guildhall.Snowflake][]guildhall.Snowflake, len(users))
	ok := g.pumpDo(func() {
		for uid, ss := range users {
			var gs []guildhall.Snowflake
			for _, s := range ss {
				for id := range s.guilds {
					r := g.hub.rooms[id]
					if r != nil && r.state.Guild.MemberCount <= threshold && !slices.Contains(gs, id) && len(gs) < maxSmallGuilds {
						gs = append(gs, id)
					}
				}
			}
			slices.Sort(gs)
			out[uid] = gs
		}
	})
	return out, ok
}

// maxSmallGuilds bounds the guilds written into one presence entry (its value
// stays well under the bucket's 64 KiB).
const maxSmallGuilds = 1000

// pumpDo runs f in the pump and waits for it, like Hub.do, unless the gateway has
// stopped (then it returns false and f did not run, or its effects are unused).
func (g *Gateway) pumpDo(f func()) bool {
	done := make(chan struct{})
	select {
	case g.hub.cmds <- func() { f(); close(done) }:
	case <-g.done:
		return false
	}
	select {
	case <-done:
		return true
	case <-g.done:
		return false
	}
}

// refreshPresence, every TTL/3 of the heartbeat, recomputes the local users'
// small guilds (joins, leaves and member counts change them) and writes the keys
// that need it: guilds changed, last write failed, or older than a third of the
// key TTL. A user whose nothing changed costs no write.
func (g *Gateway) refreshPresence() {
	p := &g.hub.presence
	var every, keyAge time.Duration
	for every == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
		node, key := p.tracker.TTLs(ctx)
		cancel()
		every, keyAge = node/3, key/3
		if every == 0 {
			select {
			case <-time.After(time.Second):
			case <-g.done:
				return
			}
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-g.done:
			return
		}
		old := time.Now().Add(-keyAge)
		if !g.rewriteAll(func(u *localUser) bool { return u.failed || keyAge > 0 && u.written.Before(old) }) {
			return
		}
	}
}

// rewriteAll recomputes every local user's small guilds and writes the keys of
// those whose guilds changed or for whom also(u) (every user when also is nil:
// the heartbeat was lost, so their parts stopped counting). It returns false
// when the gateway stopped.
func (g *Gateway) rewriteAll(also func(*localUser) bool) bool {
	p := &g.hub.presence
	users := map[guildhall.Snowflake][]*Session{}
	p.mu.Lock()
	for uid, u := range p.users {
		for s := range u.sessions {
			users[uid] = append(users[uid], s)
		}
		if len(u.sessions) == 0 && u.failed {
			users[uid] = nil
		}
	}
	p.mu.Unlock()
	guilds, ok := g.smallGuilds(users)
	if !ok {
		return false
	}
	var write []guildhall.Snowflake
	p.mu.Lock()
	for uid := range users {
		u := p.users[uid]
		if u == nil {
			continue
		}
		gs := guilds[uid]
		changed := len(u.sessions) > 0 && (!u.guildsOK || !slices.Equal(u.guilds, gs))
		if len(u.sessions) > 0 {
			u.guilds, u.guildsOK = gs, true
		}
		if changed || also == nil || also(u) {
			write = append(write, uid)
		}
	}
	p.mu.Unlock()
	for _, uid := range write {
		g.enqueuePresence(uid)
	}
	return true
}

// reportCounts reports, every CountInterval, the distinct visible users of each
// room (zero for rooms that went away since the last report).
func (g *Gateway) reportCounts() {
	p := &g.hub.presence
	every := p.cfg.CountInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-g.done:
			return
		}
		invisible := map[guildhall.Snowflake]bool{}
		p.mu.Lock()
		for uid, u := range p.users {
			if u.known.Entry.Status == presence.Invisible {
				invisible[uid] = true
			}
		}
		p.mu.Unlock()
		var counts []presence.GuildCount
		if !g.pumpDo(func() { counts = g.hub.onlineCounts(invisible) }) {
			return
		}
		p.mu.Lock()
		now := make(map[guildhall.Snowflake]bool, len(counts))
		for _, c := range counts {
			now[c.Guild] = true
		}
		for id := range p.reported {
			if !now[id] {
				counts = append(counts, presence.GuildCount{Guild: id})
				delete(p.totals, id)
			}
		}
		p.reported = now
		p.mu.Unlock()
		if err := presence.PublishReport(g.hub.nc, g.cfg.Node, p.inbox, 3*every, counts); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
			slog.Warn("presence: count report", "err", err)
		}
	}
}

// onlineCounts counts the distinct users of each room, leaving out invisible. It
// runs in the pump.
func (h *Hub) onlineCounts(invisible map[guildhall.Snowflake]bool) []presence.GuildCount {
	out := make([]presence.GuildCount, 0, len(h.rooms))
	seen := map[guildhall.Snowflake]struct{}{}
	for id, r := range h.rooms {
		clear(seen)
		for _, rm := range r.members {
			if uid := rm.s.user.ID; !invisible[uid] {
				seen[uid] = struct{}{}
			}
		}
		if len(seen) > 0 {
			out = append(out, presence.GuildCount{Guild: id, Online: len(seen)})
		}
	}
	return out
}

func (p *gatewayPresence) totalsArrived(m *natsgo.Msg) {
	var t presence.CountTotals
	if json.Unmarshal(m.Data, &t) != nil {
		return
	}
	p.mu.Lock()
	for _, c := range t.Counts {
		if p.reported[c.Guild] {
			p.totals[c.Guild] = c.Online
		}
	}
	p.mu.Unlock()
}

// approximatePresenceCount is the guild's online count as the aggregators last
// answered this gateway (0 before their first answer). Safe in the pump.
func (g *Gateway) approximatePresenceCount(guildID guildhall.Snowflake) int {
	p := &g.hub.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.totals[guildID]
}

// guildCreate is GUILD_CREATE for member self of the room's guild, with the
// guild's approximate online count. Run it in the pump.
func (g *Gateway) guildCreate(r *room, self guildhall.Member) guildhall.GuildCreate {
	gc := r.state.CreatePayload(self)
	gc.ApproximatePresenceCount = g.approximatePresenceCount(r.id)
	return gc
}

// ---- op 8 REQUEST_GUILD_MEMBERS

// snowflakes reads one snowflake or an array of them.
type snowflakes []guildhall.Snowflake

func (s *snowflakes) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var list []guildhall.Snowflake
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*s = list
		return nil
	}
	var one guildhall.Snowflake
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	if one != 0 {
		*s = snowflakes{one}
	}
	return nil
}

type memberRequest struct {
	GuildID   snowflakes `json:"guild_id"`
	Query     *string    `json:"query"`
	Limit     int        `json:"limit"`
	Presences bool       `json:"presences"`
	UserIDs   snowflakes `json:"user_ids"`
	Nonce     string     `json:"nonce"`
}

// Discord's bounds of op 8.
const (
	maxChunkMembers  = 1000
	maxQueryLimit    = 100
	maxRequestedIDs  = 100
	maxNonce         = 32
	memberPageScan   = 10000 // members one api request reads for a query
	chunkOutboxLimit = 4     // frames queued to a session before the next chunk waits
)

type membersChunk struct {
	GuildID    guildhall.Snowflake   `json:"guild_id"`
	Members    []guildhall.Member    `json:"members"`
	ChunkIndex int                   `json:"chunk_index"`
	ChunkCount int                   `json:"chunk_count"`
	NotFound   []guildhall.Snowflake `json:"not_found,omitempty"`
	Presences  []presence.Presence   `json:"presences,omitempty"`
	Nonce      string                `json:"nonce,omitempty"`
}

// requestGuildMembers handles op 8: it checks the payload and queues it for the
// session's member goroutine, so the read goroutine never waits for the api.
func (g *Gateway) requestGuildMembers(s *Session, d json.RawMessage) {
	var req memberRequest
	if json.Unmarshal(d, &req) != nil || len(req.GuildID) != 1 || (req.Query == nil && len(req.UserIDs) == 0) ||
		len(req.UserIDs) > maxRequestedIDs || req.Limit < 0 {
		s.close(CloseDecodeError, "Invalid request guild members payload")
		return
	}
	if len(req.Nonce) > maxNonce {
		req.Nonce = "" // Discord ignores nonces longer than 32 bytes
	}
	p := g.presence()
	p.mu.Lock()
	q := p.requests[s]
	if q == nil {
		q = &memberQueue{}
		p.requests[s] = q
	}
	if len(q.reqs) >= p.cfg.MaxMemberRequests {
		p.mu.Unlock()
		s.close(CloseRateLimited, "You are being rate limited.")
		return
	}
	q.reqs = append(q.reqs, req)
	if !q.running {
		q.running = true
		go g.serveMemberRequests(s, q)
	}
	p.mu.Unlock()
}

// serveMemberRequests answers a session's op 8 requests one after the other.
func (g *Gateway) serveMemberRequests(s *Session, q *memberQueue) {
	p := &g.hub.presence
	for {
		p.mu.Lock()
		if len(q.reqs) == 0 || s.out.isClosed() {
			q.running = false
			q.reqs = nil
			if p.requests[s] == q {
				delete(p.requests, s)
			}
			p.mu.Unlock()
			return
		}
		req := q.reqs[0]
		q.reqs = q.reqs[1:]
		p.mu.Unlock()
		select {
		case p.members <- struct{}{}:
		case <-g.done:
			return
		}
		if err := g.serveMembers(s, req); err != nil {
			slog.Warn("request guild members", "guild", req.GuildID[0], "err", err)
		}
		<-p.members
	}
}

// serveMembers answers one op 8 request with GUILD_MEMBERS_CHUNK dispatches.
func (g *Gateway) serveMembers(s *Session, req memberRequest) error {
	guildID := req.GuildID[0]
	member, count := false, 0
	ok := g.pumpDo(func() {
		if _, in := s.guilds[guildID]; in {
			member = true
			if r := g.hub.rooms[guildID]; r != nil {
				count = r.state.Guild.MemberCount
			}
		}
	})
	if !ok || !member {
		return nil // not a member: nothing to tell, as Discord
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-g.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	send := func(c membersChunk) error {
		c.GuildID, c.Nonce = guildID, req.Nonce
		for i := range c.Members {
			c.Members[i].GuildID = 0
			if c.Members[i].Roles == nil {
				c.Members[i].Roles = []guildhall.Snowflake{}
			}
		}
		if c.Members == nil {
			c.Members = []guildhall.Member{}
		}
		if req.Presences && len(c.Members) > 0 {
			ps, err := g.presences(ctx, c.Members)
			if err != nil {
				slog.Warn("request guild members: presences", "guild", guildID, "err", err)
			}
			c.Presences = ps
		}
		data, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if !s.out.waitBelow(ctx, chunkOutboxLimit) {
			return nil
		}
		g.pumpDo(func() { s.send(dispatchFrame(guildhall.EventGuildMembersChunk, g.hub.w, data)) })
		return nil
	}

	switch {
	case len(req.UserIDs) > 0:
		rep, err := g.members(ctx, guildhall.MembersRequest{GuildID: guildID, UserIDs: req.UserIDs, Limit: len(req.UserIDs)})
		if err != nil {
			return err
		}
		nf := rep.NotFound
		if nf == nil {
			nf = []guildhall.Snowflake{}
		}
		return send(membersChunk{Members: rep.Members, ChunkCount: 1, NotFound: nf})

	case *req.Query != "":
		limit := req.Limit
		if limit <= 0 || limit > maxQueryLimit {
			limit = maxQueryLimit
		}
		var found []guildhall.Member
		var after guildhall.Snowflake
		for scanned := 0; scanned < g.hub.presence.cfg.MaxQueryScan && len(found) < limit; {
			rep, err := g.members(ctx, guildhall.MembersRequest{
				GuildID: guildID, Query: *req.Query, After: after, Limit: limit - len(found),
				Scan: min(memberPageScan, g.hub.presence.cfg.MaxQueryScan-scanned),
			})
			if err != nil {
				return err
			}
			found = append(found, rep.Members...)
			scanned += max(rep.Scanned, 1)
			if rep.Done {
				break
			}
			after = rep.Next
		}
		return send(membersChunk{Members: found, ChunkCount: 1})

	default: // every member (limit 0) or the first limit of them
		total := count
		if req.Limit > 0 {
			total = min(total, req.Limit)
		}
		chunks := max(1, (total+maxChunkMembers-1)/maxChunkMembers)
		// The next page is fetched while this one is written: at most three pages
		// are in memory.
		pages := make(chan guildhall.MembersReply, 1)
		errc := make(chan error, 1)
		go func() {
			defer close(pages)
			var after guildhall.Snowflake
			sent := 0
			for range chunks {
				// Without a limit the last chunk also takes whoever joined since the
				// count was taken, up to a full chunk.
				n := maxChunkMembers
				if req.Limit > 0 {
					n = min(n, total-sent)
				}
				if n <= 0 {
					return
				}
				rep, err := g.members(ctx, guildhall.MembersRequest{GuildID: guildID, After: after, Limit: n})
				if err != nil {
					errc <- err
					return
				}
				select {
				case pages <- rep:
				case <-ctx.Done():
					return
				}
				if rep.Done {
					return
				}
				after, sent = rep.Next, sent+len(rep.Members)
			}
		}()
		for i := range chunks {
			rep, ok := <-pages
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
				}
			}
			if err := send(membersChunk{Members: rep.Members, ChunkIndex: i, ChunkCount: chunks}); err != nil {
				return err
			}
		}
		return nil
	}
}

func (g *Gateway) members(ctx context.Context, req guildhall.MembersRequest) (guildhall.MembersReply, error) {
	var rep guildhall.MembersReply
	rctx, cancel := context.WithTimeout(ctx, g.cfg.APITimeout)
	defer cancel()
	if err := g.api.call(rctx, ghnats.SubjectAPIMembers, req, &rep); err != nil {
		return rep, err
	}
	if rep.Error != nil {
		return rep, rep.Error
	}
	return rep, nil
}

// presences reads the presences of a chunk's members (one batch read).
func (g *Gateway) presences(ctx context.Context, ms []guildhall.Member) ([]presence.Presence, error) {
	p := &g.hub.presence
	p.mu.Lock()
	r := p.reader
	p.mu.Unlock()
	if r == nil {
		var err error
		if r, err = presence.NewReader(ctx, g.hub.nc, p.js); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.reader = r
		p.mu.Unlock()
	}
	ids := make([]guildhall.Snowflake, len(ms))
	for i, m := range ms {
		ids[i] = m.User.ID
	}
	return r.Presences(ctx, ids)
}
