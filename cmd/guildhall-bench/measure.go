package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// Measuring: the open-loop poster, one measured window (delivery, latency,
// frames/s, the CPU of the servers and of the load generator), the idle
// baseline, and perf recordings. report.go turns the results into text and
// JSON.

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
