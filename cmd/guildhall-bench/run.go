package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	ghnats "github.com/guildhall/guildhall/nats"
	"golang.org/x/sys/unix"
)

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

type workerProc struct {
	id      int
	n       int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	status  workerStatus
	replies chan json.RawMessage
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

// startServers starts the target's servers and, for Guildhall, seeds (or reuses
// the seed); first is false when restarting for another ramp.
func (r *run) startServers(first bool) error {
	if r.o.target == "reference" {
		return r.startReference()
	}
	if err := r.startGuildhall(); err != nil {
		return err
	}
	return r.doSeed(first)
}

// firstSessionServer is the index of the first server that takes sessions: 1 with
// --gateway-only (the all-roles process takes none), else 0.
func (r *run) firstSessionServer() int {
	if r.o.gwOnly && len(r.servers) > 1 {
		return 1
	}
	return 0
}

func (r *run) startGuildhall() error {
	o := r.o
	bin, err := ensureBinary(o.bin, "./cmd/guildhall")
	if err != nil {
		return err
	}
	natsPort, err := freePort()
	if err != nil {
		return err
	}
	for i := 0; i < o.gateways; i++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		dir := filepath.Join(o.data, fmt.Sprintf("server%d", i))
		// Each worker opens up to --per-worker sessions from one source address:
		// far past the gateway's per-address cap, which is for the public.
		args := []string{"serve", "--addr", addr, "--data", dir, "--log-level", "warn", "--drain", "1s", "--gateway-max-conns-per-addr", "-1"}
		name := "guildhall-all"
		if i == 0 {
			args = append(args, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort))
		} else {
			name = fmt.Sprintf("guildhall-gw%d", i)
			args = append(args, "--role", "gateway", "--nats-url", r.servers[0].NATS, "--nats-creds", r.servers[0].Creds)
		}
		fmt.Fprintf(os.Stderr, "starting %s on %s (CPUs %q)\n", name, addr, o.serverCPUs)
		s, err := startServer(r.ctx, name, bin, args, o.serverCPUs, o.data, addr)
		if err != nil {
			return err
		}
		if i == 0 {
			s.NATS = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
			s.Creds = filepath.Join(dir, "creds") // created by its first start
		}
		r.servers = append(r.servers, s)
	}
	return nil
}

func (r *run) startReference() error {
	o := r.o
	bin, err := ensureBinary(o.refBin, "./bench/reference")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	fmt.Fprintf(os.Stderr, "starting the reference (%s) on %s (CPUs %q)\n", o.refMode, addr, o.serverCPUs)
	s, err := startServer(r.ctx, "reference", bin, []string{"--addr", addr, "--mode", o.refMode}, o.serverCPUs, o.data, addr)
	if err != nil {
		return err
	}
	r.servers = []*server{s}
	r.seed = &seed{Scenario: "reference", Guilds: []benchGuild{{ID: "0"}}}
	for i := range o.sessions {
		r.seed.Members = append(r.seed.Members, account{Token: fmt.Sprintf("ref%d", i)})
	}
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}, Timeout: 60 * time.Second}
	r.postTo = func(ctx context.Context, i int, content string) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/post", strings.NewReader(content))
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("reference: HTTP %d", resp.StatusCode)
		}
		return nil
	}
	return nil
}

