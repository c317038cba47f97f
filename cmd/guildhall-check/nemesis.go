package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// fault is one thing the nemesis does to the deployment: Inject does it and
// returns how to undo it, which the nemesis calls Hold later.
type fault struct {
	Name   string
	Hold   time.Duration
	Inject func(ctx context.Context, d *deployment) (target string, heal func(context.Context) error, err error)
}

// step is a fault of the schedule and the quiet time before it.
type step struct {
	Quiet time.Duration
	Fault fault
}

// faultRecord is one fault as it happened.
type faultRecord struct {
	Name, Target string
	// Placement is where the processes were connected just before.
	Placement string
	// Start: injected; Healed: the undoing began; Recovered: it returned (a
	// killed process serves again, the database answers).
	Start, Healed, Recovered time.Time
	Err                      string
}

// leaderWait bounds the wait for the EVENTS stream to have a leader to hit
// (right after another fault it may be electing one).
const leaderWait = 30 * time.Second

// killNode kills the NATS node leading the EVENTS stream with SIGKILL and
// starts it again on its data after hold.
func killNode(hold time.Duration) fault {
	return fault{Name: "SIGKILL NATS stream leader", Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		i, err := d.awaitLeader(ctx)
		if err != nil {
			return "", nil, err
		}
		n := d.nodes[i]
		n.Kill()
		return n.server + " (EVENTS leader)", n.Start, nil
	}}
}

// stopNode freezes the EVENTS stream's leader with SIGSTOP for hold, far
// longer than its Raft heartbeats and election timeout, then SIGCONT.
func stopNode(hold time.Duration) fault {
	return fault{Name: "SIGSTOP NATS stream leader", Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		i, err := d.awaitLeader(ctx)
		if err != nil {
			return "", nil, err
		}
		n := d.nodes[i]
		n.Signal(syscall.SIGSTOP)
		return n.server + " (EVENTS leader)", func(context.Context) error { n.Signal(syscall.SIGCONT); return nil }, nil
	}}
}

// killService kills a Guildhall process with SIGKILL and starts it again after hold.
func killService(name string, hold time.Duration, pick func(*deployment) *service) fault {
	return fault{Name: "SIGKILL " + name, Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		s := pick(d)
		s.Kill()
		return s.name, s.Start, nil
	}}
}

// stopService freezes a Guildhall process with SIGSTOP for hold, then SIGCONT.
func stopService(name string, hold time.Duration, pick func(*deployment) *service) fault {
	return fault{Name: "SIGSTOP " + name, Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		s := pick(d)
		s.Signal(syscall.SIGSTOP)
		return s.name, func(context.Context) error { s.Signal(syscall.SIGCONT); return nil }, nil
	}}
}

// databaseDown stops the CQL server, keeps it down hold after it has exited,
// and starts it again on its data.
func databaseDown(hold time.Duration) fault {
	return fault{Name: "Cassandra down", Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		if err := d.cfg.Database.Stop(ctx); err != nil {
			return "", nil, err
		}
		return strings.Join(d.cfg.Database.Hosts(), ","), d.cfg.Database.Start, nil
	}}
}

// leafCut cuts the edge site's leaf link for hold: its gateway's connection
// to its leaf node stays up, and nothing reaches the site.
func leafCut(hold time.Duration) fault {
	return fault{Name: "leaf link cut", Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		d.cutLeaf(true)
		return "edge ↔ hub", func(context.Context) error { d.cutLeaf(false); return nil }, nil
	}}
}

// routePartition cuts every route of a node that a hub gateway is connected
// to, both ways, for hold: the gateway's connection stays up, and its node
// hears nothing from the others. Of such nodes it picks one that leaves an api
// with the majority, so that posting goes on (processes move when their node
// goes, so by then they may all share one).
func routePartition(hold time.Duration) fault {
	return fault{Name: "route partition", Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		best, bestScore := -1, -1
		for _, g := range d.gateways[:2] {
			i := d.nodeOf(ctx, g.addr)
			if i < 0 {
				continue
			}
			score := 1
			for _, a := range d.apis {
				if j := d.nodeOf(ctx, a.addr); j >= 0 && j != i {
					score = 2 // an api stays with the majority
				}
			}
			if score > bestScore {
				best, bestScore = i, score
			}
		}
		if best < 0 {
			return "", nil, errors.New("no hub gateway's NATS node found")
		}
		d.partition(best, true)
		return fmt.Sprintf("%s (a gateway's node) cut from the others", d.nodes[best].server),
			func(context.Context) error { d.partition(best, false); return nil }, nil
	}}
}

