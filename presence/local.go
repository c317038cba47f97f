package presence

import (
	"slices"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// LocalUsers is one gateway's presence state machine: per user with sessions on
// the gateway, its sessions, the presence it last set here, and what the gateway
// last wrote to the user's key. It decides when the key must be written and what
// to write; the gateway does the writing (Tracker.Sync) and computes the users'
// small guilds. No NATS here: it is tested on its own.
//
// The life of one user's key:
//
//   - Started, Ended and Set (op 3) change what the gateway knows and say whether
//     a write is due; the gateway then calls Queue, and its worker Begin, State,
//     Done around one Tracker.Sync. A user's writes are never concurrent: Queue
//     refuses a user already waiting.
//   - Set spaces one user's changes by MinUpdateInterval: a change that comes
//     sooner waits (Set returns how long; the gateway calls Due then), and only
//     the latest waiting one is written.
//   - Snapshot and Rewrite serve the periodic refresh: the users' small guilds are
//     recomputed, and the keys whose guilds changed, whose last write failed, or
//     that are old are written again.
//   - A user is forgotten once it has no session and nothing waits or failed.
//
// S identifies a session (the gateway's *Session). Safe for concurrent use.
type LocalUsers[S comparable] struct {
	minInterval time.Duration
	now         func() time.Time

	mu       sync.Mutex
	sessions map[S]guildhall.Snowflake
	users    map[guildhall.Snowflake]*localUser[S]
}

// LocalConfig configures LocalUsers. Zero values are usable defaults.
type LocalConfig struct {
	// MinUpdateInterval spaces one user's presence changes (op 3): a change that
	// comes sooner waits, and only the latest waiting one is written. Zero value
	// means 1 s.
	MinUpdateInterval time.Duration
	// Now is the clock; zero value means time.Now.
	Now func() time.Time
}

// localUser is what the gateway knows of one user with local sessions.
type localUser[S comparable] struct {
	sessions map[S]struct{}
	pending  *Update   // set here, not yet written
	known    Known     // the key as this gateway last wrote or read it
	queued   bool      // waiting for a worker
	delayed  bool      // a pending change waits for MinUpdateInterval
	failed   bool      // the last write failed: the refresh tries again
	written  time.Time // when the key was last written
	next     time.Time // when the next change may be written
	// guilds are the user's small guilds (guildsOK once computed); dirty:
	// recompute them before the next write.
	guilds   []guildhall.Snowflake
	guildsOK bool
	dirty    bool
}

// NewLocalUsers returns an empty state machine.
func NewLocalUsers[S comparable](cfg LocalConfig) *LocalUsers[S] {
	if cfg.MinUpdateInterval <= 0 {
		cfg.MinUpdateInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &LocalUsers[S]{
		minInterval: cfg.MinUpdateInterval, now: cfg.Now,
		sessions: map[S]guildhall.Snowflake{},
		users:    map[guildhall.Snowflake]*localUser[S]{},
	}
}

// Started records session s of user uid: after IDENTIFY with its presence field
// (up; nil when it had none), or after RESUME (nil: the user's status stays as it
// was). It reports whether the user's key must be written (false for a session
// already started).
func (l *LocalUsers[S]) Started(s S, uid guildhall.Snowflake, up *Update) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.sessions[s]; dup {
		return false
	}
	l.sessions[s] = uid
	u := l.users[uid]
	if u == nil {
		u = &localUser[S]{sessions: map[S]struct{}{}}
		l.users[uid] = u
	}
	u.sessions[s] = struct{}{}
	u.dirty = true
	if up != nil {
		u.pending = up
		u.next = l.now().Add(l.minInterval)
	}
	return true
}

// Ended records that session s's connection closed. It returns its user and
// whether the user's key must be written (false for a session never started).
func (l *LocalUsers[S]) Ended(s S) (guildhall.Snowflake, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	uid, ok := l.sessions[s]
	if !ok {
		return 0, false
	}
	delete(l.sessions, s)
	if u := l.users[uid]; u != nil {
		delete(u.sessions, s)
		u.dirty = true
	}
	return uid, true
}

// Set records a presence change (op 3) from session s. The change is due now
// (write), or after wait (the caller calls Due then; wait is 0 when a timer for an
// earlier change is already armed: this change replaces that one), or never (the
// session is unknown: every result zero).
func (l *LocalUsers[S]) Set(s S, up Update) (uid guildhall.Snowflake, write bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	uid, ok := l.sessions[s]
	u := l.users[uid]
	if !ok || u == nil {
		return 0, false, 0
	}
	u.pending = &up
	now := l.now()
	if now.Before(u.next) {
		if u.delayed {
			return uid, false, 0
		}
		u.delayed = true
		return uid, false, u.next.Sub(now)
	}
	u.next = now.Add(l.minInterval)
	return uid, true, 0
}

// Due is called once the wait Set asked for has passed: the change may be written
// now. It reports whether the user is known (then its key must be written).
func (l *LocalUsers[S]) Due(uid guildhall.Snowflake) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[uid]
	if u == nil {
		return false
	}
	u.delayed = false
	u.next = l.now().Add(l.minInterval)
	return true
}

