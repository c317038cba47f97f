package presence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NotifierConfig configures a Notifier. Every field may be left zero.
type NotifierConfig struct {
	// Name identifies this process in the lease; zero value means host/pid.
	Name string
	// Logger; zero value means slog.Default().
	Logger *slog.Logger
	// Metrics receives the announcements (NewMetrics); zero value means metrics
	// of its own, registered nowhere.
	Metrics *Metrics
}

// Notifier turns changes of the presence bucket into PRESENCE_UPDATE dispatches
// for the small guilds of each user (Entry.Guilds): it watches the bucket and,
// when what others see of a user changes (status or activities; a key that is
// purged or expires, or whose parts all belong to dead nodes, means offline),
// publishes one ephemeral guild event per guild on ghnats.EphemeralGuildSubject.
// Gateways deliver those to the guild's sessions like typing: core NATS, never
// the stream.
//
// It also watches the gateways' heartbeats (NodeKey). When one expires (a
// gateway died without goodbye), is purged (goodbye) or changes incarnation (a
// restart), the Notifier finds that node's users in what it holds in memory,
// announces offline those who have no other live part, and removes the dead
// parts from their keys (a burst of writes per dead gateway, not per interval).
//
// Every api process may run one; they elect one active Notifier through a key in
// the leases bucket (ghnats.BucketLeases), so each change is announced once. A
// new holder first reads the bucket's current values (one watch from the start,
// not a scan per event), removes the parts of nodes that died meanwhile, and
// announces only what changes after that; changes during a failover (up to the
// leases TTL) are not announced.
type Notifier struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	name    string
	log     *slog.Logger
	metrics *Metrics

	ready     chan struct{} // closed once the Notifier first became active
	readyOnce sync.Once

	// Owned by the watch loop.
	b     *bucket
	nodes Nodes
	users map[guildhall.Snowflake]*watched
}

// watched is a user's last entry and what the Notifier last announced of it.
type watched struct {
	entry Entry
	shown seen
}

// seen is what others were last told of a user.
type seen struct {
	status     Status
	activities json.RawMessage
	guilds     []guildhall.Snowflake
}

// deadPart is a part of a user's key written by a node incarnation that died.
type deadPart struct {
	user      guildhall.Snowflake
	node, inc string
}

// LeaseKey is the Notifier's key in the leases bucket.
const LeaseKey = "presence-notifier"

// NewNotifier returns a Notifier; Run runs it.
func NewNotifier(nc *natsgo.Conn, js jetstream.JetStream, cfg NotifierConfig) *Notifier {
	n := &Notifier{nc: nc, js: js, name: cfg.Name, log: cfg.Logger, metrics: cfg.Metrics, ready: make(chan struct{})}
	if n.name == "" {
		h, _ := os.Hostname()
		n.name = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.metrics == nil {
		n.metrics = NewMetrics(nil)
	}
	return n
}

// Run takes the lease when it is free and announces changes while it holds it,
// until ctx ends. It returns nil then.
func (n *Notifier) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		l, err := ghnats.WaitLease(ctx, n.js, LeaseKey, n.name)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("presence notifier: lease", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-l.Lost():
				n.log.Warn("presence notifier: lost the lease", "err", l.Err())
				cancel()
			case <-lctx.Done():
			}
		}()
		err = n.watch(lctx)
		cancel()
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		l.Release(rctx)
		rcancel()
		if err != nil && ctx.Err() == nil {
			n.log.Warn("presence notifier: watch", "err", err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

// Ready is closed once this Notifier has held the lease and read the bucket:
// from then on it announces every change (tests wait for it).
func (n *Notifier) Ready() <-chan struct{} { return n.ready }

func (n *Notifier) watch(ctx context.Context) error {
	b, err := openBucket(ctx, n.js)
	if err != nil {
		return err
	}
	n.b, n.nodes, n.users = b, Nodes{}, map[guildhall.Snowflake]*watched{}
	w, err := b.kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch ended")
			}
			if e == nil {
				initial = false
				n.settle(ctx)
				n.readyOnce.Do(func() { close(n.ready) })
				continue
			}
			n.apply(ctx, e, !initial)
		}
	}
}

// settle ends the initial read: it takes what others see now as announced and
// removes the parts of nodes that died before (heartbeats came in any order, so
// this waits for all of them).
func (n *Notifier) settle(ctx context.Context) {
	var dead []deadPart
	for uid, u := range n.users {
		n.update(uid, &u.entry, false)
		dead = n.deadParts(dead, uid, u, "")
	}
	go n.cleanup(ctx, n.b, dead)
}

