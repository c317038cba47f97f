package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/cql"
	"github.com/guildhall/guildhall/messaging/natsapi"
	"github.com/guildhall/guildhall/messaging/rest"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/web"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type serveFlags struct {
	addr, data, natsURL, natsListen, roles, publicURL string
	natsCreds, natsJSDomain                           string
	natsTLS                                           ghnats.TLSFiles
	store, cqlHosts, cqlKeyspace, cqlConsistency      string
	replicas                                          int
	drain                                             time.Duration
	logLevel                                          string
	rateLimits                                        string
	bcryptCost                                        int
	identifyTotal, identifyConcurrency                int
	resumeWindow                                      time.Duration
	node                                              string
	debugPprof                                        bool
	maxUpload                                         int64
	apiURL                                            string
	heartbeat                                         time.Duration
	http                                              httpTimeouts
	metricsAddr                                       string
	tokenCacheTTL                                     time.Duration
	groupDMsPerHour                                   int
	gatewayLimits                                     gatewayLimitFlags
}

// gatewayLimitFlags bound each gateway connection and client address.
type gatewayLimitFlags struct {
	identifyTimeout time.Duration
	payloadLimit    int
	connsPerAddr    int
}

// parseServe reads serve's flags from args. Every flag can also be set by its
// environment variable, GUILDHALL_ and the flag's name in upper case with
// underscores (--nats-url: GUILDHALL_NATS_URL), looked up with getenv; a flag on
// the command line wins over its variable, and a variable that does not parse is
// an error, as the flag would be.
func parseServe(args []string, getenv func(string) (string, bool)) (serveFlags, error) {
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := flagsFromEnv(fs, envName, getenv); err != nil {
		return f, err
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	return f, nil
}

// serveFlagSet declares serve's flags, with their defaults, into f.
func serveFlagSet(f *serveFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "HTTP address for REST and the gateway")
	fs.StringVar(&f.data, "data", "./data", "data directory: embedded NATS, its credentials (creds/) and the store")
	fs.StringVar(&f.natsURL, "nats-url", "", "external NATS URL(s); empty embeds a server")
	fs.StringVar(&f.natsListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server, for more gateways and the CLI")
	fs.StringVar(&f.natsCreds, "nats-creds", "", "directory of the bus credentials (`guildhall nats creds`); this process uses the <role>.nk of each role it runs. Empty means <data>/creds, created on the embedded server's first start")
	fs.StringVar(&f.natsTLS.Cert, "nats-tls-cert", "", "PEM certificate: the embedded NATS server's (TLS on its client links), or this process's client certificate")
	fs.StringVar(&f.natsTLS.Key, "nats-tls-key", "", "PEM key of --nats-tls-cert")
	fs.StringVar(&f.natsTLS.CA, "nats-tls-ca", "", "PEM CA that signed the NATS servers' certificates; set, the connections insist on TLS")
	fs.StringVar(&f.natsJSDomain, "nats-js-domain", "", "JetStream domain whose JetStream this process uses (the hub's --js-domain), for a process at an edge site whose NATS server is a leaf node; empty means the JetStream of the cluster it connects to")
	fs.StringVar(&f.roles, "role", "all", "roles to run, comma-separated: gateway,api,writer or all")
	fs.StringVar(&f.publicURL, "public-url", "", "WebSocket URL clients reach this gateway at; empty uses the request's host")
	fs.StringVar(&f.store, "store", "bolt", "message store: bolt (embedded) or cql")
	fs.StringVar(&f.cqlHosts, "cql-hosts", "127.0.0.1:9042", "CQL hosts, comma-separated")
	fs.StringVar(&f.cqlKeyspace, "cql-keyspace", "guildhall", "CQL keyspace")
	fs.StringVar(&f.cqlConsistency, "cql-consistency", "LOCAL_QUORUM", "CQL consistency")
	fs.IntVar(&f.replicas, "replicas", 1, "replicas of streams and buckets (3 on a cluster); applied by the api role")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "on SIGTERM, spread gateway reconnects over this long")
	fs.StringVar(&f.rateLimits, "rate-limits", "discord", "REST rate limits: discord (Discord's numbers) or off (benchmarks and tests only)")
	fs.IntVar(&f.bcryptCost, "bcrypt-cost", 10, "bcrypt cost of password hashes (4 for tests and load generators only)")
	fs.IntVar(&f.identifyTotal, "identify-total", 1000, "session starts (IDENTIFY) per user per day, as Discord's session_start_limit.total")
	fs.IntVar(&f.identifyConcurrency, "identify-concurrency", 1, "IDENTIFY per user per 5 s per shard bucket, as Discord's max_concurrency")
	fs.DurationVar(&f.resumeWindow, "resume-window", 5*time.Minute, "how long a session can be resumed after its client left or its gateway was last seen alive (each gateway writes one heartbeat to the session registry; live sessions cost no writes); applied by the api role")
	fs.StringVar(&f.node, "node", "", "this gateway's node name in the session registry, kept across restarts (a restart is a new incarnation of the node); empty: a random name per process")
	fs.BoolVar(&f.debugPprof, "debug-pprof", false, "serve Go's profiles at /debug/pprof/ on --addr (for profiling a load run; never on a public address)")
	fs.Int64Var(&f.maxUpload, "max-upload", 25<<20, "largest message post with files, in bytes (Discord's 25 MiB); larger answers 413")
	fs.StringVar(&f.apiURL, "api-url", "", "URL clients reach the REST api at, the base of attachment URLs; empty uses the uploading request's host")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", 41250*time.Millisecond, "gateway: the heartbeat interval HELLO asks clients for (Discord's 41.25 s); a connection silent for it plus 10 s is closed")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve GET /metrics on this address only (not on --addr); empty serves it on --addr")
	fs.IntVar(&f.groupDMsPerHour, "group-dms-per-hour", messaging.DefaultGroupDMsPerHour, "group DMs one user may create per hour, across api processes (more answer 429), so nobody can bury someone's DM list under groups; negative: no bound")
	fs.DurationVar(&f.tokenCacheTTL, "token-cache-ttl", time.Minute, "how long the api believes a cached token without asking the store: bounds how long a revoked token works on an api process that missed the revocation")
	fs.DurationVar(&f.gatewayLimits.identifyTimeout, "gateway-identify-timeout", 20*time.Second, "a connection without IDENTIFY or RESUME this long after HELLO is closed with 4009 (heartbeats do not count); negative: never")
	fs.IntVar(&f.gatewayLimits.payloadLimit, "gateway-payload-limit", 120, "client payloads per connection per 60 s, heartbeats included (Discord's 120); one more closes with 4008; negative: no limit")
	fs.IntVar(&f.gatewayLimits.connsPerAddr, "gateway-max-conns-per-addr", 1000, "gateway connections per client address; more are refused with HTTP 429; negative: no cap (loopback load tools)")
	f.http.flags(fs)
	return fs
}

// envName is the environment variable of a serve flag.
func envName(flagName string) string { return envPrefixed("GUILDHALL_")(flagName) }

// envPrefixed names a flag's environment variable: prefix and the flag's name in
// upper case with underscores.
func envPrefixed(prefix string) func(string) string {
	return func(flagName string) string {
		return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	}
}

// flagsFromEnv sets every flag of fs that has a variable (name(flag), looked up
// with getenv) and says so in its usage; a variable that does not parse is an
// error that names it. Parse the command line after: it wins.
func flagsFromEnv(fs *flag.FlagSet, name func(string) string, getenv func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(fl *flag.Flag) {
		key := name(fl.Name)
		fl.Usage += " (env " + key + ")"
		if v, ok := getenv(key); ok && err == nil {
			if e := fl.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", key, e)
			}
		}
	})
	return err
}

