package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	guildhall "github.com/guildhall/guildhall"
)

// report is what a run says: its settings, the fault timeline, availability
// during each fault, latencies, and the checker's verdict.
type report struct {
	Schedule  string
	Users     int
	Rate      float64
	Reactions bool
	Start     time.Time
	// PostingEnded is when the last post was answered; Converged how long after
	// it every session had received the last event of its guilds (-1: never,
	// within the settle time).
	PostingEnded time.Time
	Converged    time.Duration
	Timeline     []faultRecord
	Windows      []window
	Baseline     window
	PostLatency  quantiles // acknowledged posts: request to answer
	Delivery     quantiles // acknowledged posts: request to each session's MESSAGE_CREATE
	Skipped      int       // posts not sent because too many were in flight
	Result       *result
}

// window is the posts sent during a stretch of the run.
type window struct {
	Name               string
	From, To           time.Duration // since the start
	Posts, OK, Unknown int
	Latency            quantiles
}

// Availability is the share of posts that were acknowledged.
func (w window) Availability() float64 {
	if w.Posts == 0 {
		return 1
	}
	return float64(w.OK) / float64(w.Posts)
}

type quantiles struct {
	N                        int64
	P50, P90, P99, P999, Max time.Duration
}

func quantilesOf(h *hdrhistogram.Histogram) quantiles {
	q := func(p float64) time.Duration { return time.Duration(h.ValueAtQuantile(p)) * time.Microsecond }
	return quantiles{N: h.TotalCount(), P50: q(50), P90: q(90), P99: q(99), P999: q(99.9), Max: time.Duration(h.Max()) * time.Microsecond}
}

