package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child process of the deployment (a NATS node, an api, the
// writer, a gateway): started with fixed arguments, so that after a SIGKILL it
// starts again on the same ports and data; its stderr appended to a log file.
// It is in its own process group and dies with the checker (Pdeathsig).
type process struct {
	name  string
	bin   string
	args  []string
	log   string // file its stderr goes to
	ready string // the stderr line prefix that says it serves

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	stopped bool          // SIGSTOPped
}

// startTimeout bounds one start, until the ready line.
const startTimeout = 2 * time.Minute

// Start starts the process and waits until it says it is ready.
func (p *process) Start(ctx context.Context) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "---- %s start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.Close()
		return err
	}
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			if !once && strings.HasPrefix(line, p.ready) {
				once = true
				close(ready)
			}
		}
		_, _ = io.Copy(f, stderr)
		// Wait only once the pipe is drained (os/exec's rule).
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done, p.stopped = cmd, done, false
	p.mu.Unlock()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("%s exited at start (see %s)", p.name, p.log)
	case <-t.C:
		p.Signal(syscall.SIGKILL)
		return fmt.Errorf("%s not ready after %v (see %s)", p.name, startTimeout, p.log)
	case <-ctx.Done():
		p.Signal(syscall.SIGKILL)
		return ctx.Err()
	}
}

// Signal sends sig to the process's group.
func (p *process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
}

// Kill kills the process with SIGKILL and waits until it is gone.
func (p *process) Kill() {
	p.Signal(syscall.SIGCONT) // a stopped process dies all the same, but say so
	p.Signal(syscall.SIGKILL)
	p.Wait(10 * time.Second)
}

// Stop asks the process to end (SIGTERM) and waits up to grace, then kills it.
func (p *process) Stop(grace time.Duration) {
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGTERM)
	if !p.Wait(grace) {
		p.Kill()
	}
}

// Wait waits up to d for the process to exit, reporting whether it did.
func (p *process) Wait(d time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Running reports whether the process is alive (stopped counts as alive).
func (p *process) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Pid is the process id, 0 when not started.
func (p *process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}
