package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	guildhall "github.com/guildhall/guildhall"
)

// benchIntents are what the bench clients identify with. MESSAGE_CONTENT because
// latency is read from the send time written in each message's content.
const benchIntents = int64(guildhall.IntentGuilds | guildhall.IntentGuildMessages | guildhall.IntentMessageContent)

// A worker is a child process holding up to a few ten thousand sessions from one
// source address: what one process's open-file limit and one address's port range
// allow. It is started by the coordinator (the same binary, re-executed) and talks
// to it over stdin/stdout.

type worker struct {
	cfg   workerConfig
	local *net.TCPAddr
	out   *json.Encoder
	outMu sync.Mutex

	sessions []*client
	dialQ    chan *client
	stopping atomic.Bool
	// pollers read the connections (wsclient.go); session i is on pollers[i%len].
	pollers []*poller
	// base is the first message index of the current window: a message with a
	// lower index was posted in an earlier window and arrives late.
	base atomic.Int64

	hists [16]struct {
		sync.Mutex
		h *hdrhistogram.Histogram
	}

	ready, dialing                       atomic.Int64
	dialErrors, closes, resumed, invalid atomic.Int64
	identified, frames, msgs, disordered atomic.Int64
	late                                 atomic.Int64
	lastMsgAt                            atomic.Int64 // unix ns of the last message counted
	lastErr                              atomic.Value // string

	closeMu    sync.Mutex
	closeCodes map[int]int64 // closes by WebSocket close code (1006: none sent)
}

// client is one gateway session as a real client runs it: HELLO, IDENTIFY,
// heartbeats at the interval the server asked for, RESUME after a disconnect.
type client struct {
	w     *worker
	idx   int
	token string
	gw    int // index into cfg.Gateways of the current or last connection

	mu        sync.Mutex
	conn      *wsConn
	sessionID string
	readyNow  bool
	seq       atomic.Uint64
	interval  atomic.Int64 // heartbeat interval, ns; 0 until HELLO
	nextBeat  atomic.Int64 // unix ns
	seen      []uint64     // bitset of message indexes received (read loop only)
	dups      int64
	// fails counts the session starts refused or cut off in a row; it stretches
	// the pause before the next try, as Discord libraries back off.
	fails atomic.Int32
}

// backoff counts one more failure and returns how long to wait before the next try:
// at least lo, at most hi doubled per failure in a row (capped at a minute), chosen
// at random in between so that refused clients do not come back together.
func (c *client) backoff(lo, hi time.Duration) time.Duration {
	n := min(c.fails.Add(1), 16)
	ceil := min(hi<<(n-1), time.Minute)
	if ceil <= lo {
		return lo
	}
	return lo + rand.N(ceil-lo)
}

