package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/lxzan/gws"
)

// payload is one gateway payload as a client receives it.
type payload struct {
	Op int             `json:"op"`
	T  string          `json:"t"`
	S  *uint64         `json:"s"`
	D  json.RawMessage `json:"d"`
}

// session is one client of the gateway, as a Discord client behaves: it
// identifies, heartbeats at the interval HELLO gives (a beat without an ACK
// before the next one means a dead connection), and when its connection ends
// it resumes with the last s it saw, on the next gateway of its list; after
// INVALID_SESSION it identifies again. It records every dispatch it receives,
// in order, per identified session (epoch).
type session struct {
	index    int
	user     *user
	gateways []string // WebSocket URLs, tried in turn
	logf     func(string, ...any)

	mu      sync.Mutex
	epochs  []*epoch
	closes  map[string]int // why connections ended: close codes, errors
	lastSeq uint64
	id      string // session_id of the current epoch, "" before READY
	ready   bool   // the current connection has READY or RESUMED
	conns   int
}

// epoch is one identified session: READY, then every dispatch it received across
// its connections, until INVALID_SESSION (or another end of the session) or the
// end of the run.
type epoch struct {
	SessionID string
	Start     uint64     // READY's s: the cut it joined its guilds at
	Received  []delivery // dispatches with an s, in the order received
	Conns     int        // connections that carried it
	Resumed   int        // RESUMED received
	Ended     string     // why it ended; "" if it was live at the end of the run
}

// delivery is one dispatch a session received.
type delivery struct {
	T   string
	Seq uint64
	// Msg is the message the dispatch is about (MESSAGE_*: id; reactions:
	// message_id), and What tells its events apart (a message's content; a
	// reaction's user and emoji); zero for others.
	Msg  guildhall.Snowflake
	What string
	At   time.Time
}

// Dispatches that are never in the stream and that the checker does not keep.
var ephemeral = map[string]bool{
	guildhall.EventTypingStart: true, guildhall.EventPresenceUpdate: true, guildhall.EventGuildMembersChunk: true,
}

// conn is one WebSocket connection of a session.
type conn struct {
	gws.BuiltinEventHandler
	in     chan payload
	closed chan struct{}
	once   sync.Once
	why    atomic.Value // string
	c      *gws.Conn
}

func (c *conn) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var p payload
	if err := json.Unmarshal(m.Bytes(), &p); err != nil {
		p = payload{Op: -1}
	}
	select {
	case c.in <- p:
	default:
		// The session's loop is far behind: drop the connection rather than a
		// payload, as a client whose buffer overflows would.
		c.end("client buffer full")
		_ = c.c.NetConn().Close()
	}
}

func (c *conn) OnClose(_ *gws.Conn, err error) {
	why := "closed"
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		why = "close " + strconv.Itoa(int(ce.Code))
	} else if err != nil {
		why = "connection lost"
	}
	c.end(why)
}

func (c *conn) end(why string) {
	c.once.Do(func() {
		c.why.Store(why)
		close(c.closed)
	})
}

func (c *conn) send(op int, d any) error {
	b, err := json.Marshal(map[string]any{"op": op, "d": d})
	if err != nil {
		return err
	}
	return c.c.WriteMessage(gws.OpcodeText, b)
}

// run connects and reconnects until ctx ends.
func (s *session) run(ctx context.Context) {
	next := s.index
	for ctx.Err() == nil {
		url := s.gateways[next%len(s.gateways)]
		next++
		why := s.connect(ctx, url)
		s.mu.Lock()
		s.closes[why]++
		s.ready = false
		s.mu.Unlock()
		if why == "close 4004" {
			s.logf("session %d: authentication failed; it stops", s.index)
			return
		}
		// A real client waits a little before reconnecting.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100+rand.IntN(900)) * time.Millisecond):
		}
	}
}

