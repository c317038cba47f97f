package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one process under test: `guildhall serve` (all roles, embedded NATS)
// or an extra `guildhall serve --role gateway`, or the reference program.
type server struct {
	Name    string
	Addr    string // host:port of HTTP and the gateway
	NATS    string // nats:// URL, for the first server
	Creds   string // the bus credentials the first server created in its data folder
	cmd     *exec.Cmd
	logPath string

	killed bool // by the storm, on purpose

	mu      sync.Mutex
	lastGC  gcLine
	gcCount int
}

// gcLine is the last GODEBUG=gctrace=1 line: the live heap after marking and the
// scannable goroutine stacks, in MB as the runtime prints them.
type gcLine struct {
	At        time.Time
	LiveMB    float64
	StacksMB  float64
	Forced    bool
	HeapGoal  float64
	AnyGCSeen bool
}

var gcRE = regexp.MustCompile(`^gc \d+ @[0-9.]+s .*?(\d+)->(\d+)->(\d+) MB, (\d+) MB goal, (\d+) MB stacks.*?( \(forced\))?$`)

// startServer runs args under taskset (when cpus is not empty) with gctrace on,
// logs to dir/name.log, and waits for /readyz.
func startServer(ctx context.Context, name, bin string, args []string, cpus, dir, addr string, extraEnv ...string) (*server, error) {
	s := &server{Name: name, Addr: addr, logPath: filepath.Join(dir, name+".log")}
	var argv []string
	if cpus != "" {
		argv = append(argv, "taskset", "-c", cpus)
	}
	argv = append(argv, bin)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	cmd.Env = append(cmd.Env, extraEnv...)
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout = logf
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.cmd = cmd
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logf.Write(append(line, '\n'))
			if bytes.HasPrefix(line, []byte("gc ")) {
				s.parseGC(string(line))
			}
		}
	}()
	go func() { _ = cmd.Wait(); _ = pw.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Kill()
			return nil, fmt.Errorf("%s did not become ready; see %s", name, s.logPath)
		}
		if cmd.ProcessState != nil {
			return nil, fmt.Errorf("%s exited; see %s", name, s.logPath)
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) parseGC(line string) {
	m := gcRE.FindStringSubmatch(line)
	if m == nil {
		return
	}
	live, _ := strconv.ParseFloat(m[3], 64)
	goal, _ := strconv.ParseFloat(m[4], 64)
	stacks, _ := strconv.ParseFloat(m[5], 64)
	s.mu.Lock()
	s.lastGC = gcLine{At: time.Now(), LiveMB: live, StacksMB: stacks, HeapGoal: goal, Forced: m[6] != "", AnyGCSeen: true}
	s.gcCount++
	s.mu.Unlock()
}

// GC returns the last GC line and how many have been seen.
func (s *server) GC() (gcLine, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastGC, s.gcCount
}

// PID is the server's process id: the child of taskset is the server itself
// (taskset execs).
func (s *server) PID() int { return s.cmd.Process.Pid }

// Kill ends the process at once (SIGKILL), as a crash would.
func (s *server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

// Stop asks the process to shut down (SIGTERM) and kills it after timeout.
func (s *server) Stop(timeout time.Duration) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for s.cmd.ProcessState == nil {
			time.Sleep(50 * time.Millisecond)
			if err := s.cmd.Process.Signal(syscall.Signal(0)); err != nil {
				break
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Kill()
	}
}

// procCPUTicks is utime+stime of a process (all its threads) in clock ticks
// (1/100 s on Linux), or -1.
func procCPUTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may contain spaces; fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

const ticksPerSecond = 100

// cpuTicks is, for each CPU of the machine, the ticks it spent busy (anything but
// idle and iowait) and in all, from /proc/stat.
func cpuTicks() (busy, total map[int]int64) {
	busy, total = map[int]int64{}, map[int]int64{}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return busy, total
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var all int64
		for i, v := range f[1:] {
			x, _ := strconv.ParseInt(v, 10, 64)
			if i >= 8 { // guest time is already counted in user
				break
			}
			all += x
			if i != 3 && i != 4 { // idle, iowait
				busy[n] += x
			}
		}
		total[n] = all
	}
	return busy, total
}

// procRSS is a process's resident set in bytes, or -1.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return -1
}

// scrapeMetrics reads the Go runtime gauges Guildhall exposes on /metrics.
func scrapeMetrics(addr string) map[string]float64 {
	out := map[string]float64{}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if strings.HasPrefix(f[0], "guildhall_gateway_resumes_total{") || strings.HasPrefix(f[0], "guildhall_gateway_resume_replays_total{") || strings.HasPrefix(f[0], "guildhall_gateway_identifies_total{") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
			continue
		}
		switch f[0] {
		case "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines",
			"go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes", "guildhall_gateway_sessions",
			"guildhall_gateway_frames_written_total", "guildhall_gateway_socket_writes_total",
			"guildhall_gateway_slow_consumers_total", "guildhall_gateway_gap_fills_total":
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

// sockstatMem is the kernel's TCP buffer memory in bytes (/proc/net/sockstat "mem",
// in pages), for both ends of every loopback connection.
func sockstatMem() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "mem" {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				return n * int64(os.Getpagesize())
			}
		}
	}
	return -1
}

// slabBytes is the kernel's slab memory (sockets, dentries of their files, epoll
// items) from /proc/meminfo.
func slabBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Slab:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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

// alive fails when a server under test has died (other than one the storm killed).
func (r *run) alive() error {
	for _, s := range r.servers {
		if s.cmd.ProcessState != nil && !s.killed {
			return fmt.Errorf("%s exited: see %s", s.Name, s.logPath)
		}
	}
	return nil
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
