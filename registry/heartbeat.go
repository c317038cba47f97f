package registry

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

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNodeTaken means another process claimed the node's heartbeat: it runs
// under the same node name (a restart that overlapped this process's drain, or
// two processes configured alike). This one should stop beating.
var ErrNodeTaken = errors.New("registry: another process took this node's heartbeat")

// nodePrefix starts the keys of the gateways' heartbeats in the sessions bucket
// (session ids are hex: they never start so).
const nodePrefix = "node."

func nodeKey(node string) string { return nodePrefix + node }

func isNodeKey(key string) bool { return strings.HasPrefix(key, nodePrefix) }

// nodeEntry is a gateway node's heartbeat: its incarnation, and the one before
// as it was last seen, so that the sessions of a process that died are judged
// by its last beat even after the node restarted.
type nodeEntry struct {
	Inc       string           `json:"inc"`
	StartedAt time.Time        `json:"started_at"`
	Prev      *pastIncarnation `json:"prev,omitempty"`

	beat time.Time // the server's time of the entry's last write
}

type pastIncarnation struct {
	Inc       string    `json:"inc"`
	StartedAt time.Time `json:"started_at"`
	LastBeat  time.Time `json:"last_beat"`
}

func (r *Registry) node(ctx context.Context, node string) (nodeEntry, uint64, error) {
	e, err := r.kv.Get(ctx, nodeKey(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nodeEntry{}, 0, ErrNotFound
	}
	if err != nil {
		return nodeEntry{}, 0, err
	}
	var n nodeEntry
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		return nodeEntry{}, 0, fmt.Errorf("registry: heartbeat of %s: %w", node, err)
	}
	n.beat = e.Created()
	return n, e.Revision(), nil
}

// Heartbeat is a gateway node's liveness in the registry: one key per node,
// rewritten every BeatInterval while the process lives, with no TTL of its own
// (its last write stays readable after the process died: the sessions it held
// stay resumable for the window after that). Live sessions cost no writes.
type Heartbeat struct {
	r    *Registry
	node string
	inc  string

	mu    sync.Mutex
	value []byte
	rev   uint64
}

// BeatInterval is how often a gateway's heartbeat is written: a tenth of the
// window (at most 10 s, at least 100 ms), so a dead gateway's sessions lose at
// most that much of their window.
func (r *Registry) BeatInterval() time.Duration {
	return min(10*time.Second, max(100*time.Millisecond, r.window/10))
}

// Claim starts a new incarnation of node: its heartbeat records the one before
// (whose sessions are now judged by its last beat) and is written at once.
func (r *Registry) Claim(ctx context.Context, node string) (*Heartbeat, error) {
	inc := make([]byte, 8)
	_, _ = rand.Read(inc)
	h := &Heartbeat{r: r, node: node, inc: hex.EncodeToString(inc)}
	for range 8 {
		n := nodeEntry{Inc: h.inc, StartedAt: r.now()}
		old, rev, err := r.node(ctx, node)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		default:
			n.Prev = &pastIncarnation{Inc: old.Inc, StartedAt: old.StartedAt, LastBeat: old.beat}
		}
		b, _ := json.Marshal(n)
		if rev == 0 {
			rev, err = r.kv.Create(ctx, nodeKey(node), b)
		} else {
			rev, err = r.kv.Update(ctx, nodeKey(node), b, rev)
		}
		if err == nil {
			h.value, h.rev = b, rev
			return h, nil
		}
		if !ghnats.IsKVConflict(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("registry: claiming node %s: contended", node)
}

// Inc is this incarnation's id, written into the entries of its sessions.
func (h *Heartbeat) Inc() string { return h.inc }

// Beat rewrites the heartbeat: the node is alive now. ErrNodeTaken when
// another process claimed the node since.
func (h *Heartbeat) Beat(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	rev, err := h.r.kv.Update(ctx, nodeKey(h.node), h.value, h.rev)
	if ghnats.IsKVConflict(err) {
		return ErrNodeTaken
	}
	if err != nil {
		return err
	}
	h.rev = rev
	return nil
}
