package main

import (
	"strings"
	"testing"
	"time"
)

func step(offered, delivered, p99 float64) stepResult {
	s := stepResult{}
	s.OfferedFramesPerSec, s.FramesPerSec = offered, delivered
	s.Latency = &quantile{P99: p99}
	return s
}

func TestKnee(t *testing.T) {
	tests := []struct {
		name   string
		steps  []stepResult
		fps    float64
		below  bool
		above  bool
		deliv  float64
		absent bool
	}{
		{"interpolated", []stepResult{step(10000, 10000, 150), step(100000, 99000, 600), step(200000, 106000, 13000)}, 100000 + (400.0/12400.0)*100000, false, false, 99000, false},
		{"a step exactly at the threshold is the knee", []stepResult{step(10000, 10000, 1000), step(20000, 15000, 3000)}, 10000, false, false, 10000, false},
		{"over at once", []stepResult{step(10000, 8000, 2000)}, 10000, true, false, 0, false},
		{"never over", []stepResult{step(10000, 10000, 100), step(50000, 49000, 300)}, 50000, false, true, 49000, false},
		{"no latency", []stepResult{{}}, 0, false, false, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := knee(tc.steps, time.Second)
			if tc.absent {
				if k != nil {
					t.Fatalf("knee = %+v; want none", k)
				}
				return
			}
			if k == nil {
				t.Fatal("knee = nil")
			}
			if d := k.FramesPerSec - tc.fps; d > 0.5 || d < -0.5 || k.Below != tc.below || k.Above != tc.above || k.DeliveredFramesPerSec != tc.deliv {
				t.Fatalf("knee = %+v; want %.1f frames/s, below %v, above %v, delivered %.0f", k, tc.fps, tc.below, tc.above, tc.deliv)
			}
		})
	}
}

func TestBehind(t *testing.T) {
	r := &run{o: options{drain: 30 * time.Second, stopP99: 5 * time.Second}}
	ok := windowResult{Drained: true, Expected: 100, Delivered: 100, OfferedFramesPerSec: 1000, FramesPerSec: 990, Latency: &quantile{P99: 300}}
	if b, why := r.behind(&ok); b {
		t.Fatalf("behind(%+v) = true (%s); want false", ok, why)
	}
	undrained := ok
	undrained.Drained, undrained.Delivered = false, 90
	slow := ok
	slow.FramesPerSec = 800
	late := ok
	late.Latency = &quantile{P99: 6000}
	for name, w := range map[string]windowResult{"not drained": undrained, "slow": slow, "p99": late} {
		if b, why := r.behind(&w); !b || why == "" {
			t.Errorf("%s: behind = %v, %q; want true with a reason", name, b, why)
		}
	}
}

func TestParseOptionsOverload(t *testing.T) {
	o, err := parseOptions("overload", []string{"--steps", "1, 5,10", "--step-duration", "10s", "--target", "both", "--client-cpus", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.steps) != 3 || o.steps[1] != 5 || o.rate != 10 || o.duration != 10*time.Second || o.clientCores != 1 {
		t.Fatalf("options = steps %v rate %v duration %v cores %d", o.steps, o.rate, o.duration, o.clientCores)
	}
	ref := o.forTarget("reference")
	if ref.gateways != 1 || ref.target != "reference" || !strings.Contains(ref.data, "reference") {
		t.Fatalf("reference options: gateways %d target %s data %s", ref.gateways, ref.target, ref.data)
	}
	withData, _ := parseOptions("overload", []string{"--target", "both", "--data", "/tmp/x/"})
	if g, r := withData.forTarget("guildhall").data, withData.forTarget("reference").data; g != "/tmp/x/" || r != "/tmp/x-reference" {
		t.Fatalf("data folders %q and %q; want /tmp/x/ and /tmp/x-reference", g, r)
	}
	for _, bad := range [][]string{
		{"--steps", "1,x"}, {"--steps", "0"}, {"--steps", "-3"}, {"--step-duration", "0s"},
		{"--ramps", "0"}, {"--ref-mode", "batch"}, {"--target", "centrifugo"},
	} {
		if _, err := parseOptions("overload", bad); err == nil {
			t.Errorf("parseOptions(%q) accepted", bad)
		}
	}
	if _, err := parseOptions("small-rooms", []string{"--target", "both"}); err == nil {
		t.Error("small-rooms --target both accepted")
	}
}

func TestParseMarker(t *testing.T) {
	sched := time.Unix(1_790_000_000, 123456789)
	b := []byte(`{"op":0,"t":"MESSAGE_CREATE","s":9,"d":{"content":"` + marker(4711, sched) + ` the quick brown fox"}}`)
	idx, ns, ok := parseMarker(b)
	if !ok || idx != 4711 || ns != sched.UnixNano() {
		t.Fatalf("parseMarker = %d, %d, %v; want 4711, %d, true", idx, ns, ok, sched.UnixNano())
	}
	for _, bad := range []string{`"ghb:12"`, `"ghb:x:1:"`, `"ghb:1:99999999999999999999:"`, `no marker`} {
		if _, _, ok := parseMarker([]byte(bad)); ok {
			t.Errorf("parseMarker(%s) = ok", bad)
		}
	}
}
