package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict: a key changed under every attempt of a read-modify-write.
var ErrConflict = errors.New("presence: too many concurrent changes to one key")

// errLost: the node's heartbeat key was gone or changed (it expired while the
// node could not write, or another process took the name).
var errLost = errors.New("presence: heartbeat lost")

// Tracker writes one gateway node's view of its users into the presence bucket.
// Each user has one key (Key); its Entry lists the nodes that hold sessions of
// the user. A node changes only its own part and the status, with
// compare-and-set on the key's revision, so nodes never overwrite each other.
//
// Liveness is per node, not per user: the node's heartbeat key (NodeKey) holds
// its incarnation with a per-key TTL (the bucket's node TTL) and Run rewrites it
// every TTL/3. User keys are written only when something changes. A part counts
// only while the heartbeat holds the part's incarnation, so a node that dies
// without goodbye takes its users offline when its heartbeat expires; the
// Notifier then removes its parts.
type Tracker struct {
	js   jetstream.JetStream
	node string

	// beatMu serializes Beat, which alone changes inc and beat; mu guards the
	// fields and is never held across a NATS round trip, so that Sync (which
	// reads inc) does not wait on a slow heartbeat.
	beatMu sync.Mutex
	mu     sync.Mutex
	b      *bucket
	inc    string // current incarnation; "" until the heartbeat is claimed
	beat   uint64 // revision of the heartbeat key
}

// bucket is the presence bucket and its settings.
type bucket struct {
	kv jetstream.KeyValue
	// nodeTTL: a heartbeat's TTL; keyTTL: a user key's; markerTTL: how long
	// markers of expired or purged keys stay.
	nodeTTL, keyTTL, markerTTL time.Duration
}

// NewTracker returns a Tracker for gateway node. It binds the bucket on first use,
// so NATS may be away at start.
func NewTracker(js jetstream.JetStream, node string) *Tracker {
	return &Tracker{js: js, node: keyToken(node)}
}

// keyToken makes s usable in a KV key.
func keyToken(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '=' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
	if s == "" {
		s = "_"
	}
	return s
}

func (t *Tracker) bucket(ctx context.Context) (*bucket, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.b != nil {
		return t.b, nil
	}
	b, err := openBucket(ctx, t.js)
	if err != nil {
		return nil, err
	}
	t.b = b
	return b, nil
}

func openBucket(ctx context.Context, js jetstream.JetStream) (*bucket, error) {
	kv, err := js.KeyValue(ctx, ghnats.BucketPresence)
	if err != nil {
		return nil, fmt.Errorf("presence: bucket: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("presence: bucket status: %w", err)
	}
	b := &bucket{kv: kv, keyTTL: st.TTL(), markerTTL: st.LimitMarkerTTL()}
	b.nodeTTL, _ = time.ParseDuration(st.Metadata()[ghnats.PresenceNodeTTLMeta])
	if b.nodeTTL < time.Second {
		b.nodeTTL = 60 * time.Second
	}
	if b.markerTTL < time.Second {
		b.markerTTL = b.nodeTTL
	}
	return b, nil
}

// TTLs are the bucket's heartbeat TTL and user key TTL (zero until the bucket
// was reached once). A user key with no TTL never expires.
func (t *Tracker) TTLs(ctx context.Context) (node, key time.Duration) {
	b, err := t.bucket(ctx)
	if err != nil {
		return 0, 0
	}
	return b.nodeTTL, b.keyTTL
}

// Beat writes the node's heartbeat: the first call claims the heartbeat key
// with a new incarnation; later ones rewrite it, expecting the last revision. It
// returns errLost (after claiming a new incarnation) when the key had expired or
// changed: the node's parts no longer count and must be rewritten.
func (t *Tracker) Beat(ctx context.Context) error {
	b, err := t.bucket(ctx)
	if err != nil {
		return err
	}
	t.beatMu.Lock()
	defer t.beatMu.Unlock()
	t.mu.Lock()
	inc, beat := t.inc, t.beat
	t.mu.Unlock()
	for i := 0; inc != "" && i < 2; i++ {
		ack, err := t.js.Publish(ctx, t.heartbeatSubject(), []byte(inc),
			jetstream.WithMsgTTL(b.nodeTTL), jetstream.WithExpectLastSequencePerSubject(beat))
		if err == nil {
			t.mu.Lock()
			t.beat = ack.Sequence
			t.mu.Unlock()
			return nil
		}
		if !conflict(err) {
			return fmt.Errorf("presence: heartbeat: %w", err)
		}
		// A write whose ack was lost still holds this incarnation: go on from it.
		e, err := b.kv.Get(ctx, NodeKey(t.node))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("presence: heartbeat: %w", err)
		}
		if string(e.Value()) != inc {
			break
		}
		beat = e.Revision()
	}
	lost := inc != ""
	var r [8]byte
	_, _ = rand.Read(r[:])
	inc = hex.EncodeToString(r[:])
	// Claiming takes the key whatever it holds: a previous process of this node
	// is dead, and its parts must stop counting now.
	ack, err := t.js.Publish(ctx, t.heartbeatSubject(), []byte(inc), jetstream.WithMsgTTL(b.nodeTTL))
	if err != nil {
		return fmt.Errorf("presence: heartbeat: %w", err)
	}
	t.mu.Lock()
	t.inc, t.beat = inc, ack.Sequence
	t.mu.Unlock()
	if lost {
		return errLost
	}
	return nil
}

func (t *Tracker) heartbeatSubject() string {
	return ghnats.KVSubject(ghnats.BucketPresence, NodeKey(t.node))
}

