// Command guildhall-bench is Guildhall's load generator. It speaks the gateway
// protocol as a real client does (HELLO, IDENTIFY, heartbeats at the interval the
// server asks for, RESUME after a disconnect), holds many sessions across child
// processes bound to different source addresses in 127.0.0.0/8, posts messages over
// REST open-loop on a schedule, and measures send→delivery latency from the
// scheduled send time with an HDR histogram.
//
//	guildhall-bench idle            N identified sessions; memory per idle session
//	guildhall-bench huge-room       one guild, one channel, N members on k gateways, M msg/s
//	guildhall-bench small-rooms     N sessions in guilds of 10, M msg/s spread over them
//	guildhall-bench reconnect-storm huge-room, then one gateway is killed; time until
//	                                every session resumed, and whether any missed a message
//	guildhall-bench overload        huge-room at rising rates (--steps), one window each on
//	                                the same sessions, until delivery falls behind; the knee
//	                                (frames/s at which p99 passes 1 s) and a plot
//	guildhall-bench plot -o out.png results.json…
//
// --target both runs the scenario against Guildhall and then against the
// reference program (bench/reference) in one command, and reports them side by
// side. --ramps 2 connects every session twice, restarting the servers on the same
// data in between, and reports both ramp times.
//
// It starts the servers itself: `guildhall serve` (every role, embedded NATS) and
// k-1 more `guildhall serve --role gateway`, pinned with taskset to the server
// CPUs, while the workers and the poster run on the client CPUs. Everything it does
// is bounded in count and time; it stops by itself and kills what it started.
//
// The coordinator, by file: options.go (the flags), run.go (one run, start to
// teardown), servers.go (the processes under test), seed.go (accounts and
// guilds over REST), fleet.go (the worker processes), scenarios.go and
// overload.go (the load), measure.go (one measured window), report.go (text,
// JSON and plots). A worker: worker.go on wsclient.go, speaking wire.go.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "worker":
		err = runWorker()
	case "idle", "huge-room", "small-rooms", "reconnect-storm", "overload":
		err = runScenario(os.Args[1], os.Args[2:])
	case "plot":
		err = runPlot(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "guildhall-bench: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "guildhall-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  guildhall-bench idle|huge-room|small-rooms|reconnect-storm|overload [flags]   (-h for flags)
  guildhall-bench plot -o latency.png result.json...
`)
}
