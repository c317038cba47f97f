package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The overload sweep: one guild, every session a member, the offered rate raised
// step by step on the same connected sessions (the ramp is paid once), each step
// measured as its own window, until delivery falls behind. The knee is the
// offered frames/s at which p99 passes --knee (1 s).

func (r *run) overload() error {
	o := r.o
	if err := r.idleBaseline(); err != nil {
		return err
	}
	stopPerf := r.startPerf()
	defer stopPerf()
	base := 0
	for i, rate := range o.steps {
		if i > 0 {
			select {
			case <-time.After(o.stepPause):
			case <-r.ctx.Done():
				return r.ctx.Err()
			}
		}
		w, err := r.window(rate, o.stepDuration, base, nil)
		if err != nil {
			return err
		}
		st := stepResult{Step: i + 1, Rate: rate, Duration: o.stepDuration.Seconds(), windowResult: *w}
		for j, c := range w.ServerCPUEach {
			if c > 0 {
				r.res.Servers[j].CPUSeconds += c
			}
		}
		st.Behind, st.Why = r.behind(w)
		r.res.Steps = append(r.res.Steps, st)
		r.res.Knee = knee(r.res.Steps, o.kneeP99)
		if r.save != nil {
			if err := r.save(); err != nil {
				return err
			}
		}
		fmt.Fprint(os.Stderr, stepLine(st))
		r.printClientWarning(w)
		base += roundMessages(rate, o.stepDuration)
		if st.Behind && !o.keepGoing {
			fmt.Fprintf(os.Stderr, "delivery fell behind at %g msg/s (%s): the sweep stops here\n", rate, st.Why)
			break
		}
	}
	return nil
}

func roundMessages(rate float64, d time.Duration) int {
	return int(rate*d.Seconds() + 0.5)
}

// behind says whether a step's delivery fell behind what was offered: not every
// message arrived within the drain, less than 90% of the offered frames/s came
// through, or p99 passed --stop-p99.
func (r *run) behind(w *windowResult) (bool, string) {
	switch {
	case !w.Drained:
		return true, fmt.Sprintf("%d of %d frames not delivered within the %s drain", w.Expected-w.Delivered, w.Expected, r.o.drain)
	case w.FramesPerSec < 0.9*w.OfferedFramesPerSec:
		return true, fmt.Sprintf("%.0f frames/s delivered of %.0f offered", w.FramesPerSec, w.OfferedFramesPerSec)
	case w.Latency != nil && w.Latency.P99 > float64(r.o.stopP99.Milliseconds()):
		return true, fmt.Sprintf("p99 %.0f ms over %s", w.Latency.P99, r.o.stopP99)
	}
	return false, ""
}

// knee finds where p99 first passes threshold, interpolating the offered
// frames/s linearly between the last step under it and the first over it.
func knee(steps []stepResult, threshold time.Duration) *kneeResult {
	th := float64(threshold) / float64(time.Millisecond)
	k := &kneeResult{ThresholdMs: th}
	var prev *stepResult
	for i := range steps {
		s := &steps[i]
		if s.Latency == nil {
			continue
		}
		if s.Latency.P99 > th {
			if prev == nil {
				k.Below = true
				k.FramesPerSec = s.OfferedFramesPerSec
				return k
			}
			p0, p1 := prev.Latency.P99, s.Latency.P99
			x0, x1 := prev.OfferedFramesPerSec, s.OfferedFramesPerSec
			k.FramesPerSec = x0 + (th-p0)/(p1-p0)*(x1-x0)
			k.DeliveredFramesPerSec = prev.FramesPerSec
			return k
		}
		prev = s
	}
	if prev == nil {
		return nil // no step measured latency
	}
	k.Above = true
	k.FramesPerSec = prev.OfferedFramesPerSec
	k.DeliveredFramesPerSec = prev.FramesPerSec
	return k
}

