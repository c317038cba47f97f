package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// One run of a scenario in the coordinator: start brings up the servers, seeds
// and connects every session, scenarios.go runs the load, teardown stops it
// all; runScenario does that for each --target and writes the report.

var errSeeded = errors.New("seeded")

// run is one scenario's state in the coordinator.
type run struct {
	o       options
	ctx     context.Context
	servers []*server
	workers []*workerProc
	seed    *seed
	prog    progressLine
	res     *result
	postTo  func(ctx context.Context, i int, content string) error
	limited *atomic.Int64 // 429s the poster got
	// sessionsOn counts the sessions that start on each gateway.
	sessionsOn []int
	// save writes what the run has measured so far (--json).
	save func() error
}

func runScenario(scenario string, args []string) error {
	o, err := parseOptions(scenario, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.clientCPUs != "" {
		if err := pinSelf(o.clientCPUs); err != nil {
			fmt.Fprintln(os.Stderr, "guildhall-bench: cannot pin to CPUs", o.clientCPUs+":", err)
		}
	}
	targets := []string{o.target}
	if o.target == "both" {
		targets = []string{"guildhall", "reference"}
	}
	rep := &report{Scenario: scenario, Time: time.Now().UTC(), Command: "guildhall-bench " + strings.Join(os.Args[1:], " ")}
	// One result per target goes into the JSON file as a report; a single
	// target's result of the other scenarios is written as it always was.
	asReport := len(targets) > 1 || scenario == "overload"
	save := func() error {
		if o.jsonOut == "" {
			return nil
		}
		var v any = rep
		if !asReport {
			v = rep.Results[0]
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		return os.WriteFile(o.jsonOut, append(b, '\n'), 0o644)
	}
	for _, t := range targets {
		ot := o.forTarget(t)
		r := &run{o: ot, ctx: ctx, res: newResult(ot), save: save}
		rep.Results = append(rep.Results, r.res)
		err := r.scenario()
		r.teardown()
		if errors.Is(err, errSeeded) {
			fmt.Fprintf(os.Stderr, "seeded %s in %.0f s (bots %.0f/s, joins %.0f/s)\n", ot.data, r.res.SeedSeconds, r.res.MintPerSec, r.res.JoinPerSec)
			if t == targets[len(targets)-1] {
				return nil
			}
			continue
		}
		if err != nil {
			_ = save() // what was measured before the failure
			if len(targets) > 1 {
				return fmt.Errorf("%s: %w", t, err)
			}
			return err
		}
		r.res.finish()
		fmt.Print(r.res.text())
	}
	if len(targets) > 1 {
		fmt.Print(compareText(rep.Results))
	}
	if err := save(); err != nil {
		return err
	}
	if o.jsonOut != "" {
		fmt.Fprintln(os.Stderr, "wrote", o.jsonOut)
	}
	if scenario == "overload" {
		out := o.plotOut
		if out == "" && o.jsonOut != "" {
			out = strings.TrimSuffix(o.jsonOut, filepath.Ext(o.jsonOut)) + ".png"
		}
		if out != "" {
			if err := plotSweep(out, rep.Results); err != nil {
				fmt.Fprintln(os.Stderr, "plot:", err)
			}
		}
	}
	return nil
}

func pinSelf(cpus string) error {
	set, err := parseCPUs(cpus)
	if err != nil {
		return err
	}
	return unix.SchedSetaffinity(0, &set)
}

// ensureBinary builds pkg into path when path does not exist.
func ensureBinary(path, pkg string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return filepath.Abs(path)
	}
	fmt.Fprintf(os.Stderr, "building %s → %s\n", pkg, path)
	cmd := exec.Command("go", "build", "-o", path, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return filepath.Abs(path)
}

// start brings up the servers, seeds, and connects every session; with --ramps N
// it does that N times, restarting the servers on the same data in between.
func (r *run) start() error {
	o := r.o
	if o.fresh {
		_ = os.RemoveAll(o.data)
	}
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return err
	}
	r.res.Machine = machine()
	for ramp := range o.ramps {
		if ramp > 0 {
			// What the end of a run does: the clients go, the servers stop.
			r.teardown()
			r.workers, r.servers = nil, nil
			fmt.Fprintf(os.Stderr, "ramp %d of %d: restarting the servers on %s\n", ramp+1, o.ramps, o.data)
		}
		if err := r.startServers(ramp == 0); err != nil {
			return err
		}
		if o.seedOnly {
			return errSeeded
		}
		r.sessionsOn = make([]int, len(r.servers))
		first := r.firstSessionServer()
		for j := range o.sessions {
			r.sessionsOn[first+j%(len(r.servers)-first)]++
		}
		r.res.Servers = make([]serverResult, len(r.servers))
		for i, s := range r.servers {
			r.res.Servers[i] = serverResult{Name: s.Name, PID: s.PID(), Sessions: r.sessionsOn[i]}
			r.res.Servers[i].Before = r.memSnapshot(s)
		}
		r.res.KernelBefore = kernelMem()
		if err := r.connectAll(); err != nil {
			return err
		}
		r.res.RampsSec = append(r.res.RampsSec, r.res.RampSeconds)
		r.res.Ramps = append(r.res.Ramps, r.rampOutcome())
	}
	return nil
}

// rampOutcome is what the clients and the servers counted while the sessions
// connected: why sessions were closed or refused on the way.
func (r *run) rampOutcome() rampResult {
	st := r.aggregate()
	out := rampResult{Seconds: r.res.RampSeconds, Closes: st.Closes, CloseCodes: st.CloseCodes, Invalid: st.Invalid, DialErrors: st.DialErrors}
	for _, s := range r.servers {
		for k, v := range scrapeMetrics(s.Addr) {
			if strings.HasPrefix(k, "guildhall_gateway_identifies_total{") {
				if out.Identifies == nil {
					out.Identifies = map[string]float64{}
				}
				out.Identifies[strings.TrimPrefix(k, "guildhall_gateway_identifies_total")] += v
			}
		}
	}
	return out
}

func (r *run) teardown() {
	if len(r.workers) > 0 {
		b, _ := json.Marshal(command{Cmd: "stop"})
		b = append(b, '\n')
		for _, w := range r.workers {
			_, _ = w.stdin.Write(b)
		}
		deadline := time.After(10 * time.Second)
		for _, w := range r.workers {
			done := make(chan struct{})
			go func() { _ = w.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-deadline:
				_ = w.cmd.Process.Kill()
			}
		}
	}
	for i := len(r.servers) - 1; i >= 0; i-- {
		r.servers[i].Stop(20 * time.Second)
	}
}