// doSeed makes (or reuses) the accounts and guilds. first is false when the
// servers were restarted for another ramp (no registration sample then).
func (r *run) doSeed(first bool) error {
	o := r.o
	path := filepath.Join(o.data, "seed.json")
	small := o.scenario == "small-rooms"
	needPosters := 0
	if !small && o.scenario != "idle" {
		// Each poster posts at most every other second: the api allows a user 5
		// messages per 5 s in a channel, and posts bunch up when it is slow.
		needPosters = 2*int(math.Ceil(o.rate)) + 2
	}
	s, err := loadSeed(path)
	if err != nil {
		s = &seed{Scenario: map[bool]string{true: "rooms-of-10", false: "one-guild"}[small]}
	}
	api := r.servers[0]
	runID := strconv.FormatInt(time.Now().Unix()%1000000, 36)
	if o.regSample > 0 && first {
		d, err := registerSample(r.ctx, api.Addr, o.regSample, runID)
		if err != nil {
			fmt.Fprintln(os.Stderr, "register sample:", err)
		} else {
			r.res.RegisterMs = float64(d.Microseconds()) / 1000
			fmt.Fprintf(os.Stderr, "POST /auth/register: %.1f ms each (bcrypt); 100,000 users would take %.0f s on one connection\n", r.res.RegisterMs, r.res.RegisterMs*100)
		}
	}
	// Bots are minted on the admin subject: only the operator's identity may.
	nc, _, err := ghnats.ConnectAs(api.NATS, "guildhall-bench", ghnats.RoleOperator, ghnats.ClientAuth{Dir: api.Creds})
	if err != nil {
		return err
	}
	defer nc.Close()
	rest := newREST(api.Addr, nil, max(64, o.seedConc))
	seedStart := time.Now()
	changed := false

	// Members.
	if n := o.sessions - len(s.Members); n > 0 {
		t0 := time.Now()
		bots, err := mintBots(r.ctx, nc, "m"+runID+"x", n, 64, func(d int) {
			r.prog.printf(d == n, "seed: minted %d/%d bot accounts", d, n)
		})
		if err != nil {
			return err
		}
		r.res.MintPerSec = float64(n) / time.Since(t0).Seconds()
		s.Members = append(s.Members, bots...)
		changed = true
	}
	if n := needPosters - len(s.Posters); n > 0 {
		bots, err := mintBots(r.ctx, nc, "p"+runID+"x", n, 16, func(int) {})
		if err != nil {
			return err
		}
		s.Posters = append(s.Posters, bots...)
		changed = true
	}
	// Guilds: one for everybody, owned by the first poster, or one per ten
	// members, owned by its first.
	var joiners []*account
	if small {
		for g := len(s.Guilds); g < len(s.Members)/10; g++ {
			owner := g * 10
			bg, err := makeGuild(r.ctx, rest, s.Members[owner].Token, fmt.Sprintf("bench room %d", g))
			if err != nil {
				return err
			}
			bg.Owner = owner
			s.Guilds = append(s.Guilds, bg)
			for i := owner; i < owner+10; i++ {
				s.Members[i].Guild = g
			}
			s.Members[owner].Joined = true
			r.prog.printf(false, "seed: %d/%d guilds", g+1, len(s.Members)/10)
			changed = true
		}
	} else if len(s.Guilds) == 0 {
		if len(s.Posters) == 0 {
			bots, err := mintBots(r.ctx, nc, "p"+runID+"x", 1, 1, func(int) {})
			if err != nil {
				return err
			}
			s.Posters = bots
		}
		bg, err := makeGuild(r.ctx, rest, s.Posters[0].Token, "bench huge room")
		if err != nil {
			return err
		}
		bg.Owner = -1
		s.Guilds = []benchGuild{bg}
		s.Posters[0].Joined = true
		changed = true
	}
	for i := range s.Members {
		if !s.Members[i].Joined {
			joiners = append(joiners, &s.Members[i])
		}
	}
	for i := range s.Posters {
		if !s.Posters[i].Joined {
			joiners = append(joiners, &s.Posters[i])
		}
	}
	if len(joiners) > 0 {
		t0 := time.Now()
		err := joinAll(r.ctx, rest, s, joiners, o.seedConc, func(d int) {
			r.prog.printf(d == len(joiners), "seed: %d/%d accepted invites (%.0f/s)", d, len(joiners), float64(d)/time.Since(t0).Seconds())
		})
		if err != nil {
			_ = saveSeed(path, s)
			return err
		}
		r.res.JoinPerSec = float64(len(joiners)) / time.Since(t0).Seconds()
		changed = true
	}
	if changed {
		r.res.SeedSeconds = time.Since(seedStart).Seconds()
		if err := saveSeed(path, s); err != nil {
			return err
		}
	}
	r.seed = s
	ch := s.Guilds[0].Channel
	posters := s.Posters
	r.limited = &rest.limited
	r.postTo = func(ctx context.Context, i int, content string) error {
		tok, channel := "", ch
		if small {
			g := i % (o.sessions / 10)
			tok, channel = s.Members[s.Guilds[g].Owner].Token, s.Guilds[g].Channel
		} else {
			tok = posters[i%len(posters)].Token
		}
		return rest.do(ctx, "POST", "/channels/"+channel+"/messages", tok, map[string]string{"content": content}, nil)
	}
	return nil
}

