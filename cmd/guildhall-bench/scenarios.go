package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The scenarios once the sessions are up: traffic (huge-room, small-rooms),
// the reconnect storm and idle. The overload sweep is in overload.go.

// scenario runs one target's scenario: servers, seed, sessions, then the load.
func (r *run) scenario() error {
	if err := r.start(); err != nil {
		return err
	}
	switch r.o.scenario {
	case "idle":
		return r.idle()
	case "huge-room", "small-rooms":
		return r.traffic()
	case "reconnect-storm":
		return r.storm()
	case "overload":
		return r.overload()
	}
	return fmt.Errorf("unknown scenario %q", r.o.scenario)
}

func (r *run) traffic() error { return r.measure(nil) }

// storm kills the last gateway while messages flow, and times until every session
// is ready again (resumed elsewhere).
func (r *run) storm() error {
	victim := r.servers[len(r.servers)-1]
	var once sync.Once
	var killedAt time.Time
	var allBack atomic.Int64 // ns after the kill
	onKilled := r.sessionsOn[len(r.servers)-1]
	r.res.Storm = &stormResult{Victim: victim.Name, SessionsOnVictim: onKilled}
	var resumedBefore int64
	err := r.measure(func(el time.Duration, st workerStatus) {
		if el < r.o.killAfter {
			return
		}
		once.Do(func() {
			resumedBefore = st.Resumed
			victim.killed = true
			victim.Kill()
			killedAt = time.Now()
			r.prog.printf(true, "storm: killed %s (%d sessions) at %.1f s", victim.Name, onKilled, el.Seconds())
		})
		if allBack.Load() == 0 && st.Ready >= r.o.sessions && st.Resumed-resumedBefore >= int64(onKilled) {
			allBack.Store(int64(time.Since(killedAt)))
			r.prog.printf(true, "storm: all %d sessions ready again %.2f s after the kill", r.o.sessions, time.Since(killedAt).Seconds())
		}
	})
	if err != nil {
		return err
	}
	st := r.aggregate()
	r.res.Storm.Outcomes = map[string]float64{}
	for _, s := range r.servers {
		if s.killed {
			continue
		}
		for k, v := range scrapeMetrics(s.Addr) {
			if strings.Contains(k, "_resumes_total{") || strings.Contains(k, "_resume_replays_total{") || strings.Contains(k, "_identifies_total{") {
				r.res.Storm.Outcomes[s.Name+" "+k] += v
			}
		}
	}
	r.res.Storm.Resumed = st.Resumed - resumedBefore
	r.res.Storm.Invalid = st.Invalid
	if v := allBack.Load(); v > 0 {
		r.res.Storm.AllResumedSeconds = time.Duration(v).Seconds()
	} else {
		r.res.Storm.AllResumedSeconds = -1
	}
	return nil
}

// idle holds the sessions and measures memory after a GC that started once they
// were all connected.
func (r *run) idle() error {
	o := r.o
	after := time.Now()
	gcs := make([]int, len(r.servers))
	for i, s := range r.servers {
		_, gcs[i] = s.GC()
	}
	t0 := r.serverTicks()
	deadline := time.Now().Add(max(o.gcWait, o.duration))
	for time.Now().Before(deadline) {
		done := time.Since(after) >= o.duration
		for i, s := range r.servers {
			if g, n := s.GC(); n == gcs[i] || g.At.Before(after) {
				done = false
			}
		}
		st := r.aggregate()
		r.prog.printf(false, "idle: %.0f s, %d ready, %d closes; waiting for a GC in every server", time.Since(after).Seconds(), st.Ready, st.Closes)
		if done {
			break
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	t1 := r.serverTicks()
	r.res.IdleServerCPUPerSec = float64(sum(t1)-sum(t0)) / ticksPerSecond / time.Since(after).Seconds()
	for i, s := range r.servers {
		r.res.Servers[i].After = r.memSnapshot(s)
		g, n := s.GC()
		r.res.Servers[i].GCAfterRamp = n > gcs[i] && g.At.After(after)
	}
	r.res.KernelAfter = kernelMem()
	st := r.aggregate()
	r.res.Delivered = st.Msgs
	r.prog.printf(true, "idle: %d sessions ready, %d closes during the hold", st.Ready, st.Closes)
	if st.Ready < o.sessions {
		return fmt.Errorf("only %d of %d sessions stayed connected", st.Ready, o.sessions)
	}
	return nil
}
