package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

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
	// it (the pump, on the fan-out path); for comparing the two in
	// benchmarks.
	NoDirectWrites bool
	// Inbox bounds the events waiting for the pump; beyond it NATS drops them for
	// this gateway and the pump refills the gap from the stream. Zero value means
	// 65536.
	Inbox int
	// APITimeout bounds a request to the api; zero value means 5 s.
	APITimeout time.Duration
	// PathProbe is how often the gateway checks that events still reach it from
	// the stream (probe.go); a failed check makes it compare every room with the
	// stream once the path is back. Zero value means 10 s.
	PathProbe time.Duration
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
	// Presence configures presence and online counts (see PresenceConfig); its
	// zero value is usable.
	Presence PresenceConfig
	// MemberLists configures op 8 REQUEST_GUILD_MEMBERS (see MemberListConfig);
	// its zero value is usable.
	MemberLists MemberListConfig
	// Metrics receives the gateway's metrics (NewMetrics). Zero value means
	// metrics of its own, registered nowhere.
	Metrics *Metrics
	// Limits bound each connection and each client address (limits.go); its
	// zero value is Discord's numbers.
	Limits LimitsConfig
	// Logger for what goes wrong inside. Zero value means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Node == "" {
		c.Node = "gw-" + randomHex(4)
	}
	// The node name is a subject token (its tick and kick subjects).
	c.Node = ghnats.SubjectToken(c.Node)
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
	if c.PathProbe == 0 {
		c.PathProbe = 10 * time.Second
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
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits = c.Limits.withDefaults()
	c.Presence = c.Presence.withDefaults()
	c.MemberLists = c.MemberLists.withDefaults()
	return c
}

func (c Config) outbox() outboxConfig {
	return outboxConfig{maxFrames: c.MaxOutbox, writeTimeout: c.WriteTimeout, noDirect: c.NoDirectWrites, metrics: c.Metrics}
}

// Gateway serves Discord's gateway protocol on WebSocket connections. It is the
// protocol (this file, conn.go, identify.go, resume.go) in front of actors that
// each own their state and stop on their own: the pump (pump.go: rooms, fan-out,
// the watermark), the session directory (directory.go), the stream replays
// (replay.go), the presence tracker (presence.go), the online counts (counts.go)
// and the member lister (members.go).
type Gateway struct {
	cfg      Config
	metrics  *Metrics
	log      *slog.Logger
	api      apiClient
	upgrader *gws.Upgrader

	pump     *pump
	sessions *directory
	replays  *replays
	presence *presenceTracker
	counts   *onlineCounts
	members  *memberLister
	limiter  *registry.StartLimiter
	addrs    *addrConns
	resumes  *resumeLimiter
	revoked  *revocationWatcher

	identifies chan struct{} // a slot per identify running (Config.MaxIdentifies)
	// limiterDownUntil (unix ns): after the start limiter failed, identifies skip
	// it until then. It fails open anyway; sparing its KV the calls lets it recover.
	limiterDownUntil atomic.Int64
}