// connectAll starts the workers and waits until every session is ready.
func (r *run) connectAll() error {
	o := r.o
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var urls []string
	for _, s := range r.servers[r.firstSessionServer():] {
		urls = append(urls, "ws://"+s.Addr+"/?v=10&encoding=json")
	}
	nw := (o.sessions + o.perWorker - 1) / o.perWorker
	maxMsgs := r.totalMessages() + 64
	for w := range nw {
		from, to := w*o.perWorker, min((w+1)*o.perWorker, o.sessions)
		tokens := make([]string, 0, to-from)
		for _, a := range r.seed.Members[from:to] {
			tokens = append(tokens, a.Token)
		}
		cfg := workerConfig{
			ID: w, Source: fmt.Sprintf("127.0.%d.%d", 1+(w+1)/250, 2+(w+1)%250), Gateways: urls, Tokens: tokens,
			FirstGW: from % len(urls), Ramp: o.ramp / float64(nw), Dialers: o.dialers, MaxMsgs: maxMsgs, Reconnect: true,
		}
		env, _ := json.Marshal(cfg)
		cfgPath := filepath.Join(r.o.data, fmt.Sprintf("worker-%d.json", w))
		if err := os.WriteFile(cfgPath, env, 0o600); err != nil {
			return err
		}
		var argv []string
		if o.clientCPUs != "" {
			argv = append(argv, "taskset", "-c", o.clientCPUs)
		}
		argv = append(argv, self, "worker")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "GHBENCH_WORKER="+cfgPath)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		wp := &workerProc{id: w, n: to - from, cmd: cmd, stdin: stdin, replies: make(chan json.RawMessage, 4)}
		go wp.read(stdout)
		r.workers = append(r.workers, wp)
	}
	r.res.Workers = nw
	start := time.Now()
	within := o.readyWithin
	if within == 0 {
		within = 60*time.Second + time.Duration(1.5*float64(o.sessions)/o.ramp*float64(time.Second))
	}
	for {
		st := r.aggregate()
		r.prog.printf(false, "connect: %d/%d ready, %d dialing, %d dial errors, %d closes, %d invalid, %.0f s %s", st.Ready, o.sessions, st.Dialing, st.DialErrors, st.Closes, st.Invalid, time.Since(start).Seconds(), st.LastError)
		if st.Ready >= o.sessions {
			break
		}
		if time.Since(start) > within {
			return fmt.Errorf("only %d of %d sessions ready after %s (last error: %s)", st.Ready, o.sessions, within, st.LastError)
		}
		if err := r.alive(); err != nil {
			return err
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.res.RampSeconds = time.Since(start).Seconds()
	r.prog.printf(true, "connect: %d sessions ready in %.1f s (%.0f/s)", o.sessions, r.res.RampSeconds, float64(o.sessions)/r.res.RampSeconds)
	return nil
}

// alive fails when a server under test has died (other than one the storm killed).
func (r *run) alive() error {
	for _, s := range r.servers {
		if s.cmd.ProcessState != nil && !s.killed {
			return fmt.Errorf("%s exited: see %s", s.Name, s.logPath)
		}
	}
	return nil
}

func (wp *workerProc) read(rd io.Reader) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(line, &t) != nil {
			continue
		}
		if t.Type == "status" {
			var st workerStatus
			if json.Unmarshal(line, &st) == nil {
				wp.mu.Lock()
				wp.status = st
				wp.mu.Unlock()
			}
			continue
		}
		wp.replies <- append(json.RawMessage(nil), line...)
	}
	close(wp.replies)
}

// call sends a command to every worker and collects one reply from each.
func (r *run) call(cmd command) ([]json.RawMessage, error) {
	b, _ := json.Marshal(cmd)
	b = append(b, '\n')
	for _, w := range r.workers {
		if _, err := w.stdin.Write(b); err != nil {
			return nil, fmt.Errorf("worker %d: %w", w.id, err)
		}
	}
	out := make([]json.RawMessage, len(r.workers))
	for i, w := range r.workers {
		select {
		case m, ok := <-w.replies:
			if !ok {
				return nil, fmt.Errorf("worker %d exited", w.id)
			}
			out[i] = m
		case <-time.After(2 * time.Minute):
			return nil, fmt.Errorf("worker %d did not answer %s", w.id, cmd.Cmd)
		}
	}
	return out, nil
}

