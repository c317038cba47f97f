package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	"github.com/lxzan/gws"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a gateway. Zero values are usable defaults.
type Config struct {
	// Node names this gateway in the session registry; zero value means a random name.
	Node string
	// PublicURL is the WebSocket URL clients are told to resume at
	// (resume_gateway_url). Zero value means ws://<the Host the client used>/.
	PublicURL string
	// HeartbeatInterval is sent in HELLO; a connection silent for an interval plus
	// HeartbeatGrace is closed as a zombie. Zero value means 41.25 s (Discord's).
	HeartbeatInterval time.Duration
	// HeartbeatGrace: zero value means 10 s.
	HeartbeatGrace time.Duration
	// MaxOutbox bounds the frames queued for one session; a session that falls this
	// far behind is cut off (close 4000, resumable). Zero value means 1024.
	MaxOutbox int
	// WriteTimeout bounds one socket write; zero value means 10 s.
	WriteTimeout time.Duration
	// NoDirectWrites makes every frame go through the session's writer
	// goroutine, as if the socket were always busy. Zero value means a frame
	// for a session with nothing pending is written at once by whoever sends
	// it (the hub's pump, on the fan-out path); for comparing the two in
	// benchmarks.
	NoDirectWrites bool
	// Inbox bounds the events waiting for the pump; beyond it NATS drops them for
	// this gateway and the pump refills the gap from the stream. Zero value means
	// 65536.
	Inbox int
	// APITimeout bounds a request to the api; zero value means 5 s.
	APITimeout time.Duration
	// MaxReplays bounds the resumes replaying the stream at once on this gateway
	// (each holds a JetStream consumer while it runs); others wait their turn.
	// Zero value means 32.
	MaxReplays int
	// StartLimits bound IDENTIFY per user across every gateway (resumes are free).
	// Zero value means Discord's: 1000 per day, max_concurrency 1 per 5 s.
	StartLimits registry.StartLimits
	// MaxIdentifies bounds the identifies in progress on this gateway (each is an
	// api request and several KV round trips), so that a burst queues here instead
	// of overloading the api and the KV for everybody. An identify that finds no
	// slot within IdentifyWait is answered INVALID_SESSION (d=false), Discord's
	// "try again in 1–5 s". Zero value means 64.
	MaxIdentifies int
	// IdentifyWait: zero value means 1 s.
	IdentifyWait time.Duration
}

func (c Config) withDefaults() Config {
	if c.Node == "" {
		c.Node = "gw-" + randomHex(4)
	}
	// The node name is a subject token (its tick subject).
	c.Node = strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, c.Node)
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 41250 * time.Millisecond
	}
	if c.HeartbeatGrace == 0 {
		c.HeartbeatGrace = 10 * time.Second
	}
	if c.MaxOutbox == 0 {
		c.MaxOutbox = 1024
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Inbox == 0 {
		c.Inbox = 65536
	}
	if c.APITimeout == 0 {
		c.APITimeout = 5 * time.Second
	}
	if c.MaxReplays == 0 {
		c.MaxReplays = 32
	}
	if c.MaxIdentifies == 0 {
		c.MaxIdentifies = 64
	}
	if c.IdentifyWait == 0 {
		c.IdentifyWait = time.Second
	}
	return c
}

// Gateway serves Discord's gateway protocol on WebSocket connections.
type Gateway struct {
	cfg      Config
	hub      *Hub
	api      apiClient
	registry *registry.Registry
	limiter  *registry.StartLimiter
	stream   jetstream.Stream
	upgrader *gws.Upgrader
	cancel   context.CancelFunc
	done     chan struct{}

	replays    chan struct{} // a slot per replay running (Config.MaxReplays)
	identifies chan struct{} // a slot per identify running (Config.MaxIdentifies)
	// limiterDownUntil (unix ns): after the start limiter failed, identifies skip
	// it until then. It fails open anyway; sparing its KV the calls lets it recover.
	limiterDownUntil atomic.Int64

	stateMu sync.Mutex // guards state, stateAt: the stream's state cached for resumes
	state   jetstream.StreamState
	stateAt time.Time

	mu       sync.Mutex
	sessions map[string]*Session // identified sessions by id
	conns    map[*Session]struct{}
}

