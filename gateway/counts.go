package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/presence"
	natsgo "github.com/nats-io/nats.go"
)

// onlineCounts reports, every CountInterval, the distinct visible users of each
// room (counted in the pump) to the presence aggregators, and keeps what they
// answer: the guilds' approximate_presence_count, which GUILD_CREATE carries. See
// package presence for the aggregators.
type onlineCounts struct {
	nc    *natsgo.Conn
	node  string
	every time.Duration
	log   *slog.Logger
	rooms roomCounter
	users invisibleUsers
	inbox string // where the aggregators answer
	sub   *natsgo.Subscription

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	totals   map[guildhall.Snowflake]int // the aggregators' last answers
	reported map[guildhall.Snowflake]bool
}

// roomCounter counts the distinct users of each room, leaving out invisible: the
// pump. False when it has stopped.
type roomCounter interface {
	onlineCounts(invisible map[guildhall.Snowflake]bool) ([]presence.GuildCount, bool)
}

// invisibleUsers lists the local users who are invisible: the presence tracker.
type invisibleUsers interface {
	invisible() map[guildhall.Snowflake]bool
}

var (
	_ roomCounter    = (*pump)(nil)
	_ invisibleUsers = (*presenceTracker)(nil)
)

// onlineCountsConfig is what onlineCounts is built from.
type onlineCountsConfig struct {
	nc    *natsgo.Conn
	node  string
	rooms roomCounter
	users invisibleUsers
	every time.Duration // PresenceConfig.CountInterval
	log   *slog.Logger
}

// newOnlineCounts subscribes to the aggregators' answers and starts reporting.
// Stop it with close.
func newOnlineCounts(c onlineCountsConfig) (*onlineCounts, error) {
	o := &onlineCounts{
		nc: c.nc, node: c.node, every: c.every, log: c.log, rooms: c.rooms, users: c.users,
		inbox:    c.nc.NewInbox(),
		done:     make(chan struct{}),
		totals:   map[guildhall.Snowflake]int{},
		reported: map[guildhall.Snowflake]bool{},
	}
	sub, err := c.nc.Subscribe(o.inbox, o.totalsArrived)
	if err != nil {
		return nil, err
	}
	o.sub = sub
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.report(ctx)
	return o, nil
}

// close stops reporting. The aggregators drop this gateway's counts when their
// TTL passes.
func (o *onlineCounts) close() {
	o.cancel()
	<-o.done
	_ = o.sub.Unsubscribe()
}

// approximatePresenceCount is the guild's online count as the aggregators last
// answered this gateway (0 before their first answer). Safe in the pump.
func (o *onlineCounts) approximatePresenceCount(guild guildhall.Snowflake) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.totals[guild]
}

// report reports, every interval, the distinct visible users of each room (zero
// for rooms that went away since the last report).
func (o *onlineCounts) report(ctx context.Context) {
	defer close(o.done)
	t := time.NewTicker(o.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		counts, ok := o.rooms.onlineCounts(o.users.invisible())
		if !ok {
			return
		}
		o.mu.Lock()
		now := make(map[guildhall.Snowflake]bool, len(counts))
		for _, c := range counts {
			now[c.Guild] = true
		}
		for id := range o.reported {
			if !now[id] {
				counts = append(counts, presence.GuildCount{Guild: id})
				delete(o.totals, id)
			}
		}
		o.reported = now
		o.mu.Unlock()
		if err := presence.PublishReport(o.nc, o.node, o.inbox, 3*o.every, counts); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
			o.log.Warn("presence: count report", "err", err)
		}
	}
}

func (o *onlineCounts) totalsArrived(m *natsgo.Msg) {
	var t presence.CountTotals
	if json.Unmarshal(m.Data, &t) != nil {
		return
	}
	o.mu.Lock()
	for _, c := range t.Counts {
		if o.reported[c.Guild] {
			o.totals[c.Guild] = c.Online
		}
	}
	o.mu.Unlock()
}

// onlineCounts counts the distinct users of each room, leaving out invisible.
func (p *pump) onlineCounts(invisible map[guildhall.Snowflake]bool) ([]presence.GuildCount, bool) {
	var out []presence.GuildCount
	ok := p.do(func() {
		out = make([]presence.GuildCount, 0, len(p.rooms))
		seen := map[guildhall.Snowflake]struct{}{}
		for id, r := range p.rooms {
			clear(seen)
			for _, rm := range r.members {
				if uid := rm.s.user.ID; !invisible[uid] {
					seen[uid] = struct{}{}
				}
			}
			if len(seen) > 0 {
				out = append(out, presence.GuildCount{Guild: id, Online: len(seen)})
			}
		}
	})
	return out, ok
}
