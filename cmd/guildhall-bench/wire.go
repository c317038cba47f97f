package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// What the coordinator and its workers say to each other: one JSON object per line,
// commands on the worker's stdin, status and reports on its stdout.

// workerConfig is everything a worker needs, in a JSON file named by GHBENCH_WORKER.
type workerConfig struct {
	ID        int      `json:"id"`
	Source    string   `json:"source"`   // local address to bind, e.g. 127.0.0.2
	Gateways  []string `json:"gateways"` // ws:// URLs; session i starts on Gateways[i%len]
	Tokens    []string `json:"tokens"`
	FirstGW   int      `json:"first_gw"` // offset into Gateways for session 0
	Ramp      float64  `json:"ramp"`     // new connections per second
	Dialers   int      `json:"dialers"`  // connections being set up at once
	MaxMsgs   int      `json:"max_msgs"` // size of each session's seen-bitset
	Reconnect bool     `json:"reconnect"`
}

// command is a line on a worker's stdin.
type command struct {
	Cmd string `json:"cmd"` // "reset", "report", "status" (answered with a snapshot), "stop"
	// Expected, for "report": the message indexes every session must have seen, as
	// a bitset (little-endian uint64 words).
	Expected []uint64 `json:"expected,omitempty"`
	// Base, for "reset": the first message index of the window; messages with
	// lower indexes count as late, not as delivered.
	Base int `json:"base,omitempty"`
}

// workerStatus is sent every quarter second, and as the answer to "status".
type workerStatus struct {
	Type       string `json:"type"` // "status", or "snapshot" when asked
	ID         int    `json:"id"`
	Ready      int    `json:"ready"`
	Dialing    int    `json:"dialing"`
	DialErrors int64  `json:"dial_errors"`
	Closes     int64  `json:"closes"`
	// CloseCodes counts the closes by the server's close code (1006: the
	// connection ended without one).
	CloseCodes map[int]int64 `json:"close_codes,omitempty"`
	Resumed    int64         `json:"resumed"`
	Invalid    int64         `json:"invalid"`
	Identified int64         `json:"identified"`
	Frames     int64         `json:"frames"`
	Msgs       int64         `json:"msgs"`
	// Late counts messages of an earlier window that arrived in this one.
	Late int64 `json:"late"`
	// LastMsgAt is when the last message of this window arrived (unix ns; 0: none).
	LastMsgAt int64 `json:"last_msg_at"`
	// The pollers' totals since the worker started: time blocked waiting for
	// data (a poller that never waits is saturated), reads that returned data,
	// and their bytes.
	Pollers    int    `json:"pollers"`
	PollWaitNs int64  `json:"poll_wait_ns"`
	Reads      int64  `json:"reads"`
	ReadBytes  int64  `json:"read_bytes"`
	LastError  string `json:"last_error,omitempty"`
}

// workerReport answers "report".
type workerReport struct {
	Type     string                 `json:"type"` // "report"
	ID       int                    `json:"id"`
	Status   workerStatus           `json:"status"`
	Latency  *hdrhistogram.Snapshot `json:"latency"`
	Sessions int                    `json:"sessions"`
	// Missing counts (session, expected message) pairs not received; Dups counts
	// messages a session received more than once; Incomplete counts sessions
	// missing at least one.
	Missing    int64 `json:"missing"`
	Dups       int64 `json:"dups"`
	Incomplete int   `json:"incomplete"`
	// Disordered counts dispatches whose s was not above the session's previous s.
	Disordered int64 `json:"disordered"`
	CPUTicks   int64 `json:"cpu_ticks"` // this worker's utime+stime
}

// newLatencyHist records microseconds from 1 µs to 5 minutes with 3 significant digits.
func newLatencyHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
}

// marker is what the poster puts in a message's content: its index and the time it
// was scheduled to be sent, so that latency counts from the schedule and not from
// when the post got out (no coordinated omission).
func marker(idx int, sched time.Time) string {
	return "ghb:" + strconv.Itoa(idx) + ":" + strconv.FormatInt(sched.UnixNano(), 10) + ":"
}

var markerPrefix = []byte("ghb:")

// parseMarker finds a marker in a raw payload.
func parseMarker(b []byte) (idx int, sched int64, ok bool) {
	i := bytes.Index(b, markerPrefix)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(markerPrefix):]
	j := bytes.IndexByte(b, ':')
	if j < 0 {
		return 0, 0, false
	}
	n, ok := digits(b[:j])
	if !ok {
		return 0, 0, false
	}
	b = b[j+1:]
	k := bytes.IndexByte(b, ':')
	if k < 0 {
		return 0, 0, false
	}
	t, ok := digits(b[:k])
	if !ok {
		return 0, 0, false
	}
	return int(n), t, true
}

// digits parses a non-negative decimal int64 without allocating (strconv's
// errors keep their input, so string(b) would escape to the heap).
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// header is the part of a gateway payload the client needs to route it.
type header struct {
	Op int             `json:"op"`
	T  string          `json:"t"`
	S  *uint64         `json:"s"`
	D  json.RawMessage `json:"d"`
}

// parseHeader reads op, t and s. The gateway writes dispatches as
// {"op":0,"t":"T","s":N,"d":…} and the rest as {"op":N,"d":…}; those shapes are
// read without decoding d, anything else goes through encoding/json.
func parseHeader(b []byte) (op int, t []byte, s uint64, ok bool) {
	const disp = `{"op":0,"t":"`
	if bytes.HasPrefix(b, []byte(disp)) {
		rest := b[len(disp):]
		q := bytes.IndexByte(rest, '"')
		if q < 0 {
			goto slow
		}
		t = rest[:q]
		rest = rest[q+1:]
		if !bytes.HasPrefix(rest, []byte(`,"s":`)) {
			goto slow
		}
		rest = rest[5:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			s = s*10 + uint64(rest[n]-'0')
			n++
		}
		return 0, t, s, true
	}
	if bytes.HasPrefix(b, []byte(`{"op":`)) {
		rest := b[6:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			op = op*10 + int(rest[n]-'0')
			n++
		}
		if n > 0 && op != 0 {
			return op, nil, 0, true
		}
	}
slow:
	var h header
	if json.Unmarshal(b, &h) != nil {
		return 0, nil, 0, false
	}
	if h.S != nil {
		s = *h.S
	}
	return h.Op, []byte(h.T), s, true
}