func (f serveFlags) has(role string) bool {
	for _, r := range strings.Split(f.roles, ",") {
		if r = strings.TrimSpace(r); r == role || r == "all" {
			return true
		}
	}
	return false
}

func serve(args []string) error {
	f, err := parseServe(args, os.LookupEnv)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return run(ctx, f, log, nil)
}

// run serves until ctx ends, then shuts down cleanly. When listening is not nil it
// receives the HTTP address once everything is ready.
func run(ctx context.Context, f serveFlags, log *slog.Logger, listening chan<- string) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := os.MkdirAll(f.data, 0o755); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// Listen first: a port that is taken should fail before anything starts, and the
	// api needs the real address for GET /gateway.
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	defer ln.Close()

	// NATS: embedded unless an external URL is given. Either way every role this
	// process runs connects with its own identity (see package nats, Permissions).
	var ns *server.Server
	natsURL := f.natsURL
	auth := ghnats.ClientAuth{Dir: f.natsCreds, TLS: f.natsTLS, JSDomain: f.natsJSDomain}
	if auth.Dir == "" {
		auth.Dir = filepath.Join(f.data, "creds")
	}
	if natsURL == "" && f.natsJSDomain != "" {
		return errors.New("--nats-js-domain names the JetStream of an external NATS (--nats-url): the embedded server's has no domain")
	}
	if natsURL == "" {
		host, port, err := splitHostPort(f.natsListen)
		if err != nil {
			return fmt.Errorf("--nats-listen: %w", err)
		}
		sa, created, err := ghnats.EnsureCredentials(auth.Dir)
		if err != nil {
			return err
		}
		if created {
			log.Info("created the bus credentials", "dir", auth.Dir)
		}
		ns, err = ghnats.StartServer(ghnats.ServerConfig{Dir: filepath.Join(f.data, "nats"), Host: host, Port: port, Auth: &sa, TLS: f.natsTLS})
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
		_ = os.WriteFile(filepath.Join(f.data, "nats.url"), []byte(natsURL+"\n"), 0o644)
		log.Info("embedded NATS listening", "url", natsURL, "dir", filepath.Join(f.data, "nats"))
	}
	conns := map[ghnats.Role]*roleConn{}
	for _, role := range []ghnats.Role{ghnats.RoleAPI, ghnats.RoleWriter, ghnats.RoleGateway} {
		if !f.has(string(role)) {
			continue
		}
		nc, js, err := ghnats.ConnectAs(natsURL, "guildhall "+string(role)+" "+ln.Addr().String(), role, auth)
		if err != nil {
			return err
		}
		defer nc.Close()
		conns[role] = &roleConn{nc: nc, js: js}
	}
	if len(conns) == 0 {
		return fmt.Errorf("--role %q: want gateway, api, writer or all", f.roles)
	}
	topo := ghnats.Topology{Replicas: f.replicas, SessionTTL: f.resumeWindow}
	if c := conns[ghnats.RoleAPI]; c != nil {
		err = ghnats.Apply(startCtx, c.js, topo)
	} else {
		for role, c := range conns {
			if err = ghnats.Await(startCtx, c.js, topo, role); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	if f.debugPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /readyz", newReadiness(conns))
	// Metrics: this run's own registry (tests run several servers in one process),
	// served together with the process-wide default one, which holds the Go
	// runtime and process collectors and what the gateway and presence packages
	// register themselves. With --metrics-addr they are served there only.
	reg := prometheus.NewRegistry()
	metricsHandler := promhttp.InstrumentMetricHandler(reg,
		promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, reg}, promhttp.HandlerOpts{}))
	if f.metricsAddr == "" {
		mux.Handle("GET /metrics", metricsHandler)
	} else {
		stopMetrics, err := serveMetrics(f.metricsAddr, metricsHandler, f.http, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	var client http.Handler // the browser client, with the api role

	// api and writer: they own the store.
	var writer *messaging.Writer
	var store messaging.Store
	if f.has("api") || f.has("writer") {
		store, err = openStore(startCtx, f)
		if err != nil {
			return err
		}
		defer store.Close()
	}
	metrics := messaging.NewMetrics(reg)
	// Every process exposes the gateway's and presence's metrics too, zero where
	// its roles do not count them.
	gwMetrics, prMetrics := gateway.NewMetrics(reg), presence.NewMetrics(reg)
	writerDone := make(chan struct{})
	close(writerDone)
	if f.has("writer") {
		writer, err = messaging.NewWriter(messaging.WriterConfig{Store: store, JS: conns[ghnats.RoleWriter].js, Metrics: metrics, Logger: log})
		if err != nil {
			return err
		}
		// The writer role may delete files: it sweeps the orphaned ones too. The
		// grace outlasts the longest upload a request may take.
		sweeper, err := messaging.NewSweeper(messaging.SweeperConfig{
			JS: conns[ghnats.RoleWriter].js, Store: store, Grace: max(time.Hour, 2*f.http.read), Metrics: metrics, Logger: log,
		})
		if err != nil {
			return err
		}
		writerDone = make(chan struct{})
		sweeperDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			if err := writer.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("writer stopped", "err", err)
			}
			<-sweeperDone
		}()
		go func() {
			defer close(sweeperDone)
			_ = sweeper.Run(ctx)
		}()
	}
	if c := conns[ghnats.RoleAPI]; c != nil {
		nc, js := c.nc, c.js
		lease, err := ghnats.AcquireNode(startCtx, js, hostname())
		if err != nil {
			return err
		}
		defer lease.Release(context.Background())
		go func() {
			select {
			case <-lease.Lost():
				// Ids stay unique only while the clock moves on: say it loudly.
				log.Error("snowflake lease lost: another process may take this node number; restart this process", "node", lease.Node, "err", lease.Err())
			case <-ctx.Done():
			}
		}()
		bcfg := messaging.BarrierConfig{Metrics: metrics, Logger: log}
		// The local writer is the only one when this process owns an embedded store.
		if writer != nil && f.store == "bolt" {
			bcfg.Local = writer
		}
		barrier, err := messaging.NewBarrier(startCtx, js, bcfg)
		if err != nil {
			return err
		}
		// Gateways notice what they missed of a quiet guild through its beacon.
		beacon := messaging.NewGuildBeacon(nc, messaging.BeaconConfig{})
		beaconDone := make(chan struct{})
		go func() { defer close(beaconDone); _ = beacon.Run(ctx) }()
		defer func() { stop(); <-beaconDone }()
		svc, err := messaging.NewService(startCtx, messaging.Config{
			Store: store, Conn: nc, JS: js, Barrier: barrier, Metrics: metrics, Logger: log,
			IDs:        guildhall.NewSnowflakeGeneratorForNode(lease.Node),
			BcryptCost: f.bcryptCost, TokenCacheTTL: f.tokenCacheTTL, Beacon: beacon,
			GroupDMsPerHour: f.groupDMsPerHour,
		})
		if err != nil {
			return err
		}
		// Every api process drops revoked tokens from its cache as they are
		// revoked anywhere.
		revocationsDone := make(chan struct{})
		go func() {
			defer close(revocationsDone)
			if err := svc.WatchRevocations(ctx); err != nil && ctx.Err() == nil {
				log.Error("token revocations not watched; revoked tokens live until their cache entry expires", "err", err)
			}
		}()
		defer func() { stop(); <-revocationsDone }()
		// Every api process authorizes from its projection of the event stream
		// when it can, so that posts need only JetStream.
		projectionDone := make(chan struct{})
		go func() {
			defer close(projectionDone)
			if err := svc.RunProjection(ctx); err != nil && ctx.Err() == nil {
				log.Error("projection not running; every request reads the store", "err", err)
			}
		}()
		defer func() { stop(); <-projectionDone }()
		responder, err := natsapi.NewResponder(svc, nc, natsapi.Config{Logger: log})
		if err != nil {
			return err
		}
		defer responder.Close()
		// Presence: member lists for op 8, online counts for large guilds, and one
		// notifier per deployment (elected through a lease) for small guilds.
		members, err := natsapi.NewMembersResponder(store, nc, natsapi.Config{Logger: log})
		if err != nil {
			return err
		}
		defer members.Close()
		counts, err := presence.NewAggregator(nc, presence.AggregatorConfig{Logger: log, Metrics: prMetrics})
		if err != nil {
			return err
		}
		defer counts.Close()
		notifier := presence.NewNotifier(nc, js, presence.NotifierConfig{Name: hostname(), Logger: log, Metrics: prMetrics})
		notifierDone := make(chan struct{})
		go func() { defer close(notifierDone); _ = notifier.Run(ctx) }()
		defer func() { stop(); <-notifierDone }()
		gwURL := f.publicURL
		if gwURL == "" {
			gwURL = "ws://" + ln.Addr().String()
		}
		starts, err := registry.NewStartLimiter(startCtx, js, f.startLimits())
		if err != nil {
			return err
		}
		rcfg := rest.Config{GatewayURL: gwURL, Metrics: rest.NewMetrics(reg), Logger: log, Sessions: sessionStartLimits{starts}, Presence: counts,
			MaxUploadBytes: f.maxUpload, PublicURL: f.apiURL}
		switch f.rateLimits {
		case "discord":
		case "off":
			unlimited := rest.Limit{Requests: 1 << 30, Per: time.Second}
			rcfg.GlobalLimit, rcfg.RouteLimit, rcfg.MessageLimit, rcfg.AuthLimit, rcfg.DownloadLimit = unlimited, unlimited, unlimited, unlimited, unlimited
		default:
			return fmt.Errorf("--rate-limits %q: want discord or off", f.rateLimits)
		}
		api := rest.NewHandler(svc, rcfg)
		mux.Handle("/api/", api)
		mux.Handle("GET /attachments/", api) // files, at Discord's CDN path
		// The browser client needs REST on its own origin, so a process with the
		// api role serves it.
		client = web.NewHandler()
		for _, p := range []string{"GET /assets/", "GET /invite/", "GET /channels/"} {
			mux.Handle(p, client)
		}
		log.Info("api ready", "snowflake_node", lease.Node, "store", f.store)
	}
	var gw *gateway.Gateway
	if c := conns[ghnats.RoleGateway]; c != nil {
		gw, err = gateway.New(startCtx, c.nc, c.js, gateway.Config{
			Node: f.node, PublicURL: f.publicURL, StartLimits: f.startLimits(), Metrics: gwMetrics, Logger: log,
			HeartbeatInterval: f.heartbeat,
			Limits: gateway.LimitsConfig{
				IdentifyTimeout: f.gatewayLimits.identifyTimeout,
				PayloadLimit:    f.gatewayLimits.payloadLimit,
				MaxConnsPerAddr: f.gatewayLimits.connsPerAddr,
			},
		})
		if err != nil {
			return err
		}
	}
	switch {
	case gw != nil && client != nil:
		mux.Handle("GET /{$}", gatewayOrPage(gw, client))
	case gw != nil:
		mux.Handle("GET /{$}", gw)
	case client != nil:
		mux.Handle("GET /{$}", client)
	}

	srv := f.http.server(mux)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http", "err", err)
			stop()
		}
	}()
	log.Info("guildhall listening", "http", "http://"+ln.Addr().String(), "gateway", "ws://"+ln.Addr().String()+"/?v=10&encoding=json", "roles", f.roles, "data", f.data)
	var serving []string
	if f.has("api") {
		serving = append(serving, "REST http://"+ln.Addr().String()+"/api/v10")
	}
	if gw != nil {
		serving = append(serving, "gateway ws://"+ln.Addr().String()+"/?v=10&encoding=json")
	}
	fmt.Fprintf(os.Stderr, "guildhall: listening on http://%s (%s)\n", ln.Addr(), strings.Join(append(serving, "roles "+f.roles), ", "))
	if listening != nil {
		listening <- ln.Addr().String()
	}

	<-ctx.Done()
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), f.drain+15*time.Second)
	defer scancel()
	if gw != nil {
		gw.Close(sctx, f.drain)
	}
	_ = srv.Shutdown(sctx)
	<-writerDone
	return nil
}