func runWorker() error {
	var cfg workerConfig
	raw, err := os.ReadFile(os.Getenv("GHBENCH_WORKER"))
	if err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	w := &worker{cfg: cfg, out: json.NewEncoder(os.Stdout), closeCodes: map[int]int64{}}
	w.lastErr.Store("")
	if cfg.Source != "" {
		w.local = &net.TCPAddr{IP: net.ParseIP(cfg.Source)}
	}
	for i := range w.hists {
		w.hists[i].h = newLatencyHist()
	}
	words := (cfg.MaxMsgs + 63) / 64
	w.sessions = make([]*client, len(cfg.Tokens))
	for i, tok := range cfg.Tokens {
		w.sessions[i] = &client{w: w, idx: i, token: tok, gw: (cfg.FirstGW + i) % len(cfg.Gateways), seen: make([]uint64, words)}
	}
	w.dialQ = make(chan *client, len(w.sessions)+16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One poller per CPU the worker may use (its taskset), each on its own
	// goroutine. One P more than CPUs: with every P busy, the runtime's sysmon
	// takes the P of any system call it sees twice (20 µs) and then keeps waking
	// every 20 µs; an idle P spares the pollers' reads that.
	runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	for range runtime.NumCPU() {
		p, err := newPoller()
		if err != nil {
			return err
		}
		w.pollers = append(w.pollers, p)
		go p.run()
	}
	defer func() {
		for _, p := range w.pollers {
			p.stop()
		}
	}()
	dialers := max(cfg.Dialers, 1)
	for range dialers {
		go w.dialLoop(ctx)
	}
	go w.heartbeats(ctx)
	go w.statusLoop(ctx)
	// Ramp: hand sessions to the dialers at cfg.Ramp per second.
	go func() {
		start := time.Now()
		for i, c := range w.sessions {
			if cfg.Ramp > 0 {
				due := start.Add(time.Duration(float64(i) / cfg.Ramp * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
			if ctx.Err() != nil {
				return
			}
			w.dialQ <- c
		}
	}()

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var cmd command
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			continue
		}
		switch cmd.Cmd {
		case "reset":
			w.reset(cmd.Base)
			w.send(map[string]any{"type": "reset", "id": cfg.ID})
		case "report":
			w.send(w.report(cmd.Expected))
		case "status":
			st := w.status()
			st.Type = "snapshot"
			w.send(st)
		case "stop":
			w.stop()
			w.send(map[string]any{"type": "stopped", "id": cfg.ID})
			return nil
		}
	}
	// The coordinator is gone: stop by ourselves.
	w.stop()
	return nil
}

func (w *worker) send(v any) {
	w.outMu.Lock()
	_ = w.out.Encode(v)
	w.outMu.Unlock()
}

func (w *worker) fail(err error) {
	w.lastErr.Store(err.Error())
}

func (w *worker) status() workerStatus {
	st := workerStatus{
		Type: "status", ID: w.cfg.ID,
		Ready: int(w.ready.Load()), Dialing: int(w.dialing.Load()),
		DialErrors: w.dialErrors.Load(), Closes: w.closes.Load(), Resumed: w.resumed.Load(),
		Invalid: w.invalid.Load(), Identified: w.identified.Load(),
		Frames: w.frames.Load(), Msgs: w.msgs.Load(), Late: w.late.Load(), LastMsgAt: w.lastMsgAt.Load(),
		Pollers:   len(w.pollers),
		LastError: w.lastErr.Load().(string),
	}
	w.closeMu.Lock()
	if len(w.closeCodes) > 0 {
		st.CloseCodes = maps.Clone(w.closeCodes)
	}
	w.closeMu.Unlock()
	for _, p := range w.pollers {
		st.PollWaitNs += p.waitNs.Load()
		st.Reads += p.reads.Load()
		st.ReadBytes += p.rbytes.Load()
	}
	return st
}

func (w *worker) statusLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.send(w.status())
		}
	}
}

// reset starts a measurement window whose messages have indexes from base on:
// latency histograms, frame counters and every session's seen-bitset start over.
func (w *worker) reset(base int) {
	w.base.Store(int64(base))
	for i := range w.hists {
		w.hists[i].Lock()
		w.hists[i].h.Reset()
		w.hists[i].Unlock()
	}
	w.frames.Store(0)
	w.msgs.Store(0)
	w.late.Store(0)
	w.lastMsgAt.Store(0)
	w.disordered.Store(0)
	for _, c := range w.sessions {
		c.mu.Lock()
		clear(c.seen)
		c.dups = 0
		c.mu.Unlock()
	}
}

func (w *worker) report(expected []uint64) workerReport {
	h := newLatencyHist()
	for i := range w.hists {
		w.hists[i].Lock()
		h.Merge(w.hists[i].h)
		w.hists[i].Unlock()
	}
	r := workerReport{Type: "report", ID: w.cfg.ID, Status: w.status(), Latency: h.Export(), Sessions: len(w.sessions), Disordered: w.disordered.Load(), CPUTicks: procCPUTicks(os.Getpid())}
	want := 0
	for _, x := range expected {
		want += bits.OnesCount64(x)
	}
	for _, c := range w.sessions {
		c.mu.Lock()
		got := 0
		for i, x := range c.seen {
			if i < len(expected) {
				got += bits.OnesCount64(x & expected[i])
			}
		}
		r.Dups += c.dups
		c.mu.Unlock()
		if got < want {
			r.Missing += int64(want - got)
			r.Incomplete++
		}
	}
	return r
}

