package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// The client fleet as the coordinator sees it: the worker processes it starts
// (worker.go is a worker itself), the commands it sends them and the status
// they report, summed.

type workerProc struct {
	id      int
	n       int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	status  workerStatus
	replies chan json.RawMessage
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