// apply takes one change of the bucket, announcing the difference if announce.
func (n *Notifier) apply(ctx context.Context, e jetstream.KeyValueEntry, announce bool) {
	if node, ok := nodeOfKey(e.Key()); ok {
		inc := ""
		if e.Operation() == jetstream.KeyValuePut {
			inc = string(e.Value())
		}
		if n.nodes[node] == inc {
			return
		}
		if inc == "" {
			delete(n.nodes, node)
		} else {
			n.nodes[node] = inc
		}
		if announce {
			n.nodeChanged(ctx, node)
		}
		return
	}
	uid, ok := userOfKey(e.Key())
	if !ok {
		return
	}
	var en *Entry
	if e.Operation() == jetstream.KeyValuePut {
		en = &Entry{}
		if json.Unmarshal(e.Value(), en) != nil {
			en = nil
		}
	}
	if !announce {
		if en == nil {
			delete(n.users, uid)
		} else {
			n.users[uid] = &watched{entry: *en}
		}
		return
	}
	n.update(uid, en, true)
}

// nodeChanged: node's heartbeat expired, was purged or changed incarnation. Its
// users are found in memory (rare, so a scan rather than an index), announced
// again and cleaned of the dead parts.
func (n *Notifier) nodeChanged(ctx context.Context, node string) {
	var dead []deadPart
	for uid, u := range n.users {
		if p, ok := u.entry.Gateways[node]; ok && p.Inc != n.nodes[node] {
			n.update(uid, &u.entry, true)
			dead = n.deadParts(dead, uid, u, node)
		}
	}
	go n.cleanup(ctx, n.b, dead)
}

// deadParts appends u's parts of dead nodes (only node's, unless node is "").
func (n *Notifier) deadParts(dead []deadPart, uid guildhall.Snowflake, u *watched, node string) []deadPart {
	for name, p := range u.entry.Gateways {
		if (node == "" || name == node) && n.nodes[name] != p.Inc {
			dead = append(dead, deadPart{user: uid, node: name, inc: p.Inc})
		}
	}
	return dead
}

// cleanup removes dead parts from users' keys in b, a few at a time. The resulting
// changes come back through the watch and announce nothing new. b is passed in: a
// cleanup may outlive the term that started it, and the next term replaces n.b.
func (n *Notifier) cleanup(ctx context.Context, b *bucket, dead []deadPart) {
	if len(dead) == 0 {
		return
	}
	work := make(chan deadPart)
	var wg sync.WaitGroup
	for range min(8, len(dead)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				if err := b.dropPart(ctx, d.user, d.node, d.inc); err != nil && ctx.Err() == nil {
					n.log.Warn("presence notifier: remove a dead gateway's part", "user", d.user, "node", d.node, "err", err)
				}
			}
		}()
	}
feed:
	for _, d := range dead {
		select {
		case work <- d:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// update records a user's entry (nil: the key is gone) and announces the
// difference with what was announced before.
func (n *Notifier) update(uid guildhall.Snowflake, en *Entry, announce bool) {
	u := n.users[uid]
	prev := seen{status: Offline}
	if u != nil && announce {
		prev = u.shown
	}
	next := seen{status: Offline}
	if en != nil {
		next = seen{status: en.Visible(n.nodes), activities: en.Activities, guilds: en.Guilds}
	}
	if next.status == Offline {
		next.activities = nil
	}
	switch {
	case en == nil:
		delete(n.users, uid)
	case u == nil:
		n.users[uid] = &watched{entry: *en, shown: next}
	default:
		u.entry, u.shown = *en, next
	}
	if !announce {
		return
	}
	switch {
	case next.status != prev.status || !bytes.Equal(next.activities, prev.activities):
		targets := next.guilds
		if next.status == Offline {
			targets = union(prev.guilds, next.guilds)
		}
		n.publish(uid, next, targets)
	case next.status != Offline:
		// Same presence; tell guilds the user has just joined.
		var added []guildhall.Snowflake
		for _, g := range next.guilds {
			if !slices.Contains(prev.guilds, g) {
				added = append(added, g)
			}
		}
		n.publish(uid, next, added)
	}
}

func (n *Notifier) publish(uid guildhall.Snowflake, s seen, guilds []guildhall.Snowflake) {
	for _, g := range guilds {
		data, err := json.Marshal(NewPresence(uid, g, s.status, s.activities))
		if err != nil {
			continue
		}
		ev := guildhall.Event{Type: guildhall.EventPresenceUpdate, GuildID: g, UserID: uid, Data: data}
		if err := n.nc.PublishMsg(ghnats.EphemeralMsg(ev)); err != nil {
			n.log.Warn("presence notifier: publish", "guild", g, "err", err)
			return
		}
		n.metrics.Announced.Inc()
	}
}

func union(a, b []guildhall.Snowflake) []guildhall.Snowflake {
	out := slices.Clone(a)
	for _, g := range b {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
