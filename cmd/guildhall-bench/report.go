package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// result is what a run reports, as text and as JSON.
type result struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Label    string    `json:"label,omitempty"`
	Time     time.Time `json:"time"`
	Machine  string    `json:"machine"`
	Command  string    `json:"command"`

	Sessions int     `json:"sessions"`
	Gateways int     `json:"gateways"`
	Workers  int     `json:"workers"`
	Rate     float64 `json:"rate_per_sec"`
	Duration float64 `json:"duration_sec"`

	RegisterMs  float64 `json:"register_ms,omitempty"`
	MintPerSec  float64 `json:"mint_per_sec,omitempty"`
	JoinPerSec  float64 `json:"join_per_sec,omitempty"`
	SeedSeconds float64 `json:"seed_sec,omitempty"`
	RampSeconds float64 `json:"ramp_sec"`

	// RampsSec is every ramp's time with --ramps N (the servers restarted on the
	// same data between ramps); RampSeconds is the last one's.
	RampsSec []float64    `json:"ramps_sec,omitempty"`
	Ramps    []rampResult `json:"ramps,omitempty"`

	// The posting window (huge-room, small-rooms, reconnect-storm).
	windowResult
	IdleServerCPUPerSec float64  `json:"idle_server_cpu_per_sec"`
	PerfReports         []string `json:"perf_reports,omitempty"`

	// Overload: one window per step, and where p99 passed the knee threshold.
	Steps []stepResult `json:"steps,omitempty"`
	Knee  *kneeResult  `json:"knee,omitempty"`

	Servers      []serverResult `json:"servers"`
	KernelBefore kernelSample   `json:"kernel_before"`
	KernelAfter  kernelSample   `json:"kernel_after"`
	Storm        *stormResult   `json:"storm,omitempty"`

	// Idle memory per session, on the server that holds the most sessions.
	PerSession *perSession `json:"per_session,omitempty"`
}

// rampResult is one ramp: how long until every session was ready, and what got
// in the way (the clients' closes by close code, INVALID_SESSIONs, failed dials,
// and the servers' identify outcomes from /metrics).
type rampResult struct {
	Seconds    float64            `json:"sec"`
	Closes     int64              `json:"closes"`
	CloseCodes map[int]int64      `json:"close_codes,omitempty"`
	Invalid    int64              `json:"invalid_sessions"`
	DialErrors int64              `json:"dial_errors"`
	Identifies map[string]float64 `json:"identifies,omitempty"`
}

