package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A scenario's command line: its flags, their defaults, and what --target both
// changes for each target.

type options struct {
	scenario    string
	sessions    int
	gateways    int
	rate        float64
	duration    time.Duration
	ramp        float64
	perWorker   int
	dialers     int
	bin         string
	refBin      string
	target      string
	data        string
	fresh       bool
	serverCPUs  string
	clientCPUs  string
	jsonOut     string
	label       string
	regSample   int
	settle      time.Duration
	gcWait      time.Duration
	killAfter   time.Duration
	timeout     time.Duration
	readyWithin time.Duration
	seedOnly    bool
	seedConc    int
	perf        bool
	gwOnly      bool

	drain        time.Duration
	steps        []float64
	stepDuration time.Duration
	stepPause    time.Duration
	keepGoing    bool
	stopP99      time.Duration
	kneeP99      time.Duration
	refMode      string
	ramps        int
	plotOut      string
	// clientCPUs counted: what the load generator's CPU time is a fraction of.
	clientCores int
}

func parseOptions(scenario string, args []string) (options, error) {
	o := options{scenario: scenario}
	fs := flag.NewFlagSet(scenario, flag.ContinueOnError)
	fs.IntVar(&o.sessions, "sessions", 1000, "sessions to open (members of the room for huge-room)")
	fs.IntVar(&o.gateways, "gateways", 1, "gateway processes (the first also runs NATS, api and writer)")
	fs.Float64Var(&o.rate, "rate", 1, "messages per second posted over REST (open loop)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to post (huge-room, small-rooms, reconnect-storm) or hold (idle)")
	fs.Float64Var(&o.ramp, "ramp", 2000, "new sessions per second, all workers together")
	fs.IntVar(&o.perWorker, "per-worker", 15000, "sessions per worker process (each one source address; keep under ~18000 open files)")
	fs.IntVar(&o.dialers, "dialers", 32, "connections each worker sets up at once")
	fs.StringVar(&o.bin, "bin", "bin/guildhall", "guildhall binary (built with go build if missing)")
	fs.StringVar(&o.refBin, "ref-bin", "bin/guildhall-reference", "reference fan-out program (built from ./bench/reference if missing)")
	fs.StringVar(&o.target, "target", "guildhall", "what to load: guildhall, reference (the minimal fan-out program; idle, huge-room and overload only), or both, one after the other in one run")
	fs.StringVar(&o.refMode, "ref-mode", "direct", "the reference's fan-out: direct (one write per frame per recipient) or coalesce (every frame waiting leaves in one write per recipient)")
	fs.StringVar(&o.data, "data", "", "data folder for the servers and the seed (reused by the next run); default /tmp/guildhall-bench/<scenario-shape>")
	fs.BoolVar(&o.fresh, "fresh", false, "wipe the data folder first")
	fs.StringVar(&o.serverCPUs, "server-cpus", "0", "CPUs for the server processes (taskset -c); empty: no pinning")
	fs.StringVar(&o.clientCPUs, "client-cpus", "1", "CPUs for the workers and the poster; empty: no pinning")
	fs.StringVar(&o.jsonOut, "json", "", "write the result as JSON to this file")
	fs.StringVar(&o.label, "label", "", "label for the result")
	fs.IntVar(&o.regSample, "register-sample", 3, "register this many human accounts over REST to time bcrypt (0: skip)")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause between all sessions ready and measuring")
	fs.DurationVar(&o.gcWait, "gc-wait", 130*time.Second, "idle: wait at most this long for a GC after the ramp (the runtime forces one every 2 minutes)")
	fs.DurationVar(&o.killAfter, "kill-after", 0, "reconnect-storm: kill the last gateway this long after posting starts (default duration/3)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "hard limit on the whole run")
	fs.DurationVar(&o.readyWithin, "ready-within", 0, "give up when the sessions are not all ready this long after the ramp should have ended (default 60s + 50%)")
	fs.BoolVar(&o.gwOnly, "gateway-only", false, "put no sessions on the first (all-roles) process, only on the --role gateway ones (needs --gateways 2 or more): measures a gateway without NATS, api and writer in it")
	fs.BoolVar(&o.perf, "perf", false, "record the servers with perf (call graphs) during the measurement window; writes perf-<server>.txt into the data folder")
	fs.IntVar(&o.seedConc, "seed-concurrency", 64, "invite joins in flight while seeding")
	fs.BoolVar(&o.seedOnly, "seed-only", false, "seed the accounts and guilds into the data folder, then stop (seeding 100,000 members takes a while: do it once)")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "after the last post, wait at most this long for every expected message; what has not arrived counts as missing")
	steps := fs.String("steps", "1,5,10,20,30,40,60", "overload: the offered rates in messages/s, one step each, in order")
	fs.DurationVar(&o.stepDuration, "step-duration", 20*time.Second, "overload: how long each step posts")
	fs.DurationVar(&o.stepPause, "step-pause", 2*time.Second, "overload: pause between steps")
	fs.BoolVar(&o.keepGoing, "keep-going", false, "overload: run every step, also after delivery fell behind (late frames of a step then load the next)")
	fs.DurationVar(&o.stopP99, "stop-p99", 5*time.Second, "overload: a step whose p99 passes this has fallen behind, and the sweep stops after it")
	fs.DurationVar(&o.kneeP99, "knee", time.Second, "overload: the knee is the offered frames/s at which p99 passes this")
	fs.IntVar(&o.ramps, "ramps", 1, "connect every session this many times, restarting the servers on the same data in between (as the next run would), and report each ramp's time: is a ramp right after a run as fast as the first")
	fs.StringVar(&o.plotOut, "plot", "", "overload: draw p99 and delivered frames/s against the offered rate into this PNG (default: beside --json, if given)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if scenario == "overload" {
		o.steps = nil
		for _, f := range strings.Split(*steps, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) {
				return o, fmt.Errorf("--steps: %q is not a positive rate", f)
			}
			o.steps = append(o.steps, v)
		}
		if len(o.steps) == 0 {
			return o, errors.New("--steps: give at least one rate")
		}
		if o.stepDuration <= 0 {
			return o, errors.New("--step-duration must be positive")
		}
		// Seeding (posters) and the clients' bitsets follow the highest rate.
		o.rate = slices.Max(o.steps)
		o.duration = o.stepDuration
	}
	if o.rate <= 0 && scenario != "idle" {
		return o, errors.New("--rate must be positive")
	}
	if o.ramps < 1 {
		return o, errors.New("--ramps must be 1 or more")
	}
	if o.refMode != "direct" && o.refMode != "coalesce" {
		return o, fmt.Errorf("--ref-mode %q: want direct or coalesce", o.refMode)
	}
	o.clientCores = runtime.NumCPU()
	if o.clientCPUs != "" {
		set, err := parseCPUs(o.clientCPUs)
		if err != nil {
			return o, fmt.Errorf("--client-cpus: %w", err)
		}
		o.clientCores = set.Count()
	}
	if scenario == "reconnect-storm" && o.gateways < 2 {
		o.gateways = 2
	}
	if o.killAfter == 0 {
		o.killAfter = o.duration / 3
	}
	if o.target != "guildhall" && o.target != "reference" && o.target != "both" {
		return o, fmt.Errorf("--target %q: want guildhall, reference or both", o.target)
	}
	if o.target != "guildhall" && scenario != "huge-room" && scenario != "idle" && scenario != "overload" {
		return o, fmt.Errorf("--target %s runs idle, huge-room and overload only", o.target)
	}
	if per := (o.sessions + o.gateways - 1) / o.gateways; per > 18000 {
		return o, fmt.Errorf("%d sessions on %d gateways is %d per gateway process: over the 20,000 open files a process may have; use --gateways %d", o.sessions, o.gateways, per, (o.sessions+17999)/18000)
	}
	if o.perWorker > 18000 {
		return o, errors.New("--per-worker over 18000 would pass the open-file limit")
	}
	if scenario == "small-rooms" && o.sessions%10 != 0 {
		return o, errors.New("small-rooms: --sessions must be a multiple of 10")
	}
	if scenario == "small-rooms" && o.rate > float64(o.sessions/10) {
		return o, errors.New("small-rooms: at most one message per second per guild (the api's message limit): --rate <= sessions/10")
	}
	return o, nil
}

// forTarget is o for one target of --target both: the reference gets one gateway
// and its own data folder.
func (o options) forTarget(target string) options {
	both := o.target == "both"
	o.target = target
	if target == "reference" {
		o.gateways = 1
		o.gwOnly = false
		if both && o.data != "" {
			o.data = strings.TrimRight(o.data, "/") + "-reference"
		}
	}
	if o.data == "" {
		shape := "one-guild"
		if o.scenario == "small-rooms" {
			shape = "rooms-of-10"
		}
		if target == "reference" {
			shape = "reference"
		}
		o.data = filepath.Join(os.TempDir(), "guildhall-bench", shape)
	}
	return o
}

func parseCPUs(cpus string) (unix.CPUSet, error) {
	var set unix.CPUSet
	for _, part := range strings.Split(cpus, ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return set, err
		}
		b := a
		if found {
			if b, err = strconv.Atoi(hi); err != nil {
				return set, err
			}
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}
