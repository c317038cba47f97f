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

// ErrNotFound means the session does not exist or has expired.
var ErrNotFound = errors.New("registry: session not found")

// Session is what the registry knows of one session.
type Session struct {
	ID     string              `json:"id"`
	UserID guildhall.Snowflake `json:"user_id"`
	// Node is the gateway that holds the session now.
	Node string `json:"node"`
	// Seq is the last sequence the gateway queued to the session when it last
	// refreshed the entry. A resume may not claim more.
	Seq uint64 `json:"seq"`
	// Intents are the session's from its IDENTIFY, which a resume keeps. Nil in
	// entries written before gateways kept them: those sessions had every intent.
	Intents *guildhall.Intents `json:"intents,omitempty"`
	// Shard is the session's [id, count] from its IDENTIFY, which a resume keeps;
	// nil when it asked for none (every guild).
	Shard []int `json:"shard,omitempty"`
}

// Registry reads and writes sessions.
type Registry struct {
	kv  jetstream.KeyValue
	ttl time.Duration
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
	return &Registry{kv: kv, ttl: st.TTL()}, nil
}

// TTL is how long an entry lives without a refresh: the resume window.
func (r *Registry) TTL() time.Duration { return r.ttl }

// Put creates or refreshes a session entry.
func (r *Registry) Put(ctx context.Context, s Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = r.kv.Put(ctx, s.ID, b)
	return err
}

// Get returns a live session.
func (r *Registry) Get(ctx context.Context, id string) (Session, error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, err
	}
	var s Session
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return Session{}, fmt.Errorf("registry: entry %s: %w", id, err)
	}
	return s, nil
}

// Delete ends a session: it can no longer be resumed.
func (r *Registry) Delete(ctx context.Context, id string) error {
	err := r.kv.Delete(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}