// windowResult is what one posting window measured: posts, deliveries, latency,
// and the CPU of the servers and of the load generator.
type windowResult struct {
	Posted     int `json:"posted"`
	PostFailed int `json:"post_failed"`
	// PostRateLimited counts 429 answers to posts (retried after Reset-After).
	PostRateLimited int64 `json:"post_rate_limited"`
	Expected        int64 `json:"expected"`
	Delivered       int64 `json:"delivered"`
	// Missing counts (session, message) pairs not delivered by the end of the
	// drain; Late, messages of an earlier window that arrived during this one.
	Missing     int64     `json:"missing"`
	Dups        int64     `json:"dups"`
	Incomplete  int       `json:"incomplete_sessions"`
	Disordered  int64     `json:"disordered"`
	Late        int64     `json:"late"`
	Latency     *quantile `json:"latency_ms,omitempty"`
	PostLatency *quantile `json:"post_latency_ms,omitempty"`

	// WindowSeconds runs from the first scheduled post to the last delivery (or
	// the end of the drain); DrainSeconds is the part after the last scheduled
	// post; Drained says whether everything expected arrived within --drain.
	WindowSeconds float64 `json:"window_sec"`
	DrainSeconds  float64 `json:"drain_sec"`
	Drained       bool    `json:"drained"`
	// OfferedFramesPerSec is what the posts asked for (messages/s × recipients);
	// FramesPerSec is what was delivered, over the window.
	OfferedFramesPerSec    float64 `json:"offered_frames_per_sec"`
	FramesPerSec           float64 `json:"frames_per_sec"`
	ServerCPUSeconds       float64 `json:"server_cpu_sec"`
	ServerCPUPerFrameUs    float64 `json:"server_cpu_per_frame_us"`
	ServerCPUPerFrameNetUs float64 `json:"server_cpu_per_frame_net_us"`
	// ServerCPUEach is every server's share of ServerCPUSeconds (-1: killed).
	ServerCPUEach []float64 `json:"server_cpu_sec_each,omitempty"`

	// The load generator (workers and coordinator): its CPU time, that as a
	// fraction of the CPUs it may use, the fraction of the window its pollers
	// had data waiting (1: they never caught up), frames per read (above 1 when
	// the server coalesces or the client lags), and whether it was saturated:
	// then latency and frames/s may be the client's, not the server's.
	ClientCPUSeconds float64 `json:"client_cpu_sec"`
	ClientCPUUtil    float64 `json:"client_cpu_util"`
	ClientPollerBusy float64 `json:"client_poller_busy"`
	FramesPerRead    float64 `json:"frames_per_read"`
	ClientSaturated  bool    `json:"client_saturated"`
	// ServerFramesPerWrite is the gateways' frames written per socket write
	// over the window: how much they coalesced (0: not reported, as by the
	// reference or a build before the metric).
	ServerFramesPerWrite float64 `json:"server_frames_per_write,omitempty"`

	// How busy the server CPUs and the client CPUs were over the window, by
	// anyone (/proc/stat), and the share of that which was not ours: on a shared
	// machine other work takes CPU from the servers or the client (0 when the
	// run is not pinned).
	ServerCPUsBusy   float64 `json:"server_cpus_busy,omitempty"`
	ServerCPUsOthers float64 `json:"server_cpus_others,omitempty"`
	ClientCPUsBusy   float64 `json:"client_cpus_busy,omitempty"`
	ClientCPUsOthers float64 `json:"client_cpus_others,omitempty"`

	// Counter deltas over the window: sessions cut off as slow consumers, gap
	// fills (servers), connections closed and resumed (clients).
	SlowConsumers int64 `json:"slow_consumers"`
	GapFills      int64 `json:"gap_fills"`
	Closes        int64 `json:"closes"`
	Resumed       int64 `json:"resumed"`

	// LoadAvg is /proc/loadavg around the window: this machine is shared, and
	// anything else running shows here.
	LoadAvgBefore string `json:"loadavg_before,omitempty"`
	LoadAvgAfter  string `json:"loadavg_after,omitempty"`
}

// stepResult is one step of an overload sweep.
type stepResult struct {
	Step     int     `json:"step"`
	Rate     float64 `json:"rate_per_sec"`
	Duration float64 `json:"duration_sec"`
	windowResult
	// Behind: delivery fell behind the offered rate (see run.behind); Why says how.
	Behind bool   `json:"behind"`
	Why    string `json:"why,omitempty"`
}

// kneeResult is where a sweep's p99 passed the threshold: FramesPerSec is the
// offered frames/s there, interpolated linearly between the last step under and
// the first over. Below: already over at the first step (FramesPerSec is that
// step's); Above: never over (FramesPerSec is the last step's, a lower bound).
type kneeResult struct {
	ThresholdMs  float64 `json:"threshold_ms"`
	FramesPerSec float64 `json:"frames_per_sec"`
	Below        bool    `json:"below_first_step,omitempty"`
	Above        bool    `json:"above_last_step,omitempty"`
	// The delivered frames/s of the last step under the threshold.
	DeliveredFramesPerSec float64 `json:"delivered_frames_per_sec"`
}

// report is what a run with --target both, or an overload sweep, writes with
// --json: one result per target.
type report struct {
	Scenario string    `json:"scenario"`
	Time     time.Time `json:"time"`
	Command  string    `json:"command"`
	Results  []*result `json:"results"`
}

type quantile struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

type serverResult struct {
	Name          string    `json:"name"`
	PID           int       `json:"pid"`
	Sessions      int       `json:"sessions"`
	CPUSeconds    float64   `json:"cpu_sec"`
	Before        memSample `json:"mem_before"`
	After         memSample `json:"mem_after"`
	GCAfterRamp   bool      `json:"gc_after_ramp"`
	SlowConsumers int64     `json:"slow_consumers"`
	GapFills      int64     `json:"gap_fills"`
}

type memSample struct {
	At         time.Time `json:"at"`
	RSS        int64     `json:"rss"`
	HeapInuse  int64     `json:"heap_inuse"`
	StackInuse int64     `json:"stack_inuse"`
	Goroutines int       `json:"goroutines"`
	GCLiveHeap int64     `json:"gc_live_heap"` // last gctrace line, MB resolution
	GCStacks   int64     `json:"gc_stacks"`
	GCs        int       `json:"gcs"`
}

