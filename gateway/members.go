package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/presence"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MemberListConfig configures op 8 REQUEST_GUILD_MEMBERS. Zero values are usable
// defaults.
type MemberListConfig struct {
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

func (c MemberListConfig) withDefaults() MemberListConfig {
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

// memberLister answers op 8 REQUEST_GUILD_MEMBERS with GUILD_MEMBERS_CHUNK
// dispatches. Each session's requests are served one at a time by a goroutine of
// its own (at most MaxMemberRequests waiting), at most MemberRequestConcurrency
// at once on the gateway; the members come from the api over NATS, a page at a
// time, and each chunk is written once the session's outbox has drained, so that
// a big guild's list goes as fast as the client reads it.
type memberLister struct {
	cfg     MemberListConfig
	timeout time.Duration
	log     *slog.Logger
	api     memberPages
	rooms   memberRooms
	nc      *natsgo.Conn
	js      jetstream.JetStream
	slots   chan struct{} // a slot per request being served

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the sessions' serving goroutines

	mu       sync.Mutex
	requests map[*Session]*memberQueue
	reader   *presence.Reader // bound on first use
}

// memberPages pages a guild's members: the api.
type memberPages interface {
	members(ctx context.Context, req guildhall.MembersRequest) (guildhall.MembersReply, error)
}

// memberRooms is what the member lister asks the pump: whether a session is a
// member of a guild (and the guild's member count), and to queue a chunk in order
// with the session's live frames. False when the pump has stopped.
type memberRooms interface {
	memberCount(s *Session, guild guildhall.Snowflake) (member bool, count int, ok bool)
	sendNow(s *Session, t string, data []byte) bool
}

var (
	_ memberPages = apiClient{}
	_ memberRooms = (*pump)(nil)
)

type memberQueue struct {
	reqs    []memberRequest
	running bool
}

// memberListerConfig is what a member lister is built from.
type memberListerConfig struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	api     memberPages
	rooms   memberRooms
	cfg     MemberListConfig // with defaults
	timeout time.Duration    // Config.APITimeout, for each page
	log     *slog.Logger
}

func newMemberLister(c memberListerConfig) *memberLister {
	ctx, cancel := context.WithCancel(context.Background())
	return &memberLister{
		cfg: c.cfg, timeout: c.timeout, log: c.log, api: c.api, rooms: c.rooms, nc: c.nc, js: c.js,
		slots:    make(chan struct{}, c.cfg.MemberRequestConcurrency),
		ctx:      ctx,
		cancel:   cancel,
		requests: map[*Session]*memberQueue{},
	}
}

// close stops serving: requests in progress end, waiting ones are dropped.
func (l *memberLister) close() {
	l.cancel()
	l.wg.Wait()
}

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

// request handles op 8: it checks the payload and queues it for the session's
// serving goroutine, so the read goroutine never waits for the api.
func (l *memberLister) request(s *Session, d json.RawMessage) {
	var req memberRequest
	if json.Unmarshal(d, &req) != nil || len(req.GuildID) != 1 || (req.Query == nil && len(req.UserIDs) == 0) ||
		len(req.UserIDs) > maxRequestedIDs || req.Limit < 0 {
		s.close(CloseDecodeError, "Invalid request guild members payload")
		return
	}
	if len(req.Nonce) > maxNonce {
		req.Nonce = "" // Discord ignores nonces longer than 32 bytes
	}
	l.mu.Lock()
	q := l.requests[s]
	if q == nil {
		q = &memberQueue{}
		l.requests[s] = q
	}
	if len(q.reqs) >= l.cfg.MaxMemberRequests {
		l.mu.Unlock()
		s.close(CloseRateLimited, "You are being rate limited.")
		return
	}
	q.reqs = append(q.reqs, req)
	if !q.running && l.ctx.Err() == nil {
		q.running = true
		l.wg.Go(func() { l.serve(s, q) })
	}
	l.mu.Unlock()
}

// ended drops the waiting requests of a session whose connection closed.
func (l *memberLister) ended(s *Session) {
	l.mu.Lock()
	if q := l.requests[s]; q != nil {
		q.reqs = nil
	}
	l.mu.Unlock()
}

// serve answers a session's requests one after the other.
func (l *memberLister) serve(s *Session, q *memberQueue) {
	for {
		l.mu.Lock()
		if len(q.reqs) == 0 || s.out.isClosed() {
			q.running = false
			q.reqs = nil
			if l.requests[s] == q {
				delete(l.requests, s)
			}
			l.mu.Unlock()
			return
		}
		req := q.reqs[0]
		q.reqs = q.reqs[1:]
		l.mu.Unlock()
		select {
		case l.slots <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		if err := l.answer(s, req); err != nil && l.ctx.Err() == nil {
			l.log.Warn("request guild members", "guild", req.GuildID[0], "err", err)
		}
		<-l.slots
	}
}

// answer answers one request with GUILD_MEMBERS_CHUNK dispatches.
func (l *memberLister) answer(s *Session, req memberRequest) error {
	guildID := req.GuildID[0]
	member, count, ok := l.rooms.memberCount(s, guildID)
	if !ok || !member {
		return nil // not a member: nothing to tell, as Discord
	}
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Minute)
	defer cancel()
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
			ps, err := l.presences(ctx, c.Members)
			if err != nil {
				l.log.Warn("request guild members: presences", "guild", guildID, "err", err)
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
		l.rooms.sendNow(s, guildhall.EventGuildMembersChunk, data)
		return nil
	}

	switch {
	case len(req.UserIDs) > 0:
		rep, err := l.page(ctx, guildhall.MembersRequest{GuildID: guildID, UserIDs: req.UserIDs, Limit: len(req.UserIDs)})
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
		for scanned := 0; scanned < l.cfg.MaxQueryScan && len(found) < limit; {
			rep, err := l.page(ctx, guildhall.MembersRequest{
				GuildID: guildID, Query: *req.Query, After: after, Limit: limit - len(found),
				Scan: min(memberPageScan, l.cfg.MaxQueryScan-scanned),
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
				rep, err := l.page(ctx, guildhall.MembersRequest{GuildID: guildID, After: after, Limit: n})
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

// page asks the api for one page of members.
func (l *memberLister) page(ctx context.Context, req guildhall.MembersRequest) (guildhall.MembersReply, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.api.members(ctx, req)
}

// presences reads the presences of a chunk's members (one batch read).
func (l *memberLister) presences(ctx context.Context, ms []guildhall.Member) ([]presence.Presence, error) {
	l.mu.Lock()
	r := l.reader
	l.mu.Unlock()
	if r == nil {
		var err error
		if r, err = presence.NewReader(ctx, l.nc, l.js); err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.reader = r
		l.mu.Unlock()
	}
	ids := make([]guildhall.Snowflake, len(ms))
	for i, m := range ms {
		ids[i] = m.User.ID
	}
	return r.Presences(ctx, ids)
}

// memberCount reports whether s is a member of guild on this gateway, and the
// guild's member count.
func (p *pump) memberCount(s *Session, guild guildhall.Snowflake) (member bool, count int, ok bool) {
	ok = p.do(func() {
		if _, in := s.guilds[guild]; in {
			member = true
			if r := p.rooms[guild]; r != nil {
				count = r.state.Guild.MemberCount
			}
		}
	})
	return member, count, ok
}