func (r *run) aggregate() workerStatus {
	var a workerStatus
	for _, w := range r.workers {
		w.mu.Lock()
		s := w.status
		w.mu.Unlock()
		a.Ready += s.Ready
		a.Dialing += s.Dialing
		a.DialErrors += s.DialErrors
		a.Closes += s.Closes
		for code, n := range s.CloseCodes {
			if a.CloseCodes == nil {
				a.CloseCodes = map[int]int64{}
			}
			a.CloseCodes[code] += n
		}
		a.Resumed += s.Resumed
		a.Invalid += s.Invalid
		a.Identified += s.Identified
		a.Frames += s.Frames
		a.Msgs += s.Msgs
		if s.LastError != "" {
			a.LastError = s.LastError
		}
	}
	return a
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

// memSnapshot reads a server's memory: RSS, the Go heap and stacks from /metrics,
// and the last GC's live heap.
func (r *run) memSnapshot(s *server) memSample {
	m := scrapeMetrics(s.Addr)
	gc, n := s.GC()
	return memSample{
		At: time.Now(), RSS: procRSS(s.PID()),
		HeapInuse: int64(m["go_memstats_heap_inuse_bytes"]), StackInuse: int64(m["go_memstats_stack_inuse_bytes"]),
		Goroutines: int(m["go_goroutines"]), GCLiveHeap: int64(gc.LiveMB * (1 << 20)), GCStacks: int64(gc.StacksMB * (1 << 20)),
		GCs: n,
	}
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, model, _ = strings.Cut(line, ":")
				model = strings.TrimSpace(model)
				break
			}
		}
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	return fmt.Sprintf("%s, %d CPUs, %.0f GiB, Linux %s, %s", model, runtime.NumCPU(), float64(si.Totalram)*float64(si.Unit)/(1<<30), unix.ByteSliceToString(u.Release[:]), runtime.Version())
}

// postLoop posts rate messages per second for d, open loop: message i is scheduled
// at start + i/rate and its content carries its index base+i and that time, so a
// post that leaves late (the poster or the api is slow) counts as late. It
// returns the bitset (by message index) of the messages the api accepted, how
// many it scheduled, and when the first was scheduled.
func (r *run) postLoop(ctx context.Context, rate float64, d time.Duration, base int) (ok []uint64, n, failed int, postLat *hdrhistogram.Histogram, start time.Time) {
	n = int(math.Round(rate * d.Seconds()))
	ok = make([]uint64, (base+n+63)/64)
	postLat = newLatencyHist()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var nfailed atomic.Int64
	sem := make(chan struct{}, 512)
	start = time.Now().Add(50 * time.Millisecond)
	interval := time.Duration(float64(time.Second) / rate)
	lastErr := ""
	for i := 0; i < n; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if w := time.Until(sched); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				n = i
			}
		}
		if ctx.Err() != nil {
			break
		}
		idx := base + i
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err := r.postTo(pctx, idx, marker(idx, sched)+" the quick brown fox jumps over the lazy dog")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				nfailed.Add(1)
				lastErr = err.Error()
				return
			}
			_ = postLat.RecordValue(max(time.Since(sched).Microseconds(), 1))
			ok[idx/64] |= 1 << (idx % 64)
		}()
	}
	wg.Wait()
	if lastErr != "" {
		fmt.Fprintln(os.Stderr, "\npost error:", lastErr)
	}
	return ok, n, int(nfailed.Load()), postLat, start
}

// totalMessages is how many messages the run posts: the size of each client
// session's bitset of messages seen.
func (r *run) totalMessages() int {
	if r.o.scenario != "overload" {
		return int(math.Ceil(r.o.rate * r.o.duration.Seconds()))
	}
	n := 0
	for _, rate := range r.o.steps {
		n += int(math.Round(rate * r.o.stepDuration.Seconds()))
	}
	return n
}

// serverTicks is the CPU time of every live server process, in ticks.
func (r *run) serverTicks() []int64 {
	out := make([]int64, len(r.servers))
	for i, s := range r.servers {
		out[i] = procCPUTicks(s.PID())
	}
	return out
}

func (r *run) workerTicks() int64 {
	var t int64
	for _, w := range r.workers {
		t += procCPUTicks(w.cmd.Process.Pid)
	}
	return t + procCPUTicks(os.Getpid())
}

