package presence

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// Online counts of guilds (approximate_presence_count).
//
// Every gateway counts, every CountInterval, the distinct users with a session in
// each guild it holds (invisible users left out) and publishes the counts on
// ghnats.SubjectPresenceCounts, in messages of at most MaxReportCounts guilds. An
// Aggregator (every api process runs one; each sees every report) keeps the last
// count of each (guild, gateway) until the report's TTL passes and answers the
// sum. Nothing is counted per event and nothing scans the presence bucket: the
// cost is one message per gateway per MaxReportCounts guilds per interval.
//
// Staleness: a live gateway's count is at most one interval (5 s by default) plus
// delivery old. A gateway that dies stops reporting and its counts drop out when
// their TTL passes (3 intervals, 15 s by default); the Aggregator caps every TTL
// at MaxCountTTL (30 s), so no count is ever older than 30 s. A user with
// sessions on two gateways counts twice: the count is approximate, like
// Discord's.

// MaxReportCounts bounds the guilds of one report message (about 40 KB).
const MaxReportCounts = 1000

// MaxCountTTL bounds how long an Aggregator keeps a count without a new report.
const MaxCountTTL = 30 * time.Second

// GuildCount is one guild's online count.
type GuildCount struct {
	Guild  guildhall.Snowflake `json:"g"`
	Online int                 `json:"n"`
}

// CountReport is one message of a gateway's report. Counts of zero withdraw the
// gateway's count of a guild.
type CountReport struct {
	Node   string       `json:"node"`
	TTLms  int64        `json:"ttl_ms"`
	Counts []GuildCount `json:"counts"`
}

// CountTotals answers a CountReport that has a reply subject: the Aggregator's
// sums for the report's guilds, which gateways put in GUILD_CREATE.
type CountTotals struct {
	Counts []GuildCount `json:"counts"`
}

// PublishReport publishes a gateway's counts in messages of at most
// MaxReportCounts guilds. Aggregators answer each on reply when it is not empty.
func PublishReport(nc *natsgo.Conn, node, reply string, ttl time.Duration, counts []GuildCount) error {
	for len(counts) > 0 {
		n := min(len(counts), MaxReportCounts)
		b, err := json.Marshal(CountReport{Node: node, TTLms: ttl.Milliseconds(), Counts: counts[:n]})
		if err != nil {
			return err
		}
		if err := nc.PublishMsg(&natsgo.Msg{Subject: ghnats.SubjectPresenceCounts, Reply: reply, Data: b}); err != nil {
			return err
		}
		counts = counts[n:]
	}
	return nil
}

// AggregatorConfig configures an Aggregator; every field may be left zero.
type AggregatorConfig struct {
	// Logger; zero value means slog.Default().
	Logger *slog.Logger
	// Metrics receives the count reports (NewMetrics); zero value means metrics
	// of its own, registered nowhere.
	Metrics *Metrics
	// SweepEvery is how often expired counts are forgotten; zero value means 10 s.
	SweepEvery time.Duration
}

// Aggregator sums the gateways' online counts per guild. It implements
// rest.PresenceCounter.
type Aggregator struct {
	nc      *natsgo.Conn
	sub     *natsgo.Subscription
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu     sync.Mutex
	guilds map[guildhall.Snowflake]map[string]nodeCount

	stop chan struct{}
	done chan struct{}
}

type nodeCount struct {
	online  int
	expires int64 // Unix nanoseconds
}

// NewAggregator subscribes to the gateways' reports. Stop it with Close.
func NewAggregator(nc *natsgo.Conn, cfg AggregatorConfig) (*Aggregator, error) {
	a := &Aggregator{
		nc: nc, log: cfg.Logger, metrics: cfg.Metrics, now: time.Now,
		guilds: map[guildhall.Snowflake]map[string]nodeCount{},
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.metrics == nil {
		a.metrics = NewMetrics(nil)
	}
	sub, err := nc.Subscribe(ghnats.SubjectPresenceCounts, a.report)
	if err != nil {
		return nil, err
	}
	// Reports come in bursts of a few messages per gateway; give them room.
	_ = sub.SetPendingLimits(1<<16, 256<<20)
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	a.sub = sub
	every := cfg.SweepEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	go a.sweep(every)
	return a, nil
}

// Close stops the Aggregator.
func (a *Aggregator) Close() {
	_ = a.sub.Unsubscribe()
	close(a.stop)
	<-a.done
}

func (a *Aggregator) report(m *natsgo.Msg) {
	var r CountReport
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Node == "" {
		return
	}
	a.metrics.Reports.Inc()
	ttl := min(max(time.Duration(r.TTLms)*time.Millisecond, time.Second), MaxCountTTL)
	now := a.now().UnixNano()
	expires := now + int64(ttl)
	var totals CountTotals
	reply := m.Reply
	if !ghnats.ValidReply(reply) {
		reply = "" // answer on inboxes only (see ghnats.ValidReply)
	}
	if reply != "" {
		totals.Counts = make([]GuildCount, 0, len(r.Counts))
	}
	a.mu.Lock()
	for _, c := range r.Counts {
		nodes := a.guilds[c.Guild]
		if c.Online <= 0 {
			delete(nodes, r.Node)
			if len(nodes) == 0 {
				delete(a.guilds, c.Guild)
			}
		} else {
			if nodes == nil {
				nodes = map[string]nodeCount{}
				a.guilds[c.Guild] = nodes
			}
			nodes[r.Node] = nodeCount{online: c.Online, expires: expires}
		}
		if reply != "" {
			totals.Counts = append(totals.Counts, GuildCount{Guild: c.Guild, Online: sum(nodes, now)})
		}
	}
	a.metrics.Aggregated.Set(float64(len(a.guilds)))
	a.mu.Unlock()
	if reply != "" {
		if b, err := json.Marshal(totals); err == nil {
			_ = a.nc.Publish(reply, b)
		}
	}
}

func sum(nodes map[string]nodeCount, now int64) int {
	n := 0
	for _, c := range nodes {
		if c.expires > now {
			n += c.online
		}
	}
	return n
}

// ApproximatePresenceCount is the guild's online count: the sum of the live
// gateways' last reports (0 for a guild nobody reported).
func (a *Aggregator) ApproximatePresenceCount(_ context.Context, guildID guildhall.Snowflake) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return sum(a.guilds[guildID], a.now().UnixNano()), nil
}

func (a *Aggregator) sweep(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		now := a.now().UnixNano()
		a.mu.Lock()
		for g, nodes := range a.guilds {
			for node, c := range nodes {
				if c.expires <= now {
					delete(nodes, node)
				}
			}
			if len(nodes) == 0 {
				delete(a.guilds, g)
			}
		}
		a.metrics.Aggregated.Set(float64(len(a.guilds)))
		a.mu.Unlock()
	}
}