// New starts a gateway on a NATS connection. The topology must have been applied.
func New(ctx context.Context, nc *natsgo.Conn, js jetstream.JetStream, cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	stream, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("gateway: stream: %w", err)
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	lim, err := registry.NewStartLimiter(ctx, js, cfg.StartLimits)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:        cfg,
		api:        apiClient{nc: nc},
		registry:   reg,
		limiter:    lim,
		replays:    make(chan struct{}, cfg.MaxReplays),
		identifies: make(chan struct{}, cfg.MaxIdentifies),
		stream:     stream,
		done:       make(chan struct{}),
		sessions:   map[string]*Session{},
		conns:      map[*Session]struct{}{},
	}
	g.hub, err = newHub(g, nc, js, stream, cfg.Node, cfg.Inbox)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.upgrader = gws.NewUpgrader(&handler{g: g}, &gws.ServerOption{
		// Discord's limit is 4096 bytes and the answer to more is close 4002, which
		// OnMessage sends; gws only enforces this hard bound on top.
		ReadMaxPayloadSize: 16 << 10,
		ReadBufferSize:     1024, // per connection for its whole life: idle sessions dominate
		CheckUtf8Enabled:   true,
		HandshakeTimeout:   10 * time.Second,
	})
	prev := nc.Opts.ReconnectedCB
	nc.SetReconnectHandler(func(c *natsgo.Conn) {
		if prev != nil {
			prev(c)
		}
		g.hub.reconnected()
	})
	rctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { defer close(g.done); g.hub.run(rctx) }()
	go g.refreshRegistry(rctx)
	if _, err := nc.Subscribe(kickSubject(cfg.Node), g.kicked); err != nil {
		cancel()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return g, nil
}

// Close asks every session to reconnect elsewhere (op 7), spread over drain, then
// closes what is left and stops. Their sessions stay in the registry and resume on
// another gateway.
func (g *Gateway) Close(ctx context.Context, drain time.Duration) {
	g.mu.Lock()
	all := make([]*Session, 0, len(g.conns))
	for s := range g.conns {
		all = append(all, s)
	}
	g.mu.Unlock()
	var step time.Duration
	if len(all) > 0 {
		step = drain / time.Duration(len(all))
	}
	reconnect := opFrame(OpReconnect, []byte("null"))
	for _, s := range all {
		s.resumable.Store(true)
		s.send(reconnect)
		s.close(CloseUnknownError, "gateway draining: reconnect and resume")
		if step > 0 {
			select {
			case <-time.After(step):
			case <-ctx.Done():
			}
		}
	}
	g.cancel()
	<-g.done
	p := &g.hub.presence
	p.once.Do(func() {}) // waits for a start in progress; none begins after this
	if p.trackerDone != nil {
		select {
		case <-p.trackerDone: // the goodbye is sent: this node's users are offline now
		case <-ctx.Done():
		}
	}
}

// ServeHTTP upgrades a request to a gateway connection.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	conn, err := g.upgrader.Upgrade(w, r)
	if err != nil {
		return
	}
	s := newSession(g, conn, conn.NetConn(), q.Get("compress") == "zlib-stream")
	s.resumeURL = g.cfg.PublicURL
	if s.resumeURL == "" {
		s.resumeURL = "ws://" + r.Host
	}
	conn.Session().Store("s", s)
	switch v := q.Get("v"); v {
	case "", "9", "10":
	default:
		s.badVersion = true
	}
	if e := q.Get("encoding"); e != "" && e != "json" {
		s.badEncoding = true
	}
	go conn.ReadLoop()
}

type handler struct {
	gws.BuiltinEventHandler
	g *Gateway
}

func sessionOf(c *gws.Conn) *Session {
	v, _ := c.Session().Load("s")
	s, _ := v.(*Session)
	return s
}

