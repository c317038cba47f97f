package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	natsgo "github.com/nats-io/nats.go"
)

// directory is the gateway's live sessions: every open connection (for the
// drain), the identified sessions by id, their entries in the session registry,
// the gateway's heartbeat there, and the kicks between gateways when a session
// resumes on another one.
//
// A session's entry is written when it starts (identify), when another
// connection takes it over (resume, with compare-and-set: of two racing
// resumes one wins), when its client leaves it resumable (disconnected_at) and
// when it ends (deleted). A live session costs no writes: while this gateway
// beats (registry.Heartbeat, every BeatInterval), its sessions are held; once
// it stops, they stay resumable for the window after its last beat. Entries of
// live sessions are rewritten once per third of the bucket's backstop (a day)
// so they do not age out.
type directory struct {
	nc        *natsgo.Conn
	registry  *registry.Registry
	heartbeat *registry.Heartbeat
	watermark watermark
	node      string
	timeout   time.Duration
	log       *slog.Logger
	kickSub   *natsgo.Subscription
	cancel    context.CancelFunc
	done      chan struct{} // the beat and rewrite loops have returned
	// draining: the gateway is closing and asks its sessions to reconnect; their
	// entries stay as they are, judged by the last beat.
	draining atomic.Bool

	mu       sync.Mutex
	sessions map[string]*Session // identified sessions by id
	conns    map[*Session]struct{}
}

// sessionEntry is what a session knows of its registry entry: the entry as
// last written, whose revision the next write must find. Only the directory
// touches it, under mu (writes are serialised per session).
type sessionEntry struct {
	mu    sync.Mutex
	entry registry.Session
	// gone: the session moved to another connection or ended; its entry is no
	// longer this connection's to write.
	gone bool
}

// watermark is the sequence a session has been given everything up to: the
// pump's. A registry entry records it; a resume may not claim more.
type watermark interface {
	current() uint64
}

var _ watermark = (*pump)(nil)

// directoryConfig is what a directory is built from.
type directoryConfig struct {
	nc        *natsgo.Conn
	registry  *registry.Registry
	watermark watermark
	node      string
	timeout   time.Duration // Config.APITimeout, for each registry write
	log       *slog.Logger
}

// newDirectory claims the node's heartbeat (a new incarnation), subscribes to
// the node's kicks and starts beating. Stop it with close.
func newDirectory(ctx context.Context, cfg directoryConfig) (*directory, error) {
	d := &directory{
		nc: cfg.nc, registry: cfg.registry, watermark: cfg.watermark, node: cfg.node, timeout: cfg.timeout, log: cfg.log,
		done:     make(chan struct{}),
		sessions: map[string]*Session{},
		conns:    map[*Session]struct{}{},
	}
	hb, err := cfg.registry.Claim(ctx, cfg.node)
	if err != nil {
		return nil, err
	}
	d.heartbeat = hb
	sub, err := cfg.nc.Subscribe(ghnats.KickSubject(cfg.node), d.kicked)
	if err != nil {
		return nil, err
	}
	d.kickSub = sub
	lctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go d.run(lctx)
	return d, nil
}

// close stops the beats and the kicks after a last beat: the sessions still
// here are resumable on another gateway for the window from now.
func (d *directory) close() {
	d.cancel()
	<-d.done
	_ = d.kickSub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	_ = d.heartbeat.Beat(ctx)
}

// drain marks the gateway as closing: sessions it closes from now on keep their
// entries as they are.
func (d *directory) drain() { d.draining.Store(true) }

// opened records a new connection.
func (d *directory) opened(s *Session) {
	d.mu.Lock()
	d.conns[s] = struct{}{}
	d.mu.Unlock()
}

// closed forgets a closed connection and, if it held its session here, the
// session.
func (d *directory) closed(s *Session) {
	d.mu.Lock()
	delete(d.conns, s)
	if s.id != "" && d.sessions[s.id] == s {
		delete(d.sessions, s.id)
	}
	d.mu.Unlock()
}

// connections lists the open connections.
func (d *directory) connections() []*Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := make([]*Session, 0, len(d.conns))
	for s := range d.conns {
		all = append(all, s)
	}
	return all
}

// take makes s the holder of its session id here and returns the previous
// holder, if any, whose entry is no longer its own.
func (d *directory) take(s *Session) *Session {
	d.mu.Lock()
	old := d.sessions[s.id]
	d.sessions[s.id] = s
	d.mu.Unlock()
	if old != nil && old != s {
		old.reg.mu.Lock()
		old.reg.gone = true
		old.reg.mu.Unlock()
	}
	return old
}

// started writes the entry of a session that has just identified: its user,
// intents, its start, this node and incarnation, and the watermark.
func (d *directory) started(s *Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	intents := s.intents
	e := registry.Session{ID: s.id, UserID: s.user.ID, Node: d.node, Inc: d.heartbeat.Inc(), Seq: d.watermark.current(), Start: s.start, Intents: &intents, Shard: s.shard.array()}
	rev, err := d.registry.Put(ctx, e)
	if err != nil {
		d.log.Warn("registry put", "session", s.id, "err", err)
		return err
	}
	e.Revision = rev
	s.reg.mu.Lock()
	s.reg.entry = e
	s.reg.mu.Unlock()
	return nil
}

// startAt raises the entry's start to s.start (READY's s, known once the session
// joined at its cut). Should the write fail, the lower start of started stands.
func (d *directory) startAt(s *Session) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if s.reg.gone || s.reg.entry.Revision == 0 || s.reg.entry.Start >= s.start {
		return
	}
	e := s.reg.entry
	e.Start = s.start
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	if rev, err := d.registry.Update(ctx, e); err == nil {
		e.Revision = rev
		s.reg.entry = e
	}
}

