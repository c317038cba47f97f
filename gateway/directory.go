package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	natsgo "github.com/nats-io/nats.go"
)

// directory is the gateway's live sessions: every open connection (for the
// drain), the identified sessions by id, their entries in the session registry
// (put at identify and resume, refreshed every TTL/3 so that they do not expire:
// the TTL is the resume window), and the kicks between gateways when a session
// resumes on another one.
type directory struct {
	nc        *natsgo.Conn
	registry  *registry.Registry
	watermark watermark
	node      string
	timeout   time.Duration
	log       *slog.Logger
	kickSub   *natsgo.Subscription
	cancel    context.CancelFunc
	done      chan struct{} // the refresh loop has returned

	mu       sync.Mutex
	sessions map[string]*Session // identified sessions by id
	conns    map[*Session]struct{}
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

// newDirectory subscribes to the node's kicks and starts the refresh of the
// registry entries. Stop it with close.
func newDirectory(cfg directoryConfig) (*directory, error) {
	d := &directory{
		nc: cfg.nc, registry: cfg.registry, watermark: cfg.watermark, node: cfg.node, timeout: cfg.timeout, log: cfg.log,
		done:     make(chan struct{}),
		sessions: map[string]*Session{},
		conns:    map[*Session]struct{}{},
	}
	sub, err := cfg.nc.Subscribe(ghnats.KickSubject(cfg.node), d.kicked)
	if err != nil {
		return nil, err
	}
	d.kickSub = sub
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go d.refresh(ctx)
	return d, nil
}

// close stops the refresh and the kicks. The entries stay in the registry: the
// sessions resume on another gateway.
func (d *directory) close() {
	d.cancel()
	<-d.done
	_ = d.kickSub.Unsubscribe()
}

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
// holder, if any.
func (d *directory) take(s *Session) *Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.sessions[s.id]
	d.sessions[s.id] = s
	return old
}

// put writes s's registry entry: its user, intents, this node, and the watermark.
func (d *directory) put(s *Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	intents := s.intents
	err := d.registry.Put(ctx, registry.Session{ID: s.id, UserID: s.user.ID, Node: d.node, Seq: d.watermark.current(), Intents: &intents, Shard: s.shard.array()})
	if err != nil {
		d.log.Warn("registry put", "session", s.id, "err", err)
	}
	return err
}

// entry reads a session's registry entry (registry.ErrNotFound: unknown or
// expired).
func (d *directory) entry(ctx context.Context, id string) (registry.Session, error) {
	return d.registry.Get(ctx, id)
}

// end deletes s's registry entry: the client ended the session (close 1000 or
// 1001), so it can no longer be resumed.
func (d *directory) end(ctx context.Context, s *Session) {
	_ = d.registry.Delete(ctx, s.id)
}

// refresh keeps the entries of live sessions from expiring.
func (d *directory) refresh(ctx context.Context) {
	defer close(d.done)
	every := d.registry.TTL() / 3
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		live := make([]*Session, 0, len(d.sessions))
		for _, s := range d.sessions {
			live = append(live, s)
		}
		d.mu.Unlock()
		// Spread the puts over most of the interval: all at once, 100,000
		// sessions' refreshes arrive at NATS as one burst every interval, which
		// starved identifies and resumes in the 100,000-session run.
		start, spread := time.Now(), every*3/4
		for i, s := range live {
			if wait := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(live)))); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			if ctx.Err() != nil {
				return
			}
			// The snapshot is up to an interval old: a session that ended or moved
			// to another gateway since must not be written back.
			d.mu.Lock()
			cur := d.sessions[s.id]
			d.mu.Unlock()
			if cur == s {
				_ = d.put(s)
			}
		}
	}
}

// kick tells gateway node, which the registry names as a session's holder, that
// the session resumed here.
func (d *directory) kick(node, id string) {
	_ = d.nc.Publish(ghnats.KickSubject(node), []byte(id))
}

// kicked closes a local session that another gateway has resumed (its client is
// gone from here, whatever this side of the socket believes).
func (d *directory) kicked(m *natsgo.Msg) {
	id := string(m.Data)
	d.mu.Lock()
	s := d.sessions[id]
	if s != nil {
		delete(d.sessions, id)
	}
	d.mu.Unlock()
	if s != nil {
		s.resumable.Store(true)
		s.close(CloseUnknownError, "session resumed elsewhere")
	}
}