func (w *worker) stop() {
	w.stopping.Store(true)
	for _, c := range w.sessions {
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			conn.shutdown()
		}
	}
}

func (w *worker) dialLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-w.dialQ:
			if w.stopping.Load() {
				continue
			}
			w.dialing.Add(1)
			err := c.connect()
			w.dialing.Add(-1)
			if err != nil {
				w.dialErrors.Add(1)
				w.fail(err)
				// Try the next gateway after a pause, as a client would.
				c.gw = (c.gw + 1) % len(w.cfg.Gateways)
				time.AfterFunc(c.backoff(200*time.Millisecond, time.Second), func() { w.dialQ <- c })
			}
		}
	}
}

func (c *client) connect() error {
	w := c.w
	_, err := dialWS(w.cfg.Gateways[c.gw], w.local, 10*time.Second, w.pollers[c.idx%len(w.pollers)], c)
	if err != nil {
		// onOpen may have run: forget the connection that did not make it.
		c.mu.Lock()
		c.conn = nil
		c.mu.Unlock()
		c.interval.Store(0)
	}
	return err
}

func (c *client) onOpen(conn *wsConn) {
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
}

func (c *client) onClose(conn *wsConn, err error) {
	w := c.w
	c.mu.Lock()
	if c.conn != conn {
		c.mu.Unlock()
		return
	}
	wasReady := c.readyNow
	c.readyNow = false
	c.conn = nil
	c.mu.Unlock()
	c.interval.Store(0)
	if wasReady {
		w.ready.Add(-1)
	}
	if w.stopping.Load() {
		return
	}
	w.closes.Add(1)
	code := 1006 // the connection ended without a close frame
	var ce *closeError
	if errors.As(err, &ce) {
		code = ce.Code
	}
	w.closeMu.Lock()
	w.closeCodes[code]++
	w.closeMu.Unlock()
	if !w.cfg.Reconnect {
		return
	}
	// Reconnect after a short random pause (Discord asks for 1–5 s; a storm wants
	// it short), to the next gateway if this one is gone. A session that was cut
	// off before it got ready backs off further each time.
	pause := time.Duration(rand.IntN(1000)) * time.Millisecond
	if !wasReady {
		pause = c.backoff(0, time.Second)
	}
	time.AfterFunc(pause, func() {
		c.gw = (c.gw + 1) % len(w.cfg.Gateways)
		w.dialQ <- c
	})
}