func (h *handler) OnOpen(c *gws.Conn) {
	s := sessionOf(c)
	metricSessions.Inc()
	h.g.mu.Lock()
	h.g.conns[s] = struct{}{}
	h.g.mu.Unlock()
	if s.badVersion {
		s.close(CloseInvalidAPIVersion, "Invalid API version")
		return
	}
	if s.badEncoding {
		s.close(CloseDecodeError, "Invalid encoding: only json is supported")
		return
	}
	d, _ := json.Marshal(helloData{HeartbeatInterval: h.g.cfg.HeartbeatInterval.Milliseconds()})
	s.send(opFrame(OpHello, d))
	_ = c.SetReadDeadline(time.Now().Add(h.g.cfg.HeartbeatInterval + h.g.cfg.HeartbeatGrace))
}

func (h *handler) OnPing(c *gws.Conn, payload []byte) { sessionOf(c).send(pongFrame(payload)) }

func (h *handler) OnClose(c *gws.Conn, err error) {
	s := sessionOf(c)
	metricSessions.Dec()
	g := h.g
	g.mu.Lock()
	delete(g.conns, s)
	if s.id != "" && g.sessions[s.id] == s {
		delete(g.sessions, s.id)
	}
	g.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue, s.held = nil, nil
	s.mu.Unlock()
	if s.identified.Load() {
		g.hub.do(func() { g.hub.leave(s) })
		g.sessionEnded(s)
		// A client that closes with 1000 or 1001 ends its session, as on Discord.
		var ce *gws.CloseError
		if errors.As(err, &ce) && (ce.Code == 1000 || ce.Code == 1001) && !s.resumable.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
			_ = g.registry.Delete(ctx, s.id)
			cancel()
		}
	}
}

func (h *handler) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	s := sessionOf(c)
	g := h.g
	b := msg.Bytes()
	if len(b) > MaxClientPayload {
		s.close(CloseDecodeError, "Payload too large")
		return
	}
	var f clientFrame
	if msg.Opcode != gws.OpcodeText || json.Unmarshal(b, &f) != nil || f.Op == nil {
		s.close(CloseDecodeError, "Error while decoding payload")
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(g.cfg.HeartbeatInterval + g.cfg.HeartbeatGrace))
	switch *f.Op {
	case OpHeartbeat:
		s.send(heartbeatACK)
	case OpIdentify:
		if s.identified.Load() {
			s.close(CloseAlreadyAuthenticated, "You sent more than one identify payload")
			return
		}
		g.identify(s, f.D)
	case OpResume:
		if s.identified.Load() {
			s.close(CloseAlreadyAuthenticated, "Already authenticated")
			return
		}
		g.resume(s, f.D)
	case OpPresenceUpdate, OpVoiceStateUpdate, OpRequestGuildMembers:
		if !s.identified.Load() {
			s.close(CloseNotAuthenticated, "Not authenticated")
			return
		}
		switch *f.Op {
		case OpPresenceUpdate:
			g.presenceUpdate(s, f.D)
		case OpRequestGuildMembers:
			g.requestGuildMembers(s, f.D)
		}
	default:
		s.close(CloseUnknownOpcode, "Unknown opcode")
	}
}