// New starts a gateway on a NATS connection. The topology must have been applied.
// Stop it with Close.
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
	reader := eventsReader{nc: nc, js: js, stream: stream}
	g := &Gateway{
		cfg:        cfg,
		metrics:    cfg.Metrics,
		log:        cfg.Logger,
		api:        apiClient{nc: nc},
		limiter:    lim,
		replays:    newReplays(stream, reader, cfg.Node, apiClient{nc: nc}, cfg.MaxReplays, cfg.APITimeout),
		identifies: make(chan struct{}, cfg.MaxIdentifies),
		addrs:      newAddrConns(cfg.Limits.MaxConnsPerAddr),
		resumes:    newResumeLimiter(cfg.Limits.ResumeBurst, cfg.Limits.ResumeEvery),
	}
	// Built in dependency order; a failure stops what was started.
	var closers []func()
	fail := func(err error) (*Gateway, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.pump, err = newPump(pumpConfig{nc: nc, reader: reader, guilds: g.api, ticks: g.api, node: cfg.Node, inbox: cfg.Inbox,
		apiTimeout: cfg.APITimeout, probeEvery: cfg.PathProbe, metrics: cfg.Metrics, log: cfg.Logger}); err != nil {
		return fail(err)
	}
	closers = append(closers, g.pump.close)
	if g.sessions, err = newDirectory(ctx, directoryConfig{nc: nc, registry: reg, watermark: g.pump, node: cfg.Node, timeout: cfg.APITimeout, log: cfg.Logger}); err != nil {
		return fail(err)
	}
	closers = append(closers, g.sessions.close)
	g.presence = newPresenceTracker(presenceTrackerConfig{js: js, node: cfg.Node, rooms: g.pump, cfg: cfg.Presence, timeout: cfg.APITimeout, log: cfg.Logger})
	closers = append(closers, func() { g.presence.close(context.Background()) })
	if g.counts, err = newOnlineCounts(onlineCountsConfig{nc: nc, node: cfg.Node, rooms: g.pump, users: g.presence, every: cfg.Presence.CountInterval, log: cfg.Logger}); err != nil {
		return fail(err)
	}
	revokedCloses := func(n int) { cfg.Metrics.EdgeCloses.WithLabelValues("token_revoked").Add(float64(n)) }
	if g.revoked, err = newRevocationWatcher(nc, stream, g.sessions, revokedCloses, cfg.Logger); err != nil {
		return fail(err)
	}
	closers = append(closers, g.revoked.close)
	g.members = newMemberLister(memberListerConfig{nc: nc, js: js, api: g.api, rooms: g.pump, cfg: cfg.MemberLists, timeout: cfg.APITimeout, log: cfg.Logger})

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
		g.pump.reconnected()
		g.revoked.reconnected()
	})
	return g, nil
}

// Close asks every session to reconnect elsewhere (op 7), spread over drain, then
// closes what is left and stops each actor. The sessions stay in the registry and
// resume on another gateway, for the resume window after the gateway's last
// heartbeat (written as it stops). ctx bounds the wait for the presence goodbye.
func (g *Gateway) Close(ctx context.Context, drain time.Duration) {
	all := g.sessions.connections()
	var step time.Duration
	if len(all) > 0 {
		step = drain / time.Duration(len(all))
	}
	reconnect := opFrame(OpReconnect, []byte("null"))
	g.sessions.drain()
	for _, s := range all {
		s.resumable.Store(true)
		// Unheld: a session in the middle of a resume holds its live frames, and
		// the close that follows would drop them with the RECONNECT.
		s.out.sendUnheld(reconnect)
		s.close(CloseUnknownError, "gateway draining: reconnect and resume")
		if step > 0 {
			select {
			case <-time.After(step):
			case <-ctx.Done():
			}
		}
	}
	g.revoked.close()
	g.members.close()
	g.counts.close()
	g.presence.close(ctx) // waits for the goodbye: this node's users are offline now
	g.pump.close()
	g.sessions.close()
}

// ServeHTTP upgrades a request to a gateway connection.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	addr, ok := g.addrs.admit(r)
	if !ok {
		g.metrics.EdgeCloses.WithLabelValues("addr_cap").Inc()
		refuseAddr(w, g.cfg.Limits.MaxConnsPerAddr)
		return
	}
	conn, err := g.upgrader.Upgrade(w, r)
	if err != nil {
		g.addrs.release(addr)
		return
	}
	format, formatOK := parseWireFormat(q)
	s := newSession(conn.NetConn(), format, g.cfg.outbox())
	s.badEncoding, s.etf = !formatOK, format.etf
	s.lim.addr = addr
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
	go conn.ReadLoop()
}

// opContext bounds one step of an identify or a resume (each JetStream or api
// round trip gets its own APITimeout, so a slow step does not starve the next).
func (g *Gateway) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.cfg.APITimeout)
}

// joinContext bounds an identify's or a resume's wait for its cut (joinWait).
func (g *Gateway) joinContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), max(joinWait, g.cfg.APITimeout))
}

// takeSession makes s the session's holder on this gateway (identify or resume);
// a connection that held it before is closed, resumable.
func (g *Gateway) takeSession(s *Session) {
	if old := g.sessions.take(s); old != nil && old != s {
		old.resumable.Store(true)
		old.close(CloseUnknownError, "session resumed on another connection")
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