// entry reads a session's registry entry (registry.ErrNotFound: unknown or
// ended).
func (d *directory) entry(ctx context.Context, id string) (registry.Session, error) {
	return d.registry.Get(ctx, id)
}

// resumable reports whether the session of entry is still within its resume
// window.
func (d *directory) resumable(ctx context.Context, entry registry.Session) (bool, error) {
	return d.registry.Resumable(ctx, entry)
}

// takeOver makes s, resuming here, the holder of the session of entry (as read
// by the checks): this node, this incarnation, connected. registry.ErrConflict
// when another resume took it since the read.
func (d *directory) takeOver(ctx context.Context, s *Session, entry registry.Session) error {
	entry.Node, entry.Inc, entry.DisconnectedAt = d.node, d.heartbeat.Inc(), time.Time{}
	entry.Seq = d.watermark.current()
	rev, err := d.registry.Update(ctx, entry)
	if err != nil {
		return err
	}
	entry.Revision = rev
	s.reg.mu.Lock()
	s.reg.entry = entry
	s.reg.mu.Unlock()
	return nil
}

// left records that s's client left while the session stays resumable: the
// window runs from now. Nothing is written when the session moved on (another
// connection or gateway took it) or the gateway is draining (its last beat
// stands for every session it held).
func (d *directory) left(s *Session) {
	if d.draining.Load() {
		return
	}
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if s.reg.gone || s.reg.entry.Revision == 0 {
		return
	}
	s.reg.gone = true
	e := s.reg.entry
	e.DisconnectedAt = time.Now()
	e.Seq = max(e.Seq, d.watermark.current())
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	if _, err := d.registry.Update(ctx, e); err != nil && !errors.Is(err, registry.ErrConflict) {
		// The entry still names this incarnation: the session stays resumable
		// for the window after this gateway's last beat instead.
		d.log.Warn("registry: session left", "session", s.id, "err", err)
	}
}

// end deletes s's registry entry: the client ended the session (close 1000 or
// 1001), so it can no longer be resumed.
func (d *directory) end(ctx context.Context, s *Session) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if s.reg.gone || s.reg.entry.Revision == 0 {
		return
	}
	s.reg.gone = true
	_ = d.registry.Delete(ctx, s.id, s.reg.entry.Revision)
}

// run beats every BeatInterval until ctx ends, and rewrites the entries of live
// sessions once per third of the backstop on the side.
func (d *directory) run(ctx context.Context) {
	defer close(d.done)
	var rewrites sync.WaitGroup
	defer rewrites.Wait()
	rewrites.Go(func() { d.rewriteLoop(ctx) })
	beats := time.NewTicker(d.registry.BeatInterval())
	defer beats.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beats.C:
		}
		bctx, cancel := context.WithTimeout(ctx, d.timeout)
		err := d.heartbeat.Beat(bctx)
		cancel()
		if errors.Is(err, registry.ErrNodeTaken) {
			d.log.Error("another process took this gateway's node name in the session registry; stopping the heartbeat", "node", d.node)
			<-ctx.Done()
			return
		}
		if err != nil && ctx.Err() == nil {
			d.log.Warn("registry: heartbeat", "node", d.node, "err", err)
		}
	}
}

// rewriteLoop rewrites the entries of the sessions live here once per third of
// the backstop, spread over the next tenth of it (a few writes per second at
// 100,000 sessions and a day's backstop), so that they do not age out.
func (d *directory) rewriteLoop(ctx context.Context) {
	every := d.registry.Backstop() / 3
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		d.mu.Lock()
		live := make([]*Session, 0, len(d.sessions))
		for _, s := range d.sessions {
			live = append(live, s)
		}
		d.mu.Unlock()
		for _, s := range live {
			select {
			case <-ctx.Done():
				return
			case <-time.After(every / 10 / time.Duration(len(live))):
			}
			d.rewrite(ctx, s)
		}
	}
}

// rewrite writes a live session's entry again, unchanged.
func (d *directory) rewrite(ctx context.Context, s *Session) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if s.reg.gone || s.reg.entry.Revision == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if rev, err := d.registry.Update(wctx, s.reg.entry); err == nil {
		s.reg.entry.Revision = rev
	}
}

// kickPrevious tells the gateway that held the session of entry (a process of
// another node, or another incarnation of this one), that it resumed here.
// Sessions held here before are closed by take instead.
func (d *directory) kickPrevious(entry registry.Session) {
	if entry.Node == d.node && entry.Inc == d.heartbeat.Inc() {
		return
	}
	_ = d.nc.Publish(ghnats.KickSubject(entry.Node), []byte(entry.ID+" "+entry.Inc))
}

// kicked closes a local session that another gateway has resumed (its client is
// gone from here, whatever this side of the socket believes). A kick for
// another incarnation of this node name is not for this process.
func (d *directory) kicked(m *natsgo.Msg) {
	id, inc, _ := strings.Cut(string(m.Data), " ")
	if inc != "" && inc != d.heartbeat.Inc() {
		return
	}
	d.mu.Lock()
	s := d.sessions[id]
	if s != nil {
		delete(d.sessions, id)
	}
	d.mu.Unlock()
	if s != nil {
		s.reg.mu.Lock()
		s.reg.gone = true
		s.reg.mu.Unlock()
		s.resumable.Store(true)
		s.close(CloseUnknownError, "session resumed elsewhere")
	}
}
