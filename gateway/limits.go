package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The edges of a connection, as Discord bounds them:
//
//   - a connection that has not sent IDENTIFY or RESUME within IdentifyTimeout
//     of HELLO is closed with 4009 (session timed out); heartbeats do not keep
//     it alive (4003 is for a payload that needs a session before it has one);
//   - a connection may send PayloadLimit payloads per PayloadWindow, every
//     opcode counted, heartbeats included (Discord: 120 per 60 s); the one past
//     it is answered with close 4008;
//   - one client address holds at most MaxConnsPerAddr connections; past it the
//     upgrade is refused with HTTP 429 before any WebSocket exists.

// LimitsConfig bounds connections (see the comment above). Every field's zero
// value is Discord's number or a default; a negative value turns that bound off
// (load tests on loopback, which open 15,000 connections per address).
type LimitsConfig struct {
	// IdentifyTimeout: zero value means 20 s.
	IdentifyTimeout time.Duration
	// PayloadLimit per PayloadWindow: zero values mean 120 per 60 s.
	PayloadLimit  int
	PayloadWindow time.Duration
	// MaxConnsPerAddr is per client address (the request's RemoteAddr: put a
	// proxy that rewrites it in front, if any). Zero value means 1000.
	MaxConnsPerAddr int
}

func (c LimitsConfig) withDefaults() LimitsConfig {
	if c.IdentifyTimeout == 0 {
		c.IdentifyTimeout = 20 * time.Second
	}
	if c.PayloadLimit == 0 {
		c.PayloadLimit = 120
	}
	if c.PayloadWindow == 0 {
		c.PayloadWindow = time.Minute
	}
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = 1000
	}
	return c
}

// connLimits is a connection's share of the limits. The payload counters are
// touched by its read goroutine only.
type connLimits struct {
	addr        string
	windowStart int64 // unix ns of the payload window's first payload
	payloads    int32
	// authing: an IDENTIFY or RESUME is being handled (on the read goroutine),
	// so the identify deadline waits for its outcome.
	authing       atomic.Bool
	identifyTimer atomic.Pointer[time.Timer] // read by the timer's own callback
}

// allowPayload counts one client payload; false when it is past the limit.
func (g *Gateway) allowPayload(s *Session, now time.Time) bool {
	lim := g.cfg.Limits
	if lim.PayloadLimit < 0 {
		return true
	}
	l := &s.lim
	if l.payloads == 0 || now.UnixNano()-l.windowStart >= int64(lim.PayloadWindow) {
		l.windowStart, l.payloads = now.UnixNano(), 0
	}
	l.payloads++
	return int(l.payloads) <= lim.PayloadLimit
}

// armIdentifyDeadline starts the clock of a new connection.
func (g *Gateway) armIdentifyDeadline(s *Session) {
	d := g.cfg.Limits.IdentifyTimeout
	if d < 0 {
		return
	}
	var check func()
	check = func() {
		if s.identified.Load() {
			return
		}
		if s.lim.authing.Load() { // the answer is on its way: wait for it
			if t := s.lim.identifyTimer.Load(); t != nil {
				t.Reset(g.cfg.APITimeout)
			}
			return
		}
		g.metrics.EdgeCloses.WithLabelValues("identify_timeout").Inc()
		s.close(CloseSessionTimedOut, "No IDENTIFY or RESUME in time")
	}
	s.lim.identifyTimer.Store(time.AfterFunc(d, check))
}

// stopIdentifyDeadline releases the timer of a closed connection.
func stopIdentifyDeadline(s *Session) {
	if t := s.lim.identifyTimer.Load(); t != nil {
		t.Stop()
	}
}

// addrConns counts open connections per client address.
type addrConns struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newAddrConns(max int) *addrConns { return &addrConns{max: max, n: map[string]int{}} }

// admit takes a slot for r's address; false when the address is at the cap.
func (a *addrConns) admit(r *http.Request) (string, bool) {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr
	}
	if a.max < 0 {
		return addr, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[addr] >= a.max {
		return addr, false
	}
	a.n[addr]++
	return addr, true
}

// release gives a slot back.
func (a *addrConns) release(addr string) {
	if a.max < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[addr] <= 1 {
		delete(a.n, addr)
		return
	}
	a.n[addr]--
}

// refuseAddr answers an upgrade from an address at its cap.
func refuseAddr(w http.ResponseWriter, max int) {
	b, _ := json.Marshal(map[string]any{"code": 0, "message": "Too many connections from this address (" + strconv.Itoa(max) + ")"})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(b)
}

// restartIdentifyDeadline gives a connection a whole IdentifyTimeout again: the
// gateway shed its IDENTIFY (INVALID_SESSION, try again in 1–5 s), so the wait
// is the server's.
func (g *Gateway) restartIdentifyDeadline(s *Session) {
	if t := s.lim.identifyTimer.Load(); t != nil && g.cfg.Limits.IdentifyTimeout >= 0 {
		t.Reset(g.cfg.Limits.IdentifyTimeout)
	}
}