type kernelSample struct {
	TCPMem int64 `json:"tcp_mem"`
	Slab   int64 `json:"slab"`
}

type perSession struct {
	Server         string  `json:"server"`
	Sessions       int     `json:"sessions"`
	HeapStackBytes float64 `json:"heap_plus_stack_bytes"` // /metrics heap_inuse + stack_inuse delta
	GCLiveBytes    float64 `json:"gc_live_plus_stacks_bytes"`
	RSSBytes       float64 `json:"rss_bytes"`
	Goroutines     float64 `json:"goroutines"`
	// Kernel memory per session counts both ends of each loopback connection.
	KernelTCPBytes  float64 `json:"kernel_tcp_bytes"`
	KernelSlabBytes float64 `json:"kernel_slab_bytes"`
}

type stormResult struct {
	Victim            string  `json:"victim"`
	SessionsOnVictim  int     `json:"sessions_on_victim"`
	AllResumedSeconds float64 `json:"all_resumed_sec"` // -1: not all came back
	Resumed           int64   `json:"resumed"`
	Invalid           int64   `json:"invalid_sessions"`
	// Outcomes: the surviving servers' RESUME and IDENTIFY counters by outcome
	// (guildhall_gateway_{resumes,identifies}_total) at the end of the run, which
	// say why sessions got INVALID_SESSION (the servers log only warnings), and
	// where resumes replayed from (guildhall_gateway_resume_replays_total).
	Outcomes map[string]float64 `json:"outcomes,omitempty"`
}

func newResult(o options) *result {
	return &result{
		Scenario: o.scenario, Target: o.target, Label: o.label, Time: time.Now().UTC(),
		Command:  "guildhall-bench " + strings.Join(os.Args[1:], " "),
		Sessions: o.sessions, Gateways: o.gateways, Rate: o.rate, Duration: o.duration.Seconds(),
	}
}

func kernelMem() kernelSample { return kernelSample{TCPMem: sockstatMem(), Slab: slabBytes()} }