func (k *kneeResult) text() string {
	if k == nil {
		return "no latency measured"
	}
	switch {
	case k.Below:
		return fmt.Sprintf("p99 already over %.0f ms at the first step (%.0f frames/s offered)", k.ThresholdMs, k.FramesPerSec)
	case k.Above:
		return fmt.Sprintf("p99 stayed under %.0f ms up to the last step: knee above %.0f frames/s offered (%.0f delivered)", k.ThresholdMs, k.FramesPerSec, k.DeliveredFramesPerSec)
	}
	return fmt.Sprintf("p99 passes %.0f ms at %.0f frames/s offered (interpolated; the last step under it delivered %.0f frames/s)", k.ThresholdMs, k.FramesPerSec, k.DeliveredFramesPerSec)
}

const stepHeader = "step  msg/s   offered f/s  delivered f/s    p50 ms    p99 ms    max ms   missing  dups   late  srv µs/f  srv f/w  client cpu  busy  f/read  behind\n"

func stepLine(s stepResult) string {
	q := s.Latency
	if q == nil {
		q = &quantile{}
	}
	sat := ""
	if s.ClientSaturated {
		sat = " CLIENT SATURATED"
	}
	why := ""
	if s.Behind {
		why = "yes: " + s.Why
	}
	return fmt.Sprintf("%4d %6g %13.0f %14.0f %9.1f %9.1f %9.1f %9d %5d %6d %9.2f %8.2f %10.0f%% %4.0f%% %7.2f  %s%s\n",
		s.Step, s.Rate, s.OfferedFramesPerSec, s.FramesPerSec, q.P50, q.P99, q.Max, s.Missing, s.Dups, s.Late,
		s.ServerCPUPerFrameUs, s.ServerFramesPerWrite, 100*s.ClientCPUUtil, 100*s.ClientPollerBusy, s.FramesPerRead, why, sat)
}

func (r *result) stepsText() string {
	var b strings.Builder
	b.WriteString(stepHeader)
	for _, s := range r.Steps {
		b.WriteString(stepLine(s))
	}
	fmt.Fprintf(&b, "knee:      %s\n", r.Knee.text())
	fmt.Fprintf(&b, "cpu:       servers idle at %.3f CPU-s/s; srv µs/f is server CPU per delivered frame (gross)\n", r.IdleServerCPUPerSec)
	return b.String()
}

// compareText puts the targets of one run side by side.
func compareText(rs []*result) string {
	var b strings.Builder
	b.WriteString("\n== side by side ==\n")
	for _, r := range rs {
		if r == nil {
			continue
		}
		switch {
		case r.Scenario == "overload":
			fmt.Fprintf(&b, "%-10s knee: %s\n", r.Target, r.Knee.text())
		case r.Latency != nil:
			fmt.Fprintf(&b, "%-10s %.0f of %.0f frames/s; p50 %.1f ms, p99 %.1f ms, max %.1f ms; missing %d; %.2f µs server CPU per frame; ramp %.1f s\n",
				r.Target, r.FramesPerSec, r.OfferedFramesPerSec, r.Latency.P50, r.Latency.P99, r.Latency.Max, r.Missing, r.ServerCPUPerFrameUs, r.RampSeconds)
		default:
			fmt.Fprintf(&b, "%-10s ready in %.1f s\n", r.Target, r.RampSeconds)
		}
	}
	if len(rs) == 2 && rs[0] != nil && rs[1] != nil && rs[0].Scenario == "overload" {
		b.WriteString("offered f/s        " + rs[0].Target + " delivered f/s, p99 ms        " + rs[1].Target + " delivered f/s, p99 ms\n")
		n := max(len(rs[0].Steps), len(rs[1].Steps))
		for i := range n {
			cell := func(r *result) string {
				if i >= len(r.Steps) {
					return fmt.Sprintf("%-34s", "(not run)")
				}
				s := r.Steps[i]
				p99 := 0.0
				if s.Latency != nil {
					p99 = s.Latency.P99
				}
				return fmt.Sprintf("%14.0f %12.1f       ", s.FramesPerSec, p99)
			}
			offered := 0.0
			if i < len(rs[0].Steps) {
				offered = rs[0].Steps[i].OfferedFramesPerSec
			} else {
				offered = rs[1].Steps[i].OfferedFramesPerSec
			}
			fmt.Fprintf(&b, "%11.0f %s %s\n", offered, cell(rs[0]), cell(rs[1]))
		}
	}
	return b.String()
}