// onFrame handles one message from the server, on the connection's poller; now
// is when the read that brought it returned (unix ns).
func (c *client) onFrame(conn *wsConn, _ byte, b []byte, now int64) {
	w := c.w
	op, t, s, ok := parseHeader(b)
	if !ok {
		return
	}
	switch op {
	case 0:
		w.frames.Add(1)
		if s != 0 {
			if prev := c.seq.Load(); s < prev {
				w.disordered.Add(1)
			} else {
				c.seq.Store(s)
			}
		}
		switch string(t) {
		case "MESSAGE_CREATE":
			idx, sched, ok := parseMarker(b)
			if !ok {
				return
			}
			if int64(idx) < w.base.Load() {
				w.late.Add(1) // posted in an earlier window
				return
			}
			w.msgs.Add(1)
			w.lastMsgAt.Store(now)
			lat := max((now-sched)/1000, 1)
			hs := &w.hists[c.idx%len(w.hists)]
			hs.Lock()
			_ = hs.h.RecordValue(lat)
			hs.Unlock()
			c.mu.Lock()
			if idx >= 0 && idx/64 < len(c.seen) {
				bit := uint64(1) << (idx % 64)
				if c.seen[idx/64]&bit != 0 {
					c.dups++
				}
				c.seen[idx/64] |= bit
			}
			c.mu.Unlock()
		case "READY":
			var d struct {
				SessionID string `json:"session_id"`
			}
			var p header
			if json.Unmarshal(b, &p) == nil {
				_ = json.Unmarshal(p.D, &d)
			}
			w.identified.Add(1)
			c.markReady(conn, d.SessionID)
		case "RESUMED":
			w.resumed.Add(1)
			c.markReady(conn, "")
		}
	case 10: // HELLO
		var p struct {
			D struct {
				HeartbeatInterval int64 `json:"heartbeat_interval"`
			} `json:"d"`
		}
		_ = json.Unmarshal(b, &p)
		iv := time.Duration(p.D.HeartbeatInterval) * time.Millisecond
		if iv <= 0 {
			iv = 41250 * time.Millisecond
		}
		// Discord's clients send the first heartbeat after interval × jitter.
		c.nextBeat.Store(time.Now().Add(time.Duration(rand.Float64() * float64(iv))).UnixNano())
		c.interval.Store(int64(iv))
		c.mu.Lock()
		sid := c.sessionID
		c.mu.Unlock()
		if sid != "" && w.cfg.Reconnect {
			c.write(conn, map[string]any{"op": 6, "d": map[string]any{"token": c.token, "session_id": sid, "seq": c.seq.Load()}})
		} else {
			c.write(conn, map[string]any{"op": 2, "d": map[string]any{
				"token": c.token, "intents": benchIntents,
				"properties": map[string]string{"os": "linux", "browser": "guildhall-bench", "device": "guildhall-bench"},
			}})
		}
	case 7: // RECONNECT: the server closes next; OnClose resumes.
	case 9: // INVALID_SESSION: identify afresh after 1–5 s, as Discord asks.
		w.invalid.Add(1)
		c.mu.Lock()
		c.sessionID = ""
		c.mu.Unlock()
		c.seq.Store(0)
		time.AfterFunc(c.backoff(time.Second, 5*time.Second), func() {
			c.mu.Lock()
			same := c.conn == conn
			c.mu.Unlock()
			if same && !w.stopping.Load() {
				c.write(conn, map[string]any{"op": 2, "d": map[string]any{"token": c.token, "intents": benchIntents, "properties": map[string]string{"os": "linux"}}})
			}
		})
	}
}

func (c *client) markReady(conn *wsConn, sessionID string) {
	c.mu.Lock()
	if sessionID != "" {
		c.sessionID = sessionID
	}
	was := c.readyNow
	c.readyNow = c.conn == conn
	now := c.readyNow
	c.mu.Unlock()
	if now && !was {
		c.w.ready.Add(1)
		c.fails.Store(0)
	}
}

func (c *client) write(conn *wsConn, v any) {
	b, _ := json.Marshal(v)
	if err := conn.writeText(b); err != nil {
		c.w.fail(err)
	}
}

// heartbeats sends each connected session's heartbeat when it is due, from one
// goroutine for the whole process.
func (w *worker) heartbeats(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := now.UnixNano()
			for _, c := range w.sessions {
				iv := c.interval.Load()
				if iv == 0 || c.nextBeat.Load() > n {
					continue
				}
				c.nextBeat.Store(n + iv)
				c.mu.Lock()
				conn := c.conn
				c.mu.Unlock()
				if conn == nil {
					continue
				}
				var b []byte
				if s := c.seq.Load(); s != 0 {
					b = fmt.Appendf(nil, `{"op":1,"d":%d}`, s)
				} else {
					b = []byte(`{"op":1,"d":null}`)
				}
				if err := conn.writeText(b); err != nil {
					w.fail(err)
				}
			}
		}
	}
}