// recoveryWindow is how long after a fault's end the report watches the
// recovery on its own.
const recoveryWindow = 10 * time.Second

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// measure fills the report's windows and latencies from the run's history.
func (rep *report) measure(h *history) {
	// Each fault has two windows: while it lasts, and the recovery after it
	// (recoveryWindow, or until the next fault).
	type span struct{ from, to time.Time }
	var spans []span
	for i, f := range rep.Timeline {
		end := f.Recovered.Add(recoveryWindow)
		if i+1 < len(rep.Timeline) && rep.Timeline[i+1].Start.Before(end) {
			end = rep.Timeline[i+1].Start
		}
		spans = append(spans, span{f.Start, f.Recovered}, span{f.Recovered, end})
		rep.Windows = append(rep.Windows,
			window{Name: f.Name + " (" + f.Target + ")", From: f.Start.Sub(rep.Start), To: f.Recovered.Sub(rep.Start)},
			window{Name: "  the " + ms(end.Sub(f.Recovered)) + " after it", From: f.Recovered.Sub(rep.Start), To: end.Sub(rep.Start)})
	}
	inFault := func(t time.Time) int {
		for i, s := range spans {
			if !t.Before(s.from) && t.Before(s.to) {
				return i
			}
		}
		return -1
	}
	hists := make([]*hdrhistogram.Histogram, len(spans))
	for i := range hists {
		hists[i] = newHistogram()
	}
	base, all := newHistogram(), newHistogram()
	rep.Baseline.Name = "outside faults"
	sent := map[guildhall.Snowflake]time.Time{}
	for _, p := range h.Posts {
		i := inFault(p.Start)
		w, hist := &rep.Baseline, base
		if i >= 0 {
			w, hist = &rep.Windows[i], hists[i]
		}
		w.Posts++
		switch p.Outcome {
		case outcomeOK:
			w.OK++
			lat := p.End.Sub(p.Start).Microseconds()
			_ = hist.RecordValue(lat)
			_ = all.RecordValue(lat)
			sent[p.ID] = p.Start
		case outcomeUnknown:
			w.Unknown++
		}
	}
	for i := range rep.Windows {
		rep.Windows[i].Latency = quantilesOf(hists[i])
	}
	rep.Baseline.Latency = quantilesOf(base)
	rep.PostLatency = quantilesOf(all)
	delivery := newHistogram()
	for _, s := range h.Sessions {
		for _, e := range s.Epochs {
			for _, d := range e.Received {
				if d.T != guildhall.EventMessageCreate {
					continue
				}
				if t, ok := sent[d.Msg]; ok {
					_ = delivery.RecordValue(d.At.Sub(t).Microseconds())
				}
			}
		}
	}
	rep.Delivery = quantilesOf(delivery)
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	if d < 10*time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func (q quantiles) String() string {
	if q.N == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, p99.9 %s, max %s (%d)", ms(q.P50), ms(q.P90), ms(q.P99), ms(q.P999), ms(q.Max), q.N)
}

// write prints the report as text.
func (rep *report) write(w io.Writer) {
	r := rep.Result
	fmt.Fprintf(w, "guildhall-check: schedule %s, %d users, %.0f posts/s, reactions %v\n", rep.Schedule, rep.Users, rep.Rate, rep.Reactions)
	fmt.Fprintf(w, "\nfault timeline (seconds since the start of posting):\n")
	for _, f := range rep.Timeline {
		errs := ""
		if f.Err != "" {
			errs = "  ERROR " + f.Err
		}
		fmt.Fprintf(w, "  %6.1f–%6.1f (healed at %6.1f)  %s: %s%s\n", f.Start.Sub(rep.Start).Seconds(), f.Recovered.Sub(rep.Start).Seconds(),
			f.Healed.Sub(rep.Start).Seconds(), f.Name, f.Target, errs)
		fmt.Fprintf(w, "                                  before: %s\n", f.Placement)
	}
	fmt.Fprintf(w, "\navailability (posts acknowledged / sent, by when they were sent) and latency of the acknowledged ones:\n")
	for _, win := range append([]window{rep.Baseline}, rep.Windows...) {
		fmt.Fprintf(w, "  %5.1f%%  %4d of %4d (%3d unknown)  %-62s  %s\n", 100*win.Availability(), win.OK, win.Posts, win.Unknown, win.Name, win.Latency)
	}
	fmt.Fprintf(w, "\nposts: %d acknowledged, %d refused, %d unknown (%d of them stored), %d not sent (client saturated)\n",
		r.PostsOK, r.PostsFailed, r.PostsUnknown, r.UnknownStored, rep.Skipped)
	fmt.Fprintf(w, "edits: %d acknowledged, %d refused, %d unknown; reactions: %d acknowledged, %d refused, %d unknown\n",
		r.EditsOK, r.EditsFailed, r.EditsUnknown, r.ReactionsOK, r.ReactionsFailed, r.ReactionsUnknown)
	fmt.Fprintf(w, "post latency (acknowledged): %s\n", rep.PostLatency)
	fmt.Fprintf(w, "delivery (post sent → MESSAGE_CREATE at each session): %s\n", rep.Delivery)
	conv := "never, within the settle time"
	if rep.Converged >= 0 {
		conv = ms(rep.Converged)
	}
	fmt.Fprintf(w, "every session had its guilds' last event %s after the last post was answered\n", conv)
	fmt.Fprintf(w, "stream: %d events of the run; history: %d messages\n", r.StreamEvents, r.Messages)
	fmt.Fprintf(w, "sessions: %d identified sessions, %d connections, %d RESUMED, %d stream events delivered and checked\n",
		r.Epochs, r.Conns, r.Resumed, r.Deliveries)
	var closes []string
	for why, n := range r.Closes {
		closes = append(closes, fmt.Sprintf("%s ×%d", why, n))
	}
	sort.Strings(closes)
	fmt.Fprintf(w, "connections ended: %s\n", strings.Join(closes, ", "))
	if len(r.Violations) == 0 {
		fmt.Fprintf(w, "\nOK: no invariant broken\n")
		return
	}
	fmt.Fprintf(w, "\nFAILED: %d violations\n", len(r.Violations))
	kinds := map[string]int{}
	for _, v := range r.Violations {
		kinds[v.Kind]++
		if kinds[v.Kind] <= 10 {
			fmt.Fprintf(w, "  %s: %s\n", v.Kind, v.Detail)
		} else if kinds[v.Kind] == 11 {
			fmt.Fprintf(w, "  %s: …\n", v.Kind)
		}
	}
	for k, n := range kinds {
		fmt.Fprintf(w, "  %d × %s\n", n, k)
	}
}