func (g *Gateway) identify(s *Session, raw json.RawMessage) {
	var d identifyData
	if json.Unmarshal(raw, &d) != nil {
		s.close(CloseDecodeError, "Error while decoding payload")
		return
	}
	intents, ok := identifyIntents(d.Intents)
	if !ok {
		metricIdentifies.WithLabelValues("invalid_intents").Inc()
		s.close(CloseInvalidIntents, "Invalid intent(s)")
		return
	}
	if d.Token == "" {
		metricIdentifies.WithLabelValues("auth_failed").Inc()
		s.close(CloseAuthenticationFailed, "Authentication failed")
		return
	}
	if !g.identifySlot() {
		// Shed, keeping the connection: the client identifies again in 1–5 s.
		metricIdentifies.WithLabelValues("shed").Inc()
		s.send(opFrame(OpInvalidSession, []byte("false")))
		return
	}
	defer func() { <-g.identifies }()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
	defer cancel()
	rep, err := g.api.identify(ctx, d.Token)
	if err != nil {
		metricIdentifies.WithLabelValues("api_error").Inc()
		slog.Warn("identify: api", "err", err)
		s.close(CloseUnknownError, "Try again")
		return
	}
	if rep.Error != nil {
		if !authFailed(rep.Error) {
			metricIdentifies.WithLabelValues("api_error").Inc()
			s.close(CloseUnknownError, "Try again")
			return
		}
		metricIdentifies.WithLabelValues("auth_failed").Inc()
		s.close(CloseAuthenticationFailed, "Authentication failed")
		return
	}
	shard := -1
	if len(d.Shard) == 2 {
		shard = d.Shard[0]
	}
	if !g.allowStart(s, rep.User.ID, shard) {
		return
	}
	s.user = rep.User
	s.id = randomHex(16)
	s.intents = intents
	s.payloadZlib.Store(d.Compress && !s.zlib)
	// The registry entry exists before READY: a client that got a session id can
	// always resume it, even if this gateway dies the next moment.
	if err := g.putRegistry(s); err != nil {
		metricIdentifies.WithLabelValues("api_error").Inc()
		s.close(CloseUnknownError, "Try again")
		return
	}
	cctx, ccancel := g.opContext()
	defer ccancel()
	ok = g.joinAtCut(cctx, s, rep, func(w uint64, rooms []*room) {
		s.send(dispatchFrame(guildhall.EventReady, w, readyPayload(s, rep, d.Shard)))
		if s.intents&guildhall.IntentGuilds == 0 {
			return // READY lists the guilds; their GUILD_CREATEs need GUILDS
		}
		for i, r := range rooms {
			gd, _ := json.Marshal(g.guildCreate(r, rep.Members[i]))
			s.send(dispatchFrame(guildhall.EventGuildCreate, w, gd))
		}
	})
	if !ok {
		metricIdentifies.WithLabelValues("api_error").Inc()
		return
	}
	s.identified.Store(true)
	g.mu.Lock()
	g.sessions[s.id] = s
	g.mu.Unlock()
	metricIdentifies.WithLabelValues("ok").Inc()
	g.sessionStarted(s, d.Presence)
}

// allowStart asks the start limiter; false when it refused (the session is closed
// with 4008). The limiter protects the tier; when its KV is too slow to answer,
// refusing would make every client retry at once and feed the storm it guards
// against, so the identify goes through uncounted, and the next ones for
// limiterTimeout do not ask.
func (g *Gateway) allowStart(s *Session, user guildhall.Snowflake, shard int) bool {
	if time.Now().UnixNano() < g.limiterDownUntil.Load() {
		metricIdentifies.WithLabelValues("limiter_skipped").Inc()
		return true
	}
	// Waiting long for a limiter that fails open only holds an identify slot.
	ctx, cancel := context.WithTimeout(context.Background(), min(g.cfg.APITimeout, limiterTimeout))
	defer cancel()
	err := g.limiter.Allow(ctx, user, shard)
	var limited *registry.ErrStartLimited
	switch {
	case err == nil:
		return true
	case errors.As(err, &limited):
		metricIdentifies.WithLabelValues("rate_limited").Inc()
		s.close(CloseRateLimited, fmt.Sprintf("Session start limit: retry after %.1fs", limited.RetryAfter.Seconds()))
		return false
	}
	g.limiterDownUntil.Store(time.Now().Add(limiterTimeout).UnixNano())
	metricIdentifies.WithLabelValues("limiter_unavailable").Inc()
	slog.Warn("identify: start limiter unavailable; allowing", "err", err)
	return true
}

// limiterTimeout bounds the start limiter's KV round trips in an identify.
const limiterTimeout = time.Second

