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
	"github.com/guildhall/guildhall/presence"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PresenceConfig configures a gateway's presence and online counts. Zero values
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
	return c
}

// presenceTracker is the gateway's side of presence: op 3 PRESENCE_UPDATE, a
// session's start and end, its users' keys in the presence bucket and its
// heartbeat there. See package presence for the whole design; what the tracker
// does:
//
//   - It keeps, per local user (presence.LocalUsers), the local sessions, the
//     presence the user last set here, and what it last wrote to the user's key; a
//     worker (one of Workers, picked by user id, so one user's writes are in
//     order) makes the key agree with that (presence.Tracker.Sync). Keys are
//     written when something changes, not to stay alive: the gateway's heartbeat
//     key (presence.Tracker.Run, every TTL/3) keeps all its users' parts alive at
//     once.
//   - Every TTL/3 it recomputes its users' small guilds and writes the keys whose
//     guilds changed, whose last write failed, or that are older than a third of
//     the bucket's key TTL (a backstop that expires keys nobody cleaned up).
//   - It writes the user's small guilds (member count at most
//     SmallGuildThreshold) into the key; the presence Notifier announces changes
//     there. It never publishes PRESENCE_UPDATE itself: the pump delivers the
//     Notifier's on the guild's ephemeral subject, like typing.
type presenceTracker struct {
	cfg     PresenceConfig
	timeout time.Duration
	log     *slog.Logger
	users   *presence.LocalUsers[*Session]
	keys    *presence.Tracker
	rooms   smallGuildRooms
	queues  []chan guildhall.Snowflake

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the heartbeat (and its goodbye), the workers, the refresh
}

// smallGuildRooms answers, per user, the guilds of the given sessions with at most
// threshold members: the pump, which owns rooms and memberships. False when it
// has stopped.
type smallGuildRooms interface {
	smallGuilds(users map[guildhall.Snowflake][]*Session, threshold int) (map[guildhall.Snowflake][]guildhall.Snowflake, bool)
}

var _ smallGuildRooms = (*pump)(nil)

// presenceTrackerConfig is what a presence tracker is built from.
type presenceTrackerConfig struct {
	js      jetstream.JetStream
	node    string
	rooms   smallGuildRooms
	cfg     PresenceConfig // with defaults
	timeout time.Duration  // Config.APITimeout, for each key write
	log     *slog.Logger
}

// newPresenceTracker starts the heartbeat, the workers and the refresh. Stop it
// with close.
func newPresenceTracker(c presenceTrackerConfig) *presenceTracker {
	ctx, cancel := context.WithCancel(context.Background())
	t := &presenceTracker{
		cfg: c.cfg, timeout: c.timeout, log: c.log, rooms: c.rooms,
		users:  presence.NewLocalUsers[*Session](presence.LocalConfig{MinUpdateInterval: c.cfg.MinUpdateInterval}),
		keys:   presence.NewTracker(c.js, c.node),
		queues: make([]chan guildhall.Snowflake, c.cfg.Workers),
		ctx:    ctx,
		cancel: cancel,
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		// A lost heartbeat means this node's parts stopped counting: rewrite
		// every user's key.
		t.keys.Run(ctx, func() { t.wg.Go(func() { t.rewrite(true, time.Time{}) }) })
	}()
	for i := range t.queues {
		t.queues[i] = make(chan guildhall.Snowflake, 4096)
		t.wg.Go(func() { t.worker(t.queues[i]) })
	}
	t.wg.Go(t.refresh)
	return t
}