func percentiles(h *hdrhistogram.Histogram) *quantile {
	if h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &quantile{
		Count: h.TotalCount(), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// finish derives the per-session memory figures.
func (r *result) finish() {
	if r.Scenario != "idle" || len(r.Servers) == 0 {
		return
	}
	// The server to judge: the gateway-only process with the most sessions, or the
	// only one.
	best := 0
	for i, s := range r.Servers {
		if i > 0 && s.Sessions >= r.Servers[best].Sessions {
			best = i
		}
	}
	s := r.Servers[best]
	n := float64(max(s.Sessions, 1))
	ps := &perSession{
		Server: s.Name, Sessions: s.Sessions,
		HeapStackBytes: float64((s.After.HeapInuse+s.After.StackInuse)-(s.Before.HeapInuse+s.Before.StackInuse)) / n,
		RSSBytes:       float64(s.After.RSS-s.Before.RSS) / n,
		Goroutines:     float64(s.After.Goroutines-s.Before.Goroutines) / n,
	}
	if s.GCAfterRamp {
		before := s.Before.GCLiveHeap + s.Before.GCStacks
		if s.Before.GCs == 0 { // no GC yet when the baseline was taken
			before = s.Before.HeapInuse + s.Before.StackInuse
		}
		ps.GCLiveBytes = float64(s.After.GCLiveHeap+s.After.GCStacks-before) / n
	}
	total := float64(max(r.Sessions, 1))
	ps.KernelTCPBytes = float64(r.KernelAfter.TCPMem-r.KernelBefore.TCPMem) / total
	ps.KernelSlabBytes = float64(r.KernelAfter.Slab-r.KernelBefore.Slab) / total
	r.PerSession = ps
}

func (r *result) text() string {
	var b strings.Builder
	f := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	f("\n== %s (%s) ==\n", r.Scenario, r.Target)
	f("machine:   %s\n", r.Machine)
	f("command:   %s\n", r.Command)
	f("sessions:  %d on %d gateway process(es), %d worker process(es); ready in %.1f s\n", r.Sessions, r.Gateways, r.Workers, r.RampSeconds)
	if len(r.RampsSec) > 1 {
		f("ramps:     %s s to ready, in order, the servers restarted on the same data between them\n", joinFloats(r.RampsSec, "%.1f"))
		for i, rr := range r.Ramps {
			f("ramp %d:    %.1f s; %d closes %v, %d INVALID_SESSION, %d failed dials; identifies %v\n", i+1, rr.Seconds, rr.Closes, rr.CloseCodes, rr.Invalid, rr.DialErrors, rr.Identifies)
		}
	}
	if r.RegisterMs > 0 {
		f("register:  %.1f ms per POST /auth/register (bcrypt); 100k users ≈ %.0f s serially\n", r.RegisterMs, r.RegisterMs*100)
	}
	if r.SeedSeconds > 0 {
		f("seed:      %.1f s (bot accounts %.0f/s over NATS, invites accepted %.0f/s over REST)\n", r.SeedSeconds, r.MintPerSec, r.JoinPerSec)
	}
	if r.Scenario == "overload" {
		b.WriteString(r.stepsText())
	} else if r.Scenario != "idle" {
		f("posted:    %d messages at %.1f/s for %.0f s (%d failed, %d answers 429 retried)\n", r.Posted, r.Rate, r.Duration, r.PostFailed, r.PostRateLimited)
		f("delivered: %d of %d expected; missing %d (in %d sessions), duplicates %d, out of order %d\n", r.Delivered, r.Expected, r.Missing, r.Incomplete, r.Dups, r.Disordered)
		if q := r.Latency; q != nil {
			f("latency:   send→delivery from the scheduled send time (ms): p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (n=%d)\n", q.P50, q.P90, q.P99, q.P999, q.Max, q.Count)
		}
		if q := r.PostLatency; q != nil {
			f("post:      REST POST answered (ms from schedule): p50 %.2f  p99 %.2f  max %.2f\n", q.P50, q.P99, q.Max)
		}
		drained := "all delivered"
		if !r.Drained {
			drained = "NOT all delivered by the end of the drain"
		}
		f("rate:      %.0f delivered frames/s of %.0f offered, over %.1f s (%.1f s after the last post; %s)\n", r.FramesPerSec, r.OfferedFramesPerSec, r.WindowSeconds, r.DrainSeconds, drained)
		f("cpu:       servers %.2f s = %.2f µs per delivered frame (%.2f µs net of the idle %.3f CPU-s/s)\n",
			r.ServerCPUSeconds, r.ServerCPUPerFrameUs, r.ServerCPUPerFrameNetUs, r.IdleServerCPUPerSec)
		if r.ServerFramesPerWrite > 0 {
			f("writes:    the gateways wrote %.2f frames per socket write\n", r.ServerFramesPerWrite)
		}
		f("client:    %.2f CPU-s = %.0f%% of its CPUs; pollers busy %.0f%%; %.2f frames per read\n", r.ClientCPUSeconds, 100*r.ClientCPUUtil, 100*r.ClientPollerBusy, r.FramesPerRead)
		if r.ServerCPUsBusy > 0 || r.ClientCPUsBusy > 0 {
			f("cores:     server CPUs %.0f%% busy, %.0f%% of it other work; client CPUs %.0f%% busy, %.0f%% of it other work\n",
				100*r.ServerCPUsBusy, 100*r.ServerCPUsOthers, 100*r.ClientCPUsBusy, 100*r.ClientCPUsOthers)
		}
		if r.ClientSaturated {
			f("WARNING:   the load generator was saturated: latency and frames/s may be its own limits, not the server's\n")
		}
	}
	if r.LoadAvgBefore != "" {
		f("loadavg:   %s before, %s after the window (other work on this machine shows here)\n", r.LoadAvgBefore, r.LoadAvgAfter)
	}
	for _, s := range r.Servers {
		if s.After.At.IsZero() {
			f("server:    %-16s sessions %6d  cpu %.2f s  rss %s  heap %s  goroutines %d  slow consumers %d  gap fills %d\n",
				s.Name, s.Sessions, s.CPUSeconds, mib(s.Before.RSS), mib(s.Before.HeapInuse), s.Before.Goroutines, s.SlowConsumers, s.GapFills)
			continue
		}
		f("server:    %-16s sessions %6d  cpu %.2f s  rss %s → %s  heap %s → %s  stacks %s → %s  goroutines %d → %d  slow consumers %d  gap fills %d\n",
			s.Name, s.Sessions, s.CPUSeconds, mib(s.Before.RSS), mib(s.After.RSS), mib(s.Before.HeapInuse), mib(s.After.HeapInuse),
			mib(s.Before.StackInuse), mib(s.After.StackInuse), s.Before.Goroutines, s.After.Goroutines, s.SlowConsumers, s.GapFills)
	}
	if p := r.PerSession; p != nil {
		f("per idle session on %s (%d sessions): heap+stack %.0f B (/metrics in-use), %.0f B (live heap + stacks after a GC%s), RSS %.0f B, %.2f goroutines; kernel (both ends): TCP buffers %.0f B, slab %.0f B; idle server CPU %.3f CPU-s/s\n",
			p.Server, p.Sessions, p.HeapStackBytes, p.GCLiveBytes, map[bool]string{true: "", false: ": no GC seen"}[p.GCLiveBytes != 0], p.RSSBytes, p.Goroutines, p.KernelTCPBytes, p.KernelSlabBytes, r.IdleServerCPUPerSec)
	}
	if s := r.Storm; s != nil {
		back := "not all resumed before the end"
		if s.AllResumedSeconds >= 0 {
			back = fmt.Sprintf("all resumed and ready again after %.2f s", s.AllResumedSeconds)
		}
		f("storm:     killed %s holding %d sessions; %s; %d resumes, %d INVALID_SESSION\n", s.Victim, s.SessionsOnVictim, back, s.Resumed, s.Invalid)
		for k, v := range s.Outcomes {
			f("storm:     %s %.0f\n", k, v)
		}
	}
	return b.String()
}

func joinFloats(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// runPlot draws, from result files, latency percentiles against room size
// (huge-room results), or p99 and delivered frames/s against the offered rate
// (overload sweeps, one line per target) with gnuplot (apt-get install
// gnuplot-nox), and writes the data and script beside the image so it can be
// redrawn elsewhere.
func runPlot(args []string) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	out := fs.String("o", "bench/latency.png", "image to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rs, sweeps []*result
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var probe struct {
			Results []*result `json:"results"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		found := probe.Results
		if found == nil {
			var r result
			if err := json.Unmarshal(b, &r); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			found = []*result{&r}
		}
		for _, r := range found {
			switch {
			case r.Scenario == "overload" && len(r.Steps) > 0:
				sweeps = append(sweeps, r)
			case r.Latency != nil && r.Scenario == "huge-room" && r.Target == "guildhall":
				rs = append(rs, r)
			}
		}
	}
	if len(sweeps) > 0 {
		return plotSweep(*out, sweeps)
	}
	if len(rs) == 0 {
		return errors.New("no huge-room results with latency, and no overload sweeps, among the files")
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Sessions < rs[j].Sessions })
	base := strings.TrimSuffix(*out, filepath.Ext(*out))
	var dat strings.Builder
	dat.WriteString("# members p50 p90 p99 p99.9 max (ms)\n")
	for _, r := range rs {
		q := r.Latency
		fmt.Fprintf(&dat, "%d %.3f %.3f %.3f %.3f %.3f\n", r.Sessions, q.P50, q.P90, q.P99, q.P999, q.Max)
	}
	if err := os.WriteFile(base+".dat", []byte(dat.String()), 0o644); err != nil {
		return err
	}
	title := fmt.Sprintf("Guildhall huge room: send→delivery latency at %.0f msg/s", rs[0].Rate)
	script := fmt.Sprintf(`set terminal pngcairo size 900,540 font "sans,11"
set output %q
set title %q
set xlabel "members connected (one guild, one channel)"
set ylabel "latency from scheduled send (ms)"
set logscale xy
set grid
set key left top
set format x "%%.0s%%c"
plot %q using 1:2 with linespoints title "p50", '' using 1:3 with linespoints title "p90", '' using 1:4 with linespoints title "p99", '' using 1:5 with linespoints title "p99.9", '' using 1:6 with linespoints title "max", 250 with lines dt 2 lc rgb "red" title "target p99 (250 ms)"
`, *out, title, base+".dat")
	return gnuplot(base, script, `pngcairo size 900,540 font "sans,11"`, "png size 900,540", *out)
}