// together injects several faults at once and heals them together.
func together(fs ...fault) fault {
	var names []string
	hold := time.Duration(0)
	for _, f := range fs {
		names = append(names, f.Name)
		hold = max(hold, f.Hold)
	}
	return fault{Name: strings.Join(names, " + "), Hold: hold, Inject: func(ctx context.Context, d *deployment) (string, func(context.Context) error, error) {
		var targets []string
		var heals []func(context.Context) error
		for _, f := range fs {
			t, h, err := f.Inject(ctx, d)
			if err != nil {
				for _, h := range heals {
					_ = h(ctx)
				}
				return "", nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			targets, heals = append(targets, t), append(heals, h)
		}
		return strings.Join(targets, "; "), func(ctx context.Context) error {
			var errs []error
			for _, h := range heals {
				errs = append(errs, h(ctx))
			}
			return errors.Join(errs...)
		}, nil
	}}
}

func gatewayA(d *deployment) *service { return d.gateways[0] }
func gatewayB(d *deployment) *service { return d.gateways[1] }
func api2(d *deployment) *service     { return d.apis[1] }
func writerOf(d *deployment) *service { return d.writer }

// schedules: "short" runs in the test suite (about a minute and a half of
// faults), "long" is every fault of the checker, one at a time and then
// several at once. heartbeat is the gateways' interval: a frozen gateway
// stays frozen three of them, so its clients give up on it.
func schedule(name string, heartbeat time.Duration, withDatabase bool) ([]step, error) {
	switch name {
	case "short":
		return []step{
			{8 * time.Second, killNode(8 * time.Second)},
			{8 * time.Second, leafCut(12 * time.Second)},
			{8 * time.Second, routePartition(12 * time.Second)},
			{8 * time.Second, killService("gateway-a", 4*time.Second, gatewayA)},
			{8 * time.Second, killService("writer", 3*time.Second, writerOf)},
		}, nil
	case "long":
		s := []step{
			{20 * time.Second, killNode(15 * time.Second)},
			{20 * time.Second, stopNode(15 * time.Second)},
			{20 * time.Second, killService("gateway-a", 5*time.Second, gatewayA)},
			{20 * time.Second, stopService("gateway-b", 3*heartbeat, gatewayB)},
			{20 * time.Second, killService("api-2", 5*time.Second, api2)},
			{20 * time.Second, killService("writer", 5*time.Second, writerOf)},
		}
		if withDatabase {
			s = append(s, step{20 * time.Second, databaseDown(30 * time.Second)})
		}
		return append(s,
			step{20 * time.Second, leafCut(15 * time.Second)},
			step{20 * time.Second, routePartition(15 * time.Second)},
			step{20 * time.Second, together(routePartition(15*time.Second), leafCut(15*time.Second), killService("writer", 15*time.Second, writerOf))},
			step{20 * time.Second, together(killNode(10*time.Second), killService("gateway-b", 10*time.Second, gatewayB), killService("api-2", 10*time.Second, api2))},
		), nil
	}
	return nil, fmt.Errorf("unknown schedule %q: want short or long", name)
}

// nemesis runs the schedule and returns what happened, fault by fault.
func nemesis(ctx context.Context, d *deployment, steps []step, logf func(string, ...any)) []faultRecord {
	var out []faultRecord
	for _, s := range steps {
		select {
		case <-ctx.Done():
			return out
		case <-time.After(s.Quiet):
		}
		rec := faultRecord{Name: s.Fault.Name, Placement: d.placement(ctx), Start: time.Now()}
		target, heal, err := s.Fault.Inject(ctx, d)
		rec.Target = target
		if err != nil {
			rec.Err = err.Error()
			rec.Healed, rec.Recovered = time.Now(), time.Now()
			logf("fault %s: not injected: %v", s.Fault.Name, err)
			out = append(out, rec)
			continue
		}
		logf("fault %s: %s (before: %s)", s.Fault.Name, target, rec.Placement)
		select {
		case <-ctx.Done():
		case <-time.After(s.Fault.Hold):
		}
		rec.Healed = time.Now()
		if err := heal(context.WithoutCancel(ctx)); err != nil {
			rec.Err = "heal: " + err.Error()
			logf("fault %s: heal: %v", s.Fault.Name, err)
		}
		rec.Recovered = time.Now()
		logf("fault %s healed in %v", s.Fault.Name, rec.Recovered.Sub(rec.Healed).Round(time.Millisecond))
		out = append(out, rec)
	}
	return out
}