// close stops the tracker: the heartbeat says goodbye (this node's users go
// offline at once) and the workers stop. ctx bounds the wait.
func (t *presenceTracker) close(ctx context.Context) {
	t.cancel()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// started records a session that identified, with IDENTIFY's presence field
// (raw), or that resumed (raw nil: the user's status stays as it was).
func (t *presenceTracker) started(s *Session, raw json.RawMessage) {
	var up *presence.Update
	if len(raw) > 0 && string(raw) != "null" {
		// A bad presence in IDENTIFY is ignored rather than failing the session.
		if u, err := presence.ParseUpdate(raw); err == nil {
			up = &u
		}
	}
	if t.users.Started(s, s.user.ID, up) {
		t.enqueue(s.user.ID)
	}
}

// ended records that an identified session's connection closed.
func (t *presenceTracker) ended(s *Session) {
	if uid, due := t.users.Ended(s); due {
		t.enqueue(uid)
	}
}

// set handles op 3; an error means the payload is not a presence update.
func (t *presenceTracker) set(s *Session, d json.RawMessage) error {
	up, err := presence.ParseUpdate(d)
	if err != nil {
		return err
	}
	uid, due, wait := t.users.Set(s, up)
	switch {
	case due:
		t.enqueue(uid)
	case wait > 0:
		time.AfterFunc(wait, func() {
			if t.users.Due(uid) {
				t.enqueue(uid)
			}
		})
	}
	return nil
}

// invisible lists the local users whose key says invisible.
func (t *presenceTracker) invisible() map[guildhall.Snowflake]bool { return t.users.Invisible() }

// enqueue asks the user's worker to write the user's key.
func (t *presenceTracker) enqueue(uid guildhall.Snowflake) {
	if !t.users.Queue(uid) {
		return
	}
	select {
	case t.queues[uint64(uid)%uint64(len(t.queues))] <- uid:
	case <-t.ctx.Done():
	}
}

func (t *presenceTracker) worker(q chan guildhall.Snowflake) {
	for {
		select {
		case uid := <-q:
			t.write(uid)
		case <-t.ctx.Done():
			return
		}
	}
}

// write makes a user's key agree with what this gateway knows of the user.
func (t *presenceTracker) write(uid guildhall.Snowflake) {
	w, ok := t.users.Begin(uid)
	if !ok {
		return
	}
	if w.Sessions != nil {
		if all, ok := t.rooms.smallGuilds(map[guildhall.Snowflake][]*Session{uid: w.Sessions}, t.cfg.SmallGuildThreshold); ok {
			t.users.SetGuilds(w, all[uid])
		}
	}
	st, known := t.users.State(w)
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	k, err := t.keys.Sync(ctx, uid, st, known)
	cancel()
	if err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && t.ctx.Err() == nil {
		// The next refresh tries again (a part left behind stops counting once this
		// gateway's heartbeat is gone, and the Notifier removes it).
		t.log.Warn("presence: write", "user", uid, "err", err)
	}
	t.users.Done(w, k, err)
}

// refresh, every TTL/3 of the heartbeat, recomputes the local users' small
// guilds (joins, leaves and member counts change them) and writes the keys that
// need it: guilds changed, last write failed, or older than a third of the key
// TTL. A user of whom nothing changed costs no write.
func (t *presenceTracker) refresh() {
	var every, keyAge time.Duration
	for every == 0 {
		ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
		node, key := t.keys.TTLs(ctx)
		cancel()
		every, keyAge = node/3, key/3
		if every == 0 {
			select {
			case <-time.After(time.Second):
			case <-t.ctx.Done():
				return
			}
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-t.ctx.Done():
			return
		}
		var before time.Time
		if keyAge > 0 {
			before = time.Now().Add(-keyAge)
		}
		if !t.rewrite(false, before) {
			return
		}
	}
}

// rewrite recomputes every local user's small guilds and writes the keys of those
// whose guilds changed, whose last write failed, or written before `before`
// (every user when all). False when the pump has stopped.
func (t *presenceTracker) rewrite(all bool, before time.Time) bool {
	guilds, ok := t.rooms.smallGuilds(t.users.Snapshot(), t.cfg.SmallGuildThreshold)
	if !ok {
		return false
	}
	for _, uid := range t.users.Rewrite(guilds, all, before) {
		t.enqueue(uid)
	}
	return true
}

// smallGuilds returns, per user, the guilds of the given sessions with at most
// threshold members (at most maxSmallGuilds of them, sorted).
func (p *pump) smallGuilds(users map[guildhall.Snowflake][]*Session, threshold int) (map[guildhall.Snowflake][]guildhall.Snowflake, bool) {
	out := make(map[guildhall.Snowflake][]guildhall.Snowflake, len(users))
	ok := p.do(func() {
		for uid, ss := range users {
			var gs []guildhall.Snowflake
			for _, s := range ss {
				for id := range s.guilds {
					r := p.rooms[id]
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
