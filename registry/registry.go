package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound means the session does not exist (never did, ended, or outlived
// the bucket's backstop).
var ErrNotFound = errors.New("registry: session not found")

// ErrConflict means the entry changed since it was read: another gateway (or
// connection) took the session in between.
var ErrConflict = errors.New("registry: entry changed since it was read")

// Session is what the registry knows of one session. Fields are added with
// omitempty (or omitzero) so that entries stay readable both ways across
// versions.
type Session struct {
	ID     string              `json:"id"`
	UserID guildhall.Snowflake `json:"user_id"`
	// Node is the gateway that holds the session, or held it last.
	Node string `json:"node"`
	// Inc is Node's incarnation that holds it (Heartbeat.Inc): a process that
	// restarts under the same node name is a new incarnation. Empty in entries
	// written before gateways had heartbeats.
	Inc string `json:"inc,omitempty"`
	// Seq is the watermark of the gateway when it last wrote the entry: the
	// session had been given nothing past it.
	Seq uint64 `json:"seq"`
	// Start is the sequence the session started at (its READY's s): a resume
	// from before it would replay events the session never had, and is refused.
	// Zero in entries written before gateways kept it: no floor.
	Start uint64 `json:"start,omitempty"`
	// Intents are the session's from its IDENTIFY, which a resume keeps. Nil in
	// entries written before gateways kept them: those sessions had every intent.
	Intents *guildhall.Intents `json:"intents,omitempty"`
	// Shard is the session's [id, count] from its IDENTIFY, which a resume keeps;
	// nil when it asked for none (every guild).
	Shard []int `json:"shard,omitempty"`
	// DisconnectedAt is when its client left while the session stayed resumable:
	// the resume window runs from there. Zero while a gateway holds the session.
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`

	// Revision and Written are the entry's as read, not stored: an Update at
	// Revision replaces exactly what was read, and Written is the server's time
	// of the entry's last write.
	Revision uint64    `json:"-"`
	Written  time.Time `json:"-"`
}

// Registry reads and writes sessions and the gateways' heartbeats.
type Registry struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	window   time.Duration
	backstop time.Duration
	now      func() time.Time
}

// Open binds to the sessions bucket (created by nats.Apply).
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := js.KeyValue(ctx, ghnats.BucketSessions)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &Registry{js: js, kv: kv, backstop: st.TTL(), window: st.TTL(), now: time.Now}
	// A bucket from before heartbeats has no window of its own: its TTL was.
	if w, err := time.ParseDuration(st.Metadata()[ghnats.ResumeWindowMeta]); err == nil && w > 0 {
		r.window = w
	}
	return r, nil
}

// Window is the resume window: how long a session stays resumable after its
// client left or its gateway was last seen alive.
func (r *Registry) Window() time.Duration { return r.window }

// Backstop is how long an entry lives without a write (the bucket's TTL): the
// holder of a live session rewrites its entry well within it.
func (r *Registry) Backstop() time.Duration { return r.backstop }

// Put writes a session's entry whatever is there (a new session) and returns
// its revision.
func (r *Registry) Put(ctx context.Context, s Session) (uint64, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return 0, err
	}
	return r.kv.Put(ctx, s.ID, b)
}

// Update writes a session's entry if it is still at s.Revision (ErrConflict
// otherwise) and returns the new revision.
func (r *Registry) Update(ctx context.Context, s Session) (uint64, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return 0, err
	}
	rev, err := r.kv.Update(ctx, s.ID, b, s.Revision)
	if ghnats.IsKVConflict(err) {
		return 0, ErrConflict
	}
	return rev, err
}

// Get returns a session's entry (ErrNotFound: none).
//
// It reads from the bucket's leader: a resume may come to a gateway whose NATS
// server was cut off a moment ago, and a replica catching up would answer that an
// entry which exists does not (the client would be told to start over).
func (r *Registry) Get(ctx context.Context, id string) (Session, error) {
	if isNodeKey(id) || !validKey(id) {
		return Session{}, ErrNotFound
	}
	e, found, err := ghnats.LastKV(ctx, r.js, ghnats.BucketSessions, id)
	if err != nil {
		return Session{}, err
	}
	if !found {
		return Session{}, ErrNotFound
	}
	var s Session
	if err := json.Unmarshal(e.Value, &s); err != nil {
		return Session{}, fmt.Errorf("registry: entry %s: %w", id, err)
	}
	s.Revision, s.Written = e.Revision, e.Created
	return s, nil
}

// validKey reports whether id can be a key of the bucket (what the KeyValue
// API refuses as ErrInvalidKey is no session).
func validKey(id string) bool {
	if id == "" || id[0] == '.' || id[len(id)-1] == '.' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '/' || c == '.') {
			return false
		}
	}
	return true
}

// Delete ends a session: it can no longer be resumed. A non-zero rev deletes
// only the entry of that revision (ErrConflict: another connection took it).
func (r *Registry) Delete(ctx context.Context, id string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := r.kv.Delete(ctx, id, opts...)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case ghnats.IsKVConflict(err):
		return ErrConflict
	}
	return err
}

// Resumable reports whether s may still be resumed: no more than the window
// has passed since it stopped being served (LostAt).
func (r *Registry) Resumable(ctx context.Context, s Session) (bool, error) {
	at, err := r.LostAt(ctx, s)
	if err != nil {
		return false, err
	}
	return r.now().Sub(at) <= r.window, nil
}

// LostAt is when s stopped being served: when its client left; otherwise when
// its gateway was last seen alive (its heartbeat: about now for a live gateway,
// which may still be serving it); the zero time when that gateway has been gone
// longer than the bucket remembers.
func (r *Registry) LostAt(ctx context.Context, s Session) (time.Time, error) {
	switch {
	case !s.DisconnectedAt.IsZero():
		return s.DisconnectedAt, nil
	case s.Inc == "":
		// Written by a gateway from before heartbeats, which refreshed its
		// live sessions' entries: last seen at the last write.
		return s.Written, nil
	}
	n, _, err := r.node(ctx, s.Node)
	switch {
	case errors.Is(err, ErrNotFound):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, err
	case n.Inc == s.Inc:
		return n.beat, nil
	case n.Prev != nil && n.Prev.Inc == s.Inc:
		return n.Prev.LastBeat, nil
	case n.Prev != nil:
		// An incarnation before the previous one: it ended before that one started.
		return n.Prev.StartedAt, nil
	}
	return n.StartedAt, nil
}