// plotSweep draws, for each target, p99 and delivered frames/s against the
// offered frames/s (gnuplot), and writes the data and the script beside the
// image so it can be redrawn elsewhere.
func plotSweep(out string, rs []*result) error {
	base := strings.TrimSuffix(out, filepath.Ext(out))
	var dat strings.Builder
	var p99s, fpss []string
	block := 0
	title := ""
	for _, r := range rs {
		if r == nil || len(r.Steps) == 0 {
			continue
		}
		if title == "" {
			title = fmt.Sprintf("overload sweep: one guild of %d members, %s per step", r.Sessions, time.Duration(r.Steps[0].Duration*float64(time.Second)))
		}
		fmt.Fprintf(&dat, "# %s: offered_frames_per_sec delivered_frames_per_sec p50_ms p99_ms max_ms rate_msg_per_sec\n", r.Target)
		for _, s := range r.Steps {
			q := s.Latency
			if q == nil {
				q = &quantile{}
			}
			fmt.Fprintf(&dat, "%.0f %.0f %.3f %.3f %.3f %g\n", s.OfferedFramesPerSec, s.FramesPerSec, q.P50, q.P99, q.Max, s.Rate)
		}
		dat.WriteString("\n\n")
		name := r.Target
		if r.Knee != nil && !r.Knee.Below && !r.Knee.Above {
			name += fmt.Sprintf(" (knee %.0fk f/s)", r.Knee.FramesPerSec/1000)
		}
		p99s = append(p99s, fmt.Sprintf("%q index %d using 1:4 with linespoints title %q", base+".dat", block, name+" p99"))
		fpss = append(fpss, fmt.Sprintf("%q index %d using 1:2 with linespoints title %q", base+".dat", block, name))
		block++
	}
	if block == 0 {
		return fmt.Errorf("no overload steps to plot")
	}
	if err := os.WriteFile(base+".dat", []byte(dat.String()), 0o644); err != nil {
		return err
	}
	script := fmt.Sprintf(`set terminal pngcairo size 900,900 font "sans,11"
set output %q
set multiplot layout 2,1 title %q
set grid
set key left top
set xlabel "offered frames/s (messages/s × members)"
set format x "%%.0s%%c"
set ylabel "p99 send→delivery (ms)"
set logscale y
plot %s, 1000 with lines dt 2 lc rgb "red" title "knee: p99 1 s"
unset logscale y
set ylabel "delivered frames/s"
set format y "%%.0s%%c"
plot %s, x with lines dt 2 lc rgb "gray" title "all offered"
unset multiplot
`, out, title, strings.Join(p99s, ", "), strings.Join(fpss, ", "))
	return gnuplot(base, script, `pngcairo size 900,900 font "sans,11"`, "png size 900,900", out)
}

// gnuplot writes script to base.gp and runs it; without cairo it falls back to
// the plain png terminal.
func gnuplot(base, script, cairoTerm, plainTerm, out string) error {
	if err := os.WriteFile(base+".gp", []byte(script), 0o644); err != nil {
		return err
	}
	gp, err := exec.LookPath("gnuplot")
	if err != nil {
		return fmt.Errorf("wrote %s.dat and %s.gp; install gnuplot (apt-get install gnuplot-nox) to draw them", base, base)
	}
	cmd := exec.Command(gp, base+".gp")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		alt := strings.Replace(script, cairoTerm, plainTerm, 1)
		if err := os.WriteFile(base+".gp", []byte(alt), 0o644); err != nil {
			return err
		}
		cmd = exec.Command(gp, base+".gp")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "wrote", out)
	return nil
}
