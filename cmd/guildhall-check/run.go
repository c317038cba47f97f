package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is one run of the checker.
type Config struct {
	// Bin is the guildhall binary. Required.
	Bin string
	// Dir holds the run's data, credentials and logs (logs/<process>.log). Required.
	Dir string
	// Database is the CQL server; Keyspace a fresh keyspace for the run. Required.
	Database Database
	Keyspace string
	// Schedule names the faults: "short" or "long" (see schedule). Zero value
	// means "short". Rounds repeats it; zero value means once.
	Schedule string
	Rounds   int
	// DatabaseFaults lets the nemesis take the database down (long schedule).
	DatabaseFaults bool
	// SyncAlways makes the NATS nodes fsync every write (sync_interval: always).
	SyncAlways bool
	// Users is how many accounts post and hold a session; zero value means 12.
	Users int
	// Rate is posts per second, all users together; zero value means 10.
	Rate float64
	// EditShare and ReactShare are the shares of acknowledged posts that their
	// author edits (once or twice) and that a member reacts to; zero values
	// mean 0.2 each. Reactions only where the server has them.
	EditShare, ReactShare float64
	// Heartbeat is the gateways' heartbeat interval; zero value means 10 s.
	Heartbeat time.Duration
	// Warmup is posting before the first fault's quiet time, Tail after the
	// last fault; zero values mean 5 s and 10 s.
	Warmup, Tail time.Duration
	// Settle bounds the wait, after posting, for every session to have its
	// guilds' last event; zero value means 60 s.
	Settle time.Duration
	// RequestTimeout bounds one REST request; zero value means 10 s.
	RequestTimeout time.Duration
	// Logf reports progress; zero value means silence.
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.Schedule == "" {
		c.Schedule = "short"
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.Users == 0 {
		c.Users = 12
	}
	if c.Rate == 0 {
		c.Rate = 10
	}
	if c.EditShare == 0 {
		c.EditShare = 0.2
	}
	if c.ReactShare == 0 {
		c.ReactShare = 0.2
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 5 * time.Second
	}
	if c.Tail == 0 {
		c.Tail = 10 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = 60 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// run deploys, runs the workload under the nemesis, and checks the result.
func run(ctx context.Context, cfg Config) (*report, error) {
	cfg = cfg.withDefaults()
	if cfg.Bin == "" || cfg.Dir == "" || cfg.Database == nil || cfg.Keyspace == "" {
		return nil, errors.New("check: Bin, Dir, Database and Keyspace are required")
	}
	var steps []step
	for range cfg.Rounds {
		s, err := schedule(cfg.Schedule, cfg.Heartbeat, cfg.DatabaseFaults)
		if err != nil {
			return nil, err
		}
		steps = append(steps, s...)
	}
	logf := cfg.Logf
	d, err := deploy(ctx, cfg, logf)
	if err != nil {
		return nil, err
	}
	defer d.Close()

	var apis []string
	for _, a := range d.apis {
		apis = append(apis, a.baseURL())
	}
	w := &workload{cfg: cfg, rest: newRESTClient(apis, cfg.RequestTimeout), loopDone: make(chan struct{}),
		run: fmt.Sprintf("chk%x", time.Now().Unix()&0xffffff)}
	if err := w.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	logf("setup: %d users, %d guilds, reactions %v", len(w.users), len(w.guilds), w.reactions)
	var gwURLs []string
	for _, g := range d.gateways {
		gwURLs = append(gwURLs, g.gatewayURL())
	}
	sctx, stopSessions := context.WithCancel(ctx)
	defer stopSessions()
	var swg sync.WaitGroup
	for i, u := range w.users {
		s := &session{index: i, user: u, gateways: gwURLs, logf: logf, closes: map[string]int{}}
		w.sessions = append(w.sessions, s)
		swg.Add(1)
		go func() { defer swg.Done(); s.run(sctx) }()
	}
	if err := waitFor(ctx, time.Minute, func() error {
		for _, s := range w.sessions {
			if _, ready := s.position(); !ready {
				return fmt.Errorf("session %d not ready", s.index)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	logf("%d sessions ready on %d gateways; posting at %.0f/s", len(w.sessions), len(gwURLs), cfg.Rate)

	rep := &report{Schedule: cfg.Schedule, Users: cfg.Users, Rate: cfg.Rate, Reactions: w.reactions, Start: time.Now()}
	go w.postLoop(ctx, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)))
	time.Sleep(cfg.Warmup)
	rep.Timeline = nemesis(ctx, d, steps, logf)
	if err := d.healAll(ctx); err != nil {
		logf("healing: %v", err)
	}
	time.Sleep(cfg.Tail)
	w.stop()
	rep.PostingEnded = time.Now()
	logf("posting stopped: %d posts", len(w.posts))

	// Every session should now catch up with its guilds' last event: how long
	// that takes is how soon a quiet guild's missed events arrive.
	rep.Converged = -1
	if err := waitFor(ctx, cfg.Settle, func() error { return caughtUp(ctx, d.operatorJS, w) }); err != nil {
		logf("sessions did not catch up within %v: %v", cfg.Settle, err)
	} else {
		rep.Converged = time.Since(rep.PostingEnded)
	}
	stopSessions()
	swg.Wait()

	h := &history{Posts: w.posts, Reactions: w.reactsLog, History: map[guildhall.Snowflake][]histMessage{},
		Guilds: map[guildhall.Snowflake][]guildhall.Snowflake{}, Ignore: map[guildhall.Snowflake]bool{}}
	var guilds, users []guildhall.Snowflake
	for _, g := range w.guilds {
		guilds = append(guilds, g.id)
		h.Channels = append(h.Channels, g.channels...)
	}
	for _, u := range w.users {
		users = append(users, u.id)
		for _, g := range u.guilds {
			h.Guilds[u.id] = append(h.Guilds[u.id], g.id)
		}
	}
	if err := replicasCurrent(ctx, d.operatorJS); err != nil {
		logf("reading the stream: %v", err)
	}
	if h.Stream, err = readStream(ctx, d.operatorJS, guilds, users); err != nil {
		return nil, fmt.Errorf("reading the stream: %w", err)
	}
	for _, ev := range h.Stream {
		if ev.Type == guildhall.EventMessageCreate && ev.Content == w.run+" probe" {
			h.Ignore[ev.Msg] = true
		}
	}
	for _, ch := range h.Channels {
		if h.History[ch], err = readHistory(ctx, w.rest, w.users[0].token, ch); err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
	}
	for _, s := range w.sessions {
		h.Sessions = append(h.Sessions, s.log())
	}
	rep.Skipped = w.skipped
	rep.Result = check(h)
	rep.measure(h)
	if len(rep.Result.Violations) > 0 {
		// Everything the verdict rests on, for whoever looks into it.
		if b, err := json.Marshal(h); err == nil {
			_ = os.WriteFile(filepath.Join(cfg.Dir, "history.json"), b, 0o644)
		}
	}
	return rep, nil
}

// caughtUp reports whether every session is connected and has seen the last
// event of each of its guilds (and of its user) in the stream, as the stream's
// leader has it (a lagging replica would name an older one).
func caughtUp(ctx context.Context, js jetstream.JetStream, w *workload) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lastOf := map[guildhall.Snowflake]uint64{}
	var err error
	for _, g := range w.guilds {
		if lastOf[g.id], err = ghnats.LastSequence(ctx, js, ghnats.StreamEvents, ghnats.GuildInSubject(uint64(g.id))); err != nil {
			return err
		}
	}
	for _, sess := range w.sessions {
		want, err := ghnats.LastSequence(ctx, js, ghnats.StreamEvents, ghnats.UserInSubject(uint64(sess.user.id)))
		if err != nil {
			return err
		}
		for _, g := range sess.user.guilds {
			want = max(want, lastOf[g.id])
		}
		seq, ready := sess.position()
		if !ready || seq < want {
			return fmt.Errorf("session %d at s=%d (connected: %v), its guilds' last event is s=%d", sess.index, seq, ready, want)
		}
	}
	return nil
}

// replicasCurrent waits until every replica of the EVENTS stream has caught up,
// so that what is read from it next is the whole run.
func replicasCurrent(ctx context.Context, js jetstream.JetStream) error {
	return waitFor(ctx, time.Minute, func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := js.Stream(c, ghnats.StreamEvents)
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return errors.New("EVENTS has no leader")
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Lag > 0 || r.Offline {
				return fmt.Errorf("EVENTS replica %s behind (lag %d, current %v, offline %v)", r.Name, r.Lag, r.Current, r.Offline)
			}
		}
		return nil
	})
}