// Run keeps the heartbeat alive every TTL/3 (every second after a failure) until
// ctx ends, then says goodbye: it purges the heartbeat, so the node's users go
// offline now rather than after the TTL. When the heartbeat was lost it calls
// lost, after which every user's key must be written again.
func (t *Tracker) Run(ctx context.Context, lost func()) {
	for ctx.Err() == nil {
		every := time.Second
		err := t.Beat(ctx)
		if errors.Is(err, errLost) {
			lost()
		}
		if err == nil || errors.Is(err, errLost) {
			node, _ := t.TTLs(ctx)
			every = node / 3
		}
		sleep(ctx, every)
	}
	t.mu.Lock()
	b, beat := t.b, t.beat
	t.mu.Unlock()
	if b == nil || beat == 0 {
		return
	}
	gctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = b.kv.Purge(gctx, NodeKey(t.node), jetstream.LastRevision(beat), jetstream.PurgeTTL(b.markerTTL))
}

// incarnation is the node's current incarnation, claiming the heartbeat first
// if nobody did: a part is only written under a live heartbeat.
func (t *Tracker) incarnation(ctx context.Context) (string, error) {
	t.mu.Lock()
	inc := t.inc
	t.mu.Unlock()
	if inc != "" {
		return inc, nil
	}
	if err := t.Beat(ctx); err != nil && !errors.Is(err, errLost) {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inc, nil
}

// State is what one node knows of one user.
type State struct {
	// Sessions is how many sessions of the user the node holds; 0 takes the
	// node's part out (and the key, when no other node holds the user).
	Sessions int
	// Update, if not nil, sets the status, activities, since and afk.
	Update *Update
	// Guilds, when GuildsKnown, replaces the entry's small guilds.
	Guilds      []guildhall.Snowflake
	GuildsKnown bool
}

// Known is a node's last write of a key: its revision and value. Passing it back
// to Sync makes the common write one operation (an update at that revision)
// instead of a read and a write.
type Known struct {
	Rev   uint64
	Entry Entry
	// Exists: the key existed at Rev (otherwise Sync creates it).
	Exists bool
}

// Sync makes the user's key agree with st, starting from what the node believes
// the key holds (k; the zero Known means "absent"). It returns what the key holds
// now. On error the key is as it was.
func (t *Tracker) Sync(ctx context.Context, userID guildhall.Snowflake, st State, k Known) (Known, error) {
	b, err := t.bucket(ctx)
	if err != nil {
		return k, err
	}
	inc, err := t.incarnation(ctx)
	if err != nil {
		return k, err
	}
	key := Key(userID)
	cur := k
	for range 8 {
		e := cur.Entry.clone()
		if st.Sessions > 0 {
			e.Gateways[t.node] = Node{Sessions: st.Sessions, Inc: inc}
			if st.Update != nil {
				e.Status, e.Activities, e.Since, e.AFK = st.Update.Status, st.Update.Activities, st.Update.Since, st.Update.AFK
			} else if e.Status == "" {
				e.Status = Online
			}
			if st.GuildsKnown {
				e.Guilds = st.Guilds
			}
		} else {
			delete(e.Gateways, t.node)
		}
		if len(e.Gateways) == 0 && !cur.Exists {
			return Known{}, nil
		}
		next, err := b.write(ctx, key, cur, e)
		if err == nil {
			return next, nil
		}
		if !conflict(err) {
			return k, fmt.Errorf("presence: write %s: %w", key, err)
		}
		if cur, err = read(ctx, b.kv, key); err != nil {
			return k, err
		}
	}
	return k, ErrConflict
}

// write replaces the key's value cur with e, at cur's revision; an entry with
// no part left purges the key (its marker expires after markerTTL).
func (b *bucket) write(ctx context.Context, key string, cur Known, e Entry) (Known, error) {
	if len(e.Gateways) == 0 {
		err := b.kv.Purge(ctx, key, jetstream.LastRevision(cur.Rev), jetstream.PurgeTTL(b.markerTTL))
		return Known{}, err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return cur, err
	}
	var rev uint64
	if cur.Exists {
		rev, err = b.kv.Update(ctx, key, v, cur.Rev)
	} else {
		rev, err = b.kv.Create(ctx, key, v)
	}
	if err != nil {
		return cur, err
	}
	return Known{Rev: rev, Entry: e, Exists: true}, nil
}

// dropPart removes node's part from a user's key if it is still of incarnation
// inc (the node is dead; a newer part of the node stays).
func (b *bucket) dropPart(ctx context.Context, userID guildhall.Snowflake, node, inc string) error {
	key := Key(userID)
	for range 8 {
		cur, err := read(ctx, b.kv, key)
		if err != nil || !cur.Exists {
			return err
		}
		if p, ok := cur.Entry.Gateways[node]; !ok || p.Inc != inc {
			return nil
		}
		e := cur.Entry.clone()
		delete(e.Gateways, node)
		if _, err = b.write(ctx, key, cur, e); !conflict(err) {
			return err
		}
	}
	return ErrConflict
}

// read returns the key's current value; the zero Known if it has none.
func read(ctx context.Context, kv jetstream.KeyValue, key string) (Known, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Known{}, nil
	}
	if err != nil {
		return Known{}, fmt.Errorf("presence: read %s: %w", key, err)
	}
	var en Entry
	if err := json.Unmarshal(e.Value(), &en); err != nil {
		// A value this version cannot read is overwritten rather than kept forever.
		en = Entry{}
	}
	return Known{Rev: e.Revision(), Entry: en, Exists: true}, nil
}

// conflict reports a compare-and-set that lost: the key was not at the expected
// revision.
func conflict(err error) bool {
	if err == nil {
		return false
	}
	if ghnats.IsKVConflict(err) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