// Queue marks the user's key as waiting for a write. False when it waits already
// or the user is unknown: nothing more to queue.
func (l *LocalUsers[S]) Queue(uid guildhall.Snowflake) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[uid]
	if u == nil || u.queued {
		return false
	}
	u.queued = true
	return true
}

// Write is one write of a user's key, from Begin to Done.
type Write[S comparable] struct {
	User guildhall.Snowflake
	// Sessions, when not nil, are the user's sessions whose small guilds must be
	// recomputed (SetGuilds) before the write: they changed since the last one.
	Sessions []S

	u  *localUser[S]
	st State
	k  Known
}

// Begin starts the queued write of a user's key; false when the user is gone.
func (l *LocalUsers[S]) Begin(uid guildhall.Snowflake) (*Write[S], bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[uid]
	if u == nil {
		return nil, false
	}
	u.queued = false
	w := &Write[S]{User: uid, u: u, st: State{Sessions: len(u.sessions), Update: u.pending}, k: u.known}
	if u.dirty && len(u.sessions) > 0 {
		for s := range u.sessions {
			w.Sessions = append(w.Sessions, s)
		}
	}
	u.dirty = false
	return w, true
}

// SetGuilds records the user's small guilds, recomputed from w.Sessions.
func (l *LocalUsers[S]) SetGuilds(w *Write[S], guilds []guildhall.Snowflake) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w.u.guilds, w.u.guildsOK = guilds, true
}

// State is what w writes (the user's small guilds as known now) and what the key
// held as this gateway last knew it.
func (l *LocalUsers[S]) State(w *Write[S]) (State, Known) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := w.st
	st.Guilds, st.GuildsKnown = w.u.guilds, w.u.guildsOK
	return st, w.k
}

// Done records how w went: the key as it is now, or err (the next refresh writes
// it again; until then a part left behind stops counting once this gateway's
// heartbeat is gone). A user with no session left is forgotten once nothing of it
// waits or failed.
func (l *LocalUsers[S]) Done(w *Write[S], k Known, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := w.u
	if err != nil {
		u.failed = true
	} else {
		u.known, u.failed, u.written = k, false, l.now()
		if u.pending == w.st.Update {
			u.pending = nil
		}
	}
	if len(u.sessions) == 0 && !u.queued && !u.delayed && !u.failed && l.users[w.User] == u {
		delete(l.users, w.User)
	}
}

// Snapshot lists the users whose small guilds the refresh recomputes: each user
// with sessions here, with them, and (with none) the users whose last write
// failed.
func (l *LocalUsers[S]) Snapshot() map[guildhall.Snowflake][]S {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[guildhall.Snowflake][]S, len(l.users))
	for uid, u := range l.users {
		for s := range u.sessions {
			out[uid] = append(out[uid], s)
		}
		if len(u.sessions) == 0 && u.failed {
			out[uid] = nil
		}
	}
	return out
}

// Rewrite takes the small guilds recomputed for a Snapshot's users and returns
// those whose keys must be written: their guilds changed, their last write
// failed, or it was before `before` (zero: no age limit); every one of them when
// all (the heartbeat was lost, so their parts stopped counting).
func (l *LocalUsers[S]) Rewrite(guilds map[guildhall.Snowflake][]guildhall.Snowflake, all bool, before time.Time) []guildhall.Snowflake {
	l.mu.Lock()
	defer l.mu.Unlock()
	var write []guildhall.Snowflake
	for uid, gs := range guilds {
		u := l.users[uid]
		if u == nil {
			continue
		}
		changed := len(u.sessions) > 0 && (!u.guildsOK || !slices.Equal(u.guilds, gs))
		if len(u.sessions) > 0 {
			u.guilds, u.guildsOK = gs, true
		}
		if changed || all || u.failed || !before.IsZero() && u.written.Before(before) {
			write = append(write, uid)
		}
	}
	return write
}

// Invisible lists the users whose key, as last written, says invisible: online
// counts leave them out.
func (l *LocalUsers[S]) Invisible() map[guildhall.Snowflake]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[guildhall.Snowflake]bool{}
	for uid, u := range l.users {
		if u.known.Entry.Status == Invisible {
			out[uid] = true
		}
	}
	return out
}
