package gateway

import (
	"context"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// pathProbe finds out when this gateway may have missed events that nothing
// will show: a partition between its NATS server and the stream's leader (a leaf
// link cut, a route down) while its own connection stays up, longer than the
// api's guild-sequence heartbeats last. Every Config.PathProbe it has a tick
// published and waits for it to come back through the pump, the way every event
// comes. A tick that does not come back (or cannot be published) makes the path
// suspect; the probe then runs every second, and once a tick comes back it
// compares every room with the stream up to that tick (one batch direct get per
// thousand rooms) and fills what they lack. A NATS reconnect makes the path
// suspect too.
type pathProbe struct {
	p       *pump
	every   time.Duration
	timeout time.Duration
	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// probeRetry is how often a suspect path is probed.
const probeRetry = time.Second

func newPathProbe(p *pump, every time.Duration) *pathProbe {
	ctx, cancel := context.WithCancel(context.Background())
	pr := &pathProbe{p: p, every: every, timeout: min(p.apiTimeout, 5*time.Second), kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go pr.run(ctx)
	return pr
}

func (pr *pathProbe) close() {
	pr.cancel()
	<-pr.done
}

// suspect makes the probe check the path now and compare every room with the
// stream once it answers.
func (pr *pathProbe) suspect(why string) {
	pr.p.log.Info("path to the stream suspect; checking every room", "why", why)
	select {
	case pr.kick <- struct{}{}:
	default:
	}
}

func (pr *pathProbe) run(ctx context.Context) {
	defer close(pr.done)
	suspect := false
	t := time.NewTimer(pr.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pr.kick:
			suspect = true
		case <-t.C:
		}
		tick, err := pr.probe(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !suspect {
				pr.p.log.Warn("path probe failed: events may be lost; checking every room once it is back", "err", err)
			}
			pr.p.metrics.PathProbeFailures.Inc()
			suspect = true
		case suspect:
			if err := pr.p.checkRooms(ctx, tick); err != nil {
				pr.p.log.Warn("room check failed; trying again", "err", err)
			} else {
				suspect = false
			}
		}
		if suspect {
			t.Reset(probeRetry)
		} else {
			t.Reset(pr.every)
		}
	}
}

// probe has a tick published and waits until the pump has handled it.
func (pr *pathProbe) probe(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, pr.timeout)
	defer cancel()
	var tick uint64
	err := pr.p.cut(ctx, nil, func(seq uint64) { tick = seq })
	return tick, err
}

// checkRooms compares every room's last applied event with the stream's last
// event of its guild up to tick, and makes the rooms that are behind catch up.
func (p *pump) checkRooms(ctx context.Context, tick uint64) error {
	var ids []guildhall.Snowflake
	if !p.do(func() {
		for id, r := range p.rooms {
			if !r.fresh {
				ids = append(ids, id)
			}
		}
	}) {
		return errClosed
	}
	const part = ghnats.MaxLastSequences - 1 // and the witness
	stream := make(map[guildhall.Snowflake]uint64, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), part)
		subjects := make([]string, n)
		for i, id := range ids[:n] {
			subjects[i] = ghnats.GuildInSubject(uint64(id))
		}
		cctx, cancel := context.WithTimeout(ctx, p.apiTimeout)
		last, err := p.reader.lastSeqs(cctx, subjects, p.node, tick)
		cancel()
		if err != nil {
			return err
		}
		for i, id := range ids[:n] {
			if seq := last[subjects[i]]; seq > 0 {
				stream[id] = seq
			}
		}
		ids = ids[n:]
	}
	p.post(func() {
		for id, seq := range stream {
			if r := p.rooms[id]; r != nil {
				p.catchUpTo(r, seq, "probe")
			}
		}
	})
	return nil
}