// connect runs one connection to its end and says why it ended.
func (s *session) connect(ctx context.Context, url string) string {
	c := &conn{in: make(chan payload, 1<<14), closed: make(chan struct{})}
	gc, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, ReadMaxPayloadSize: 16 << 20, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		return "dial failed"
	}
	c.c = gc
	go gc.ReadLoop()
	defer gc.NetConn().Close()

	wait := func(d time.Duration) (payload, string) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case p := <-c.in:
			return p, ""
		case <-c.closed:
			return payload{}, c.why.Load().(string)
		case <-t.C:
			return payload{}, "timeout"
		case <-ctx.Done():
			return payload{}, "end of run"
		}
	}
	hello, why := wait(10 * time.Second)
	if why != "" || hello.Op != 10 {
		return "no hello: " + why
	}
	var h struct {
		HeartbeatInterval int64 `json:"heartbeat_interval"`
	}
	_ = json.Unmarshal(hello.D, &h)
	interval := time.Duration(h.HeartbeatInterval) * time.Millisecond
	if interval <= 0 {
		interval = 41250 * time.Millisecond
	}

	s.mu.Lock()
	s.conns++
	resume, id, seq := s.id != "", s.id, s.lastSeq
	if resume {
		s.epochs[len(s.epochs)-1].Conns++
	}
	s.mu.Unlock()
	if resume {
		err = c.send(6, map[string]any{"token": s.user.token, "session_id": id, "seq": seq})
	} else {
		err = c.send(2, map[string]any{"token": s.user.token, "intents": int64(guildhall.IntentsAll),
			"properties": map[string]string{"os": "linux", "browser": "guildhall-check", "device": "guildhall-check"}})
	}
	if err != nil {
		return "send failed"
	}

	// Heartbeats: the first after a random part of the interval, as Discord
	// asks; a beat not acknowledged by the next one means a dead connection.
	var acked atomic.Bool
	acked.Store(true)
	beat := func() {
		s.mu.Lock()
		var d any
		if s.lastSeq > 0 {
			d = s.lastSeq
		}
		s.mu.Unlock()
		_ = c.send(1, d)
	}
	hbDone := make(chan struct{})
	defer close(hbDone)
	go func() {
		t := time.NewTimer(time.Duration(rand.Float64() * float64(interval)))
		defer t.Stop()
		for {
			select {
			case <-hbDone:
				return
			case <-t.C:
			}
			if !acked.Swap(false) {
				c.end("zombie: heartbeat not acknowledged")
				_ = gc.NetConn().Close()
				return
			}
			beat()
			t.Reset(interval)
		}
	}()

	for {
		p, why := wait(time.Hour)
		if why != "" {
			if why == "end of run" {
				_ = gc.WriteClose(1000, nil)
			}
			return why
		}
		switch p.Op {
		case 0:
			s.dispatch(p)
		case 11:
			acked.Store(true)
		case 1:
			beat()
		case 7: // RECONNECT: resume at once
			_ = gc.WriteClose(4000, nil)
			return "reconnect (op 7)"
		case 9: // INVALID_SESSION
			var resumable bool
			_ = json.Unmarshal(p.D, &resumable)
			if !resumable {
				s.invalidate("invalid session")
			}
			_ = gc.WriteClose(4000, nil)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(1000+rand.IntN(4000)) * time.Millisecond):
			}
			return "invalid session"
		}
	}
}

// dispatch records one op 0 payload.
func (s *session) dispatch(p payload) {
	if ephemeral[p.T] {
		return
	}
	var seq uint64
	if p.S != nil {
		seq = *p.S
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p.T {
	case guildhall.EventReady:
		var r struct {
			SessionID string `json:"session_id"`
		}
		_ = json.Unmarshal(p.D, &r)
		s.id, s.ready, s.lastSeq = r.SessionID, true, seq
		s.epochs = append(s.epochs, &epoch{SessionID: r.SessionID, Start: seq, Conns: 1})
		return
	case guildhall.EventResumed:
		s.ready = true
		if len(s.epochs) > 0 {
			s.epochs[len(s.epochs)-1].Resumed++
		}
		return
	}
	if len(s.epochs) == 0 {
		return // nothing before READY
	}
	e := s.epochs[len(s.epochs)-1]
	msg, what := messageOf(p.T, p.D)
	e.Received = append(e.Received, delivery{T: p.T, Seq: seq, Msg: msg, What: what, At: time.Now()})
	s.lastSeq = max(s.lastSeq, seq)
}

// invalidate ends the current epoch: the next connection identifies.
func (s *session) invalidate(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.epochs) > 0 && s.id != "" {
		s.epochs[len(s.epochs)-1].Ended = why
	}
	s.id, s.lastSeq = "", 0
}

// messageOf is the message a dispatch is about, and what tells the message's
// events apart (see delivery).
func messageOf(t string, d json.RawMessage) (guildhall.Snowflake, string) {
	var m struct {
		ID        guildhall.Snowflake `json:"id"`
		MessageID guildhall.Snowflake `json:"message_id"`
		UserID    guildhall.Snowflake `json:"user_id"`
		Content   string              `json:"content"`
		Emoji     struct {
			Name string `json:"name"`
		} `json:"emoji"`
	}
	switch t {
	case guildhall.EventMessageCreate, guildhall.EventMessageUpdate, guildhall.EventMessageDelete:
		_ = json.Unmarshal(d, &m)
		return m.ID, m.Content
	case eventReactionAdd, eventReactionRemove:
		_ = json.Unmarshal(d, &m)
		return m.MessageID, reactionWhat(m.UserID, m.Emoji.Name)
	}
	return 0, ""
}

func reactionWhat(user guildhall.Snowflake, emoji string) string { return user.String() + " " + emoji }

// Discord's reaction events (the root package has them once reactions exist).
const (
	eventReactionAdd    = "MESSAGE_REACTION_ADD"
	eventReactionRemove = "MESSAGE_REACTION_REMOVE"
)

// position returns the session's last s and whether its connection is ready.
func (s *session) position() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq, s.ready
}

// log returns what the session recorded.
func (s *session) log() sessionLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := sessionLog{Index: s.index, User: s.user.id, Conns: s.conns, Closes: map[string]int{}}
	for k, v := range s.closes {
		l.Closes[k] = v
	}
	for _, e := range s.epochs {
		c := *e
		c.Received = append([]delivery(nil), e.Received...)
		l.Epochs = append(l.Epochs, c)
	}
	return l
}
