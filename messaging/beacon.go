package messaging

import (
	"context"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// GuildBeacon lets gateways notice events NATS lost for them in a guild that has
// gone quiet: after a guild's last event, it repeats that event's stream sequence
// on the guild's ephemeral subject (ghnats.GuildSeqMsg) every BeaconConfig.Every,
// for BeaconConfig.For. A gateway whose room of the guild has not applied that
// event missed it (a partition between its NATS server and the stream), and
// fetches it; without the beacon it would learn only at the guild's next event,
// which in a quiet guild may never come.
//
// It costs nothing for guilds without events, and a few small core messages per
// guild after each burst: a guild that keeps posting gets none (its own events
// show gaps), and NATS routes each only to the gateways with a room of the guild.
// Every api process beacons what it published itself; several api processes'
// beacons of one guild each name an event the stream holds.
type GuildBeacon struct {
	nc  *natsgo.Conn
	cfg BeaconConfig

	mu     sync.Mutex
	guilds map[guildhall.Snowflake]beaconGuild
}

type beaconGuild struct {
	seq uint64
	at  time.Time
}

// BeaconConfig configures a GuildBeacon. Zero values are the defaults.
type BeaconConfig struct {
	// Every is how often a quiet guild's last sequence is repeated; zero value
	// means 1 s.
	Every time.Duration
	// For is how long after a guild's last event it is repeated; zero value means
	// 30 s. Gateways find longer partitions with their path probe, which must run
	// more often than this (gateway.Config.PathProbe, 10 s).
	For time.Duration
	// Quiet is how long after an event its sequence is first repeated, so that the
	// event itself reaches gateways first; zero value means 500 ms.
	Quiet time.Duration
	// MaxGuilds bounds the guilds remembered at once; beyond it new guilds are not
	// beaconed until older ones expire. Zero value means 100,000.
	MaxGuilds int
}

func (c BeaconConfig) withDefaults() BeaconConfig {
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.For <= 0 {
		c.For = 30 * time.Second
	}
	if c.Quiet <= 0 {
		c.Quiet = 500 * time.Millisecond
	}
	if c.MaxGuilds <= 0 {
		c.MaxGuilds = 100_000
	}
	return c
}

// NewGuildBeacon makes a beacon publishing on nc; Run runs it.
func NewGuildBeacon(nc *natsgo.Conn, cfg BeaconConfig) *GuildBeacon {
	return &GuildBeacon{nc: nc, cfg: cfg.withDefaults(), guilds: map[guildhall.Snowflake]beaconGuild{}}
}

// published records that the stream stored an event of guild at seq.
func (b *GuildBeacon) published(guild guildhall.Snowflake, seq uint64) {
	if b == nil || guild == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.guilds[guild]
	if !ok && len(b.guilds) >= b.cfg.MaxGuilds {
		return
	}
	b.guilds[guild] = beaconGuild{seq: max(g.seq, seq), at: time.Now()}
}

// Run repeats the sequences until ctx ends.
func (b *GuildBeacon) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			b.beacon(now)
		}
	}
}

func (b *GuildBeacon) beacon(now time.Time) {
	type due struct {
		guild guildhall.Snowflake
		seq   uint64
	}
	var out []due
	b.mu.Lock()
	for id, g := range b.guilds {
		switch age := now.Sub(g.at); {
		case age > b.cfg.For:
			delete(b.guilds, id)
		case age >= b.cfg.Quiet:
			out = append(out, due{id, g.seq})
		}
	}
	b.mu.Unlock()
	for _, d := range out {
		_ = b.nc.PublishMsg(ghnats.GuildSeqMsg(uint64(d.guild), d.seq))
	}
}