// roleConn is the connection of one role.
type roleConn struct {
	nc *natsgo.Conn
	js jetstream.JetStream
}

// gatewayOrPage sends WebSocket upgrades of / to the gateway, as Discord's
// clients expect, and every other request to the browser client's page.
func gatewayOrPage(gw, page http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			gw.ServeHTTP(w, r)
			return
		}
		page.ServeHTTP(w, r)
	})
}

func (f serveFlags) startLimits() registry.StartLimits {
	return registry.StartLimits{Total: f.identifyTotal, MaxConcurrency: f.identifyConcurrency}
}

// sessionStartLimits answers GET /gateway/bot's session_start_limit from the
// limits the gateways enforce.
type sessionStartLimits struct{ l *registry.StartLimiter }

func (s sessionStartLimits) SessionStartLimit(ctx context.Context, user guildhall.Snowflake) rest.SessionStartLimit {
	u, err := s.l.Usage(ctx, user)
	if err != nil {
		return rest.SessionStartLimit{Total: u.Total, Remaining: u.Total, MaxConcurrency: u.MaxConcurrency}
	}
	return rest.SessionStartLimit{Total: u.Total, Remaining: u.Remaining, ResetAfter: int(u.ResetAfter.Milliseconds()), MaxConcurrency: u.MaxConcurrency}
}

func openStore(ctx context.Context, f serveFlags) (messaging.Store, error) {
	switch f.store {
	case "bolt":
		if err := os.MkdirAll(filepath.Join(f.data, "store"), 0o755); err != nil {
			return nil, err
		}
		return bolt.Open(filepath.Join(f.data, "store", "guildhall.db"))
	case "cql":
		var c gocql.Consistency
		if err := c.UnmarshalText([]byte(f.cqlConsistency)); err != nil {
			return nil, fmt.Errorf("--cql-consistency: %w", err)
		}
		return cql.Open(ctx, cql.Config{
			Hosts:       strings.Split(f.cqlHosts, ","),
			Keyspace:    f.cqlKeyspace,
			Consistency: c,
		})
	}
	return nil, fmt.Errorf("--store %q: want bolt or cql", f.store)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1 // random
	}
	return host, port, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}
