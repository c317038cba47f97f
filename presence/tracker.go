package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict: a key changed under every attempt of a read-modify-write.
var ErrConflict = errors.New("presence: too many concurrent changes to one key")

// Tracker writes one gateway node's view of its users into the presence bucket.
// Each user has one key (Key); its Entry lists the nodes that hold sessions of
// the user. A node changes only its own part and the status, with
// compare-and-set on the key's revision, so nodes never overwrite each other.
//
// The bucket (ghnats.BucketPresence) has a TTL: a key that no node rewrites for
// that long expires, and watchers see a limit marker. Nodes rewrite the keys of
// their users every TTL/3 (Sync with the same State), so a node that dies without
// goodbye takes its users offline within the TTL, and one that lives keeps them.
type Tracker struct {
	js   jetstream.JetStream
	node string
	now  func() time.Time

	mu  sync.Mutex
	kv  jetstream.KeyValue
	ttl time.Duration
}

// NewTracker returns a Tracker for gateway node. It binds the bucket on first use,
// so NATS may be away at start.
func NewTracker(js jetstream.JetStream, node string) *Tracker {
	return &Tracker{js: js, node: node, now: time.Now}
}

func (t *Tracker) bucket(ctx context.Context) (jetstream.KeyValue, time.Duration, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kv != nil {
		return t.kv, t.ttl, nil
	}
	kv, ttl, err := openBucket(ctx, t.js)
	if err != nil {
		return nil, 0, err
	}
	t.kv, t.ttl = kv, ttl
	return kv, ttl, nil
}

func openBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, time.Duration, error) {
	kv, err := js.KeyValue(ctx, ghnats.BucketPresence)
	if err != nil {
		return nil, 0, fmt.Errorf("presence: bucket: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("presence: bucket status: %w", err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	return kv, ttl, nil
}

// TTL is the bucket's TTL (zero until the bucket was reached once).
func (t *Tracker) TTL(ctx context.Context) time.Duration {
	_, ttl, _ := t.bucket(ctx)
	return ttl
}

// State is what one node knows of one user.
type State struct {
	// Sessions is how many sessions of the user the node holds; 0 takes the
	// node's part out (and the key, when no other live node holds the user).
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
// now. On error the key is as it was, or the node's part will expire.
func (t *Tracker) Sync(ctx context.Context, userID guildhall.Snowflake, st State, k Known) (Known, error) {
	kv, ttl, err := t.bucket(ctx)
	if err != nil {
		return k, err
	}
	key := Key(userID)
	cur := k
	for range 8 {
		now := t.now()
		e := cur.Entry.clone()
		e.prune(now, ttl)
		if st.Sessions > 0 {
			e.Gateways[t.node] = Node{Sessions: st.Sessions, Seen: now.UnixMilli()}
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
		if len(e.Gateways) == 0 {
			if !cur.Exists {
				return Known{}, nil
			}
			err = kv.Delete(ctx, key, jetstream.LastRevision(cur.Rev))
			if err == nil {
				return Known{}, nil
			}
		} else {
			b, merr := json.Marshal(e)
			if merr != nil {
				return k, merr
			}
			var rev uint64
			if cur.Exists {
				rev, err = kv.Update(ctx, key, b, cur.Rev)
			} else {
				rev, err = kv.Create(ctx, key, b)
			}
			if err == nil {
				return Known{Rev: rev, Entry: e, Exists: true}, nil
			}
		}
		if !conflict(err) {
			return k, fmt.Errorf("presence: write %s: %w", key, err)
		}
		if cur, err = read(ctx, kv, key); err != nil {
			return k, err
		}
	}
	return k, ErrConflict
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
	if ghnats.IsKVConflict(err) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