// identifySlot takes a slot of Config.MaxIdentifies, waiting at most
// Config.IdentifyWait; false when none freed up.
func (g *Gateway) identifySlot() bool {
	select {
	case g.identifies <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(g.cfg.IdentifyWait)
	defer t.Stop()
	select {
	case g.identifies <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// opContext bounds one step of an identify or a resume (each JetStream or api
// round trip gets its own APITimeout, so a slow step does not starve the next).
func (g *Gateway) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.cfg.APITimeout)
}

func (g *Gateway) putRegistry(s *Session) error {
	ctx, cancel := g.opContext()
	defer cancel()
	intents := s.intents
	err := g.registry.Put(ctx, registry.Session{ID: s.id, UserID: s.user.ID, Node: g.cfg.Node, Seq: g.hub.watermark.Load(), Intents: &intents})
	if err != nil {
		slog.Warn("registry put", "session", s.id, "err", err)
	}
	return err
}

// refreshRegistry keeps the entries of live sessions from expiring.
func (g *Gateway) refreshRegistry(ctx context.Context) {
	every := g.registry.TTL() / 3
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		live := make([]*Session, 0, len(g.sessions))
		for _, s := range g.sessions {
			live = append(live, s)
		}
		g.mu.Unlock()
		// Spread the puts over most of the interval: all at once, 100,000
		// sessions' refreshes arrive at NATS as one burst every interval, which
		// starved identifies and resumes in the 100,000-session run.
		start, spread := time.Now(), every*3/4
		for i, s := range live {
			if wait := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(live)))); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			if ctx.Err() != nil {
				return
			}
			// The snapshot is up to an interval old: a session that ended or moved
			// to another gateway since must not be written back.
			g.mu.Lock()
			cur := g.sessions[s.id]
			g.mu.Unlock()
			if cur == s {
				_ = g.putRegistry(s)
			}
		}
	}
}

// kicked closes a local session that another gateway has resumed (its client is
// gone from here, whatever this side of the socket believes). The resuming gateway
// tells the node named in the registry entry, on that node's kick subject.
func (g *Gateway) kicked(m *natsgo.Msg) {
	id := string(m.Data)
	g.mu.Lock()
	s := g.sessions[id]
	if s != nil {
		delete(g.sessions, id)
	}
	g.mu.Unlock()
	if s != nil {
		s.resumable.Store(true)
		s.close(CloseUnknownError, "session resumed elsewhere")
	}
}

func kickSubject(node string) string { return ghnats.KickSubject(node) }

// joinAtCut joins an identified or resuming session to its rooms at a consistent
// cut (see Hub.prepare) and runs attached in the pump at that moment, with the
// session's starting watermark. On failure it closes the session (4000, try again)
// and reports false.
func (g *Gateway) joinAtCut(ctx context.Context, s *Session, rep guildhall.IdentifyReply, attached func(w uint64, rooms []*room)) bool {
	var rooms []*room
	g.hub.do(func() { rooms = g.hub.prepare(rep.Guilds) })
	done := false
	err := g.hub.cut(ctx, func() {
		if s.isClosed() {
			g.hub.abort(rooms)
			return
		}
		done = true
		attached(g.hub.attach(s, rooms, rep.Members), rooms)
	})
	if err == nil && done {
		return true
	}
	slog.Warn("session join: cut", "session", s.id, "err", err)
	s.close(CloseUnknownError, "Try again")
	// The tick may still arrive: closed first, the session will not attach, and if
	// it already did it leaves here.
	g.hub.do(func() { g.hub.leave(s) })
	return false
}

func readyPayload(s *Session, rep guildhall.IdentifyReply, shard []int) []byte {
	ready := readyData{
		V: 10, User: rep.User, SessionID: s.id, SessionType: "normal",
		ResumeGatewayURL: s.resumeURL,
		Guilds:           make([]unavailableGuild, len(rep.Guilds)),
		Application:      readyApplication{ID: rep.User.ID},
		PrivateChannels:  []struct{}{}, Relationships: []struct{}{}, Presences: []struct{}{},
	}
	if len(shard) == 2 {
		ready.Shard = shard
	}
	for i, st := range rep.Guilds {
		ready.Guilds[i] = unavailableGuild{ID: st.Guild.ID, Unavailable: true}
	}
	b, _ := json.Marshal(ready)
	return b
}

// authFailed tells a rejected token from an api that could not answer (the reply
// carries Discord's error body, whose HTTP status does not travel).
func authFailed(e *guildhall.Error) bool {
	return e.Code == guildhall.ErrUnauthorized.Code && e.Message == guildhall.ErrUnauthorized.Message
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