// idleBaseline measures the servers' CPU with every session connected and
// nothing posted, over --settle.
func (r *run) idleBaseline() error {
	t0, w0 := r.serverTicks(), time.Now()
	select {
	case <-time.After(r.o.settle):
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	t1 := r.serverTicks()
	r.res.IdleServerCPUPerSec = float64(sum(t1)-sum(t0)) / ticksPerSecond / time.Since(w0).Seconds()
	return nil
}

// measure runs the scenario's one posting window.
func (r *run) measure(during func(elapsed time.Duration, st workerStatus)) error {
	if err := r.idleBaseline(); err != nil {
		return err
	}
	stopPerf := r.startPerf()
	w, err := r.window(r.o.rate, r.o.duration, 0, during)
	stopPerf()
	if err != nil {
		return err
	}
	r.res.windowResult = *w
	for i := range r.servers {
		if i < len(w.ServerCPUEach) && w.ServerCPUEach[i] >= 0 {
			r.res.Servers[i].CPUSeconds = w.ServerCPUEach[i]
		}
	}
	for i, s := range r.servers {
		if !s.killed {
			m := scrapeMetrics(s.Addr)
			r.res.Servers[i].SlowConsumers = int64(m["guildhall_gateway_slow_consumers_total"])
			r.res.Servers[i].GapFills = int64(m["guildhall_gateway_gap_fills_total"])
		}
	}
	r.printClientWarning(w)
	return nil
}

// window posts rate messages/s for d with message indexes from base, waits for
// delivery (at most --drain after the last post), and measures: every session's
// missing, duplicate and late messages, latency, frames/s, and the CPU of the
// servers and of the load generator.
func (r *run) window(rate float64, d time.Duration, base int, during func(elapsed time.Duration, st workerStatus)) (*windowResult, error) {
	o := r.o
	if _, err := r.call(command{Cmd: "reset", Base: base}); err != nil {
		return nil, err
	}
	snap0, err := r.snapshot()
	if err != nil {
		return nil, err
	}
	count0 := r.serverCounters()
	w := &windowResult{LoadAvgBefore: loadAvg()}
	busy0, total0 := cpuTicks()
	cpu0, wcpu0, t0 := r.serverTicks(), r.workerTicks(), time.Now()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				st := r.aggregate()
				if during != nil {
					during(time.Since(t0), st)
				}
				el := time.Since(t0).Seconds()
				r.prog.printf(false, "post: %.0f/%.0f s at %g msg/s, %d ready, %d msgs delivered (%.0f/s), %d closes, %d resumed", el, d.Seconds(), rate, st.Ready, st.Msgs, float64(st.Msgs)/el, st.Closes, st.Resumed)
			}
		}
	}()
	var limited0 int64
	if r.limited != nil {
		limited0 = r.limited.Load()
	}
	ok, n, failed, postLat, start := r.postLoop(ctx, rate, d, base)
	if r.limited != nil {
		w.PostRateLimited = r.limited.Load() - limited0
	}
	posted := 0
	for _, x := range ok {
		posted += popcount(x)
	}
	perMsg := o.sessions
	if o.scenario == "small-rooms" {
		perMsg = 10
	}
	expected := int64(posted) * int64(perMsg)
	// Drain: wait until everything posted was delivered, or --drain.
	drainStart := time.Now()
	for time.Since(drainStart) < o.drain {
		if r.aggregate().Msgs >= expected {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
	snap1, err := r.snapshot()
	if err != nil {
		return nil, err
	}
	cpu1, wcpu1, t1 := r.serverTicks(), r.workerTicks(), time.Now()
	busy1, total1 := cpuTicks()
	w.LoadAvgAfter = loadAvg()
	cancel()
	var exp []uint64
	if o.scenario != "small-rooms" {
		exp = ok
	}
	replies, err := r.call(command{Cmd: "report", Expected: exp})
	if err != nil {
		return nil, err
	}
	lat := newLatencyHist()
	for _, raw := range replies {
		var wr workerReport
		if err := json.Unmarshal(raw, &wr); err != nil {
			return nil, err
		}
		if wr.Latency != nil {
			lat.Merge(hdrhistogram.Import(wr.Latency))
		}
		w.Delivered += wr.Status.Msgs
		w.Missing += wr.Missing
		w.Dups += wr.Dups
		w.Incomplete += wr.Incomplete
		w.Disordered += wr.Disordered
	}
	w.Posted, w.PostFailed, w.Expected = posted, failed, expected
	if o.scenario == "small-rooms" {
		w.Missing = max(expected-w.Delivered, 0)
	}
	w.Late = snap1.Late
	w.Drained = w.Delivered >= expected
	w.Latency = percentiles(lat)
	w.PostLatency = percentiles(postLat)
	// The window ends at the last delivery when everything came, else now; and
	// not before the posting time is up (n posts span (n-1)/rate, not d).
	end := t1
	if w.Drained && snap1.LastMsgAt > 0 {
		end = time.Unix(0, snap1.LastMsgAt)
	}
	end = later(end, start.Add(d))
	lastSched := start
	if n > 0 {
		lastSched = start.Add(time.Duration(float64(n-1) / rate * float64(time.Second)))
	}
	w.WindowSeconds = end.Sub(start).Seconds()
	w.DrainSeconds = max(end.Sub(lastSched).Seconds(), 0)
	w.OfferedFramesPerSec = rate * float64(perMsg)
	if w.WindowSeconds > 0 {
		w.FramesPerSec = float64(w.Delivered) / w.WindowSeconds
	}
	wall := t1.Sub(t0).Seconds()
	w.ServerCPUEach = make([]float64, len(r.servers))
	for i := range r.servers {
		if cpu0[i] < 0 || cpu1[i] < 0 {
			w.ServerCPUEach[i] = -1 // killed during the window: its share is not known
			continue
		}
		w.ServerCPUEach[i] = float64(cpu1[i]-cpu0[i]) / ticksPerSecond
		w.ServerCPUSeconds += w.ServerCPUEach[i]
	}
	if w.Delivered > 0 {
		w.ServerCPUPerFrameUs = w.ServerCPUSeconds * 1e6 / float64(w.Delivered)
		net := w.ServerCPUSeconds - r.res.IdleServerCPUPerSec*wall
		w.ServerCPUPerFrameNetUs = math.Max(net, 0) * 1e6 / float64(w.Delivered)
	}
	w.ClientCPUSeconds = float64(wcpu1-wcpu0) / ticksPerSecond
	if wall > 0 {
		w.ClientCPUUtil = w.ClientCPUSeconds / (wall * float64(max(o.clientCores, 1)))
		if snap1.Pollers > 0 {
			waited := float64(snap1.PollWaitNs-snap0.PollWaitNs) / 1e9
			w.ClientPollerBusy = math.Max(0, 1-waited/(wall*float64(snap1.Pollers)))
		}
	}
	if reads := snap1.Reads - snap0.Reads; reads > 0 {
		w.FramesPerRead = float64(snap1.Frames-snap0.Frames) / float64(reads)
	}
	w.ClientSaturated = w.ClientCPUUtil >= clientSaturated || w.ClientPollerBusy >= clientSaturated
	// Other work on the pinned CPUs: their busy time less ours.
	coreShare := func(cpus string, ours float64) (busy, others float64) {
		set, err := parseCPUs(cpus)
		if cpus == "" || err != nil {
			return 0, 0
		}
		var b, t int64
		for c := range total1 {
			if set.IsSet(c) {
				b += busy1[c] - busy0[c]
				t += total1[c] - total0[c]
			}
		}
		if t <= 0 || b <= 0 {
			return 0, 0
		}
		busy = float64(b) / float64(t)
		return busy, math.Max(0, 1-ours*ticksPerSecond/float64(b))
	}
	w.ServerCPUsBusy, w.ServerCPUsOthers = coreShare(o.serverCPUs, w.ServerCPUSeconds)
	w.ClientCPUsBusy, w.ClientCPUsOthers = coreShare(o.clientCPUs, w.ClientCPUSeconds)
	count1 := r.serverCounters()
	w.SlowConsumers, w.GapFills = count1.slow-count0.slow, count1.gaps-count0.gaps
	if writes := count1.writes - count0.writes; writes > 0 {
		w.ServerFramesPerWrite = float64(count1.frames-count0.frames) / float64(writes)
	}
	w.Closes, w.Resumed = snap1.Closes-snap0.Closes, snap1.Resumed-snap0.Resumed
	r.prog.printf(true, "post: done: %d posted at %g/s, %d delivered of %d expected, p99 %s", posted, rate, w.Delivered, expected, p99Text(w.Latency))
	return w, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// clientSaturated is the share of its CPUs (or of its pollers' time) beyond which
// the load generator is taken to set the pace itself.
const clientSaturated = 0.9

func (r *run) printClientWarning(w *windowResult) {
	if w.ClientSaturated {
		fmt.Fprintf(os.Stderr, "WARNING: the load generator used %.0f%% of its %d CPU(s), its pollers were busy %.0f%% of the window: the latency and frames/s measured may be its own limits\n",
			100*w.ClientCPUUtil, r.o.clientCores, 100*w.ClientPollerBusy)
	}
	if w.ServerCPUsBusy*w.ServerCPUsOthers > otherWork || w.ClientCPUsBusy*w.ClientCPUsOthers > otherWork {
		fmt.Fprintf(os.Stderr, "WARNING: other work took %.0f%% of the server CPUs and %.0f%% of the client CPUs during the window: this machine was not quiet\n",
			100*w.ServerCPUsBusy*w.ServerCPUsOthers, 100*w.ClientCPUsBusy*w.ClientCPUsOthers)
	}
}

// otherWork is the share of the pinned CPUs' time that other processes may take
// before a run says the machine was not quiet.
const otherWork = 0.1

func p99Text(q *quantile) string {
	if q == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", q.P99)
}

// snapshot asks every worker for its counters now and sums them (LastMsgAt: the
// latest).
func (r *run) snapshot() (workerStatus, error) {
	replies, err := r.call(command{Cmd: "status"})
	if err != nil {
		return workerStatus{}, err
	}
	var a workerStatus
	for _, raw := range replies {
		var s workerStatus
		if err := json.Unmarshal(raw, &s); err != nil {
			return a, err
		}
		a.Ready += s.Ready
		a.Closes += s.Closes
		a.Resumed += s.Resumed
		a.Frames += s.Frames
		a.Msgs += s.Msgs
		a.Late += s.Late
		a.LastMsgAt = max(a.LastMsgAt, s.LastMsgAt)
		a.Pollers += s.Pollers
		a.PollWaitNs += s.PollWaitNs
		a.Reads += s.Reads
		a.ReadBytes += s.ReadBytes
	}
	return a, nil
}

// serverCounters sums the servers' slow-consumer and gap-fill counters.
// serverCounts are the gateways' counters a window reports the change of.
type serverCounts struct{ slow, gaps, frames, writes int64 }

func (r *run) serverCounters() serverCounts {
	var c serverCounts
	for _, s := range r.servers {
		if s.killed {
			continue
		}
		m := scrapeMetrics(s.Addr)
		c.slow += int64(m["guildhall_gateway_slow_consumers_total"])
		c.gaps += int64(m["guildhall_gateway_gap_fills_total"])
		c.frames += int64(m["guildhall_gateway_frames_written_total"])
		c.writes += int64(m["guildhall_gateway_socket_writes_total"])
	}
	return c
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

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		if x > 0 {
			t += x
		}
	}
	return t
}

func popcount(x uint64) int {
	n := 0
	for x != 0 {
		x &= x - 1
		n++
	}
	return n
}

// startPerf records every live server with perf while the window runs, and turns
// the recordings into text reports when stopped. Go binaries keep frame pointers,
// so perf's call graphs name Go functions as pprof would.
func (r *run) startPerf() (stop func()) {
	if !r.o.perf {
		return func() {}
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		fmt.Fprintln(os.Stderr, "--perf: no perf on PATH")
		return func() {}
	}
	var cmds []*exec.Cmd
	var outs []string
	for _, s := range r.servers {
		if s.killed {
			continue
		}
		data := filepath.Join(r.o.data, "perf-"+s.Name+".data")
		c := exec.Command(perf, "record", "-q", "-F", "999", "-g", "-p", strconv.Itoa(s.PID()), "-o", data)
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "perf:", err)
			continue
		}
		cmds = append(cmds, c)
		outs = append(outs, data)
	}
	return func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGINT)
			_ = c.Wait()
		}
		for _, data := range outs {
			txt := strings.TrimSuffix(data, ".data") + ".txt"
			f, err := os.Create(txt)
			if err != nil {
				continue
			}
			c := exec.Command(perf, "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "0.7", "-g", "none", "--sort", "sym")
			c.Stdout = f
			_ = c.Run()
			f.Close()
			fmt.Fprintln(os.Stderr, "perf report:", txt)
			r.res.PerfReports = append(r.res.PerfReports, txt)
		}
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
