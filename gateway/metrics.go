package gateway

import "github.com/prometheus/client_golang/prometheus"

// Metrics of a gateway (the names are what dashboards and the load tool read).
type Metrics struct {
	// Sessions is the open gateway connections.
	Sessions prometheus.Gauge
	// GuildSubscriptions is the guilds this gateway is subscribed to: its rooms.
	GuildSubscriptions prometheus.Gauge
	// DispatchCandidates counts session deliveries the fan-out considered (before
	// channel visibility).
	DispatchCandidates prometheus.Counter
	// FramesWritten counts frames written to sockets.
	FramesWritten prometheus.Counter
	// SocketWrites counts the writes that carried them (a write or writev system
	// call, or one buffered write by a session's writer): FramesWritten per
	// SocketWrites is how much the fan-out coalesces, 1 at low load.
	SocketWrites prometheus.Counter
	// Fanout is the time to hand one event to every local recipient's outbox (a
	// batch's time shared among its events).
	Fanout prometheus.Histogram
	// SlowConsumers counts sessions cut off because their outbox was full.
	SlowConsumers prometheus.Counter
	// GapFills counts fetches of a guild's missed events from the stream.
	GapFills prometheus.Counter
	// GapsNoticed counts rooms found behind the stream, by what showed it: the
	// guild's next event, the api's heartbeat, the path probe.
	GapsNoticed *prometheus.CounterVec
	// CatchUpFailures counts failed attempts of a room to fetch what it missed.
	CatchUpFailures prometheus.Counter
	// CatchUpLate counts catch-ups that finished after giving their members'
	// frames back (a failed attempt): a member may have got later events of
	// other guilds before the refilled ones.
	CatchUpLate prometheus.Counter
	// PathProbeFailures counts ticks that did not come back (probe.go).
	PathProbeFailures prometheus.Counter
	// ForeignMessages counts messages on re-published subjects that the stream's
	// RePublish did not make (dropped): a bug or an attack.
	ForeignMessages prometheus.Counter
	// Resumes counts RESUME attempts by outcome.
	Resumes *prometheus.CounterVec
	// ResumeReplays counts resume replays by where the missed events came from.
	ResumeReplays *prometheus.CounterVec
	// Identifies counts IDENTIFY attempts by outcome.
	Identifies *prometheus.CounterVec
	// EdgeCloses counts connections closed or refused at the edges (limits.go,
	// revocations.go) by reason: identify_timeout, payload_rate, addr_cap,
	// token_revoked.
	EdgeCloses *prometheus.CounterVec
}

// NewMetrics makes a gateway's metrics and registers them with reg; a nil reg
// keeps them unregistered (tests, or a caller that does not export metrics).
// Registering twice with one registry panics: make one Metrics per registry and
// share it between the gateways of a process.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "guildhall_gateway_sessions", Help: "Open gateway connections.",
		}),
		GuildSubscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "guildhall_gateway_guild_subscriptions", Help: "Guilds this gateway is subscribed to (guilds with a local session).",
		}),
		DispatchCandidates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_dispatch_candidates_total", Help: "Session deliveries considered by the fan-out (before channel visibility).",
		}),
		FramesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_frames_written_total", Help: "Frames written to sockets.",
		}),
		SocketWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_socket_writes_total", Help: "Writes to sockets that carried frames (frames written per write: how much the fan-out coalesces).",
		}),
		Fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "guildhall_gateway_fanout_seconds", Help: "Time to hand one event to every local recipient's outbox (a batch's time shared among its events).",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_slow_consumers_total", Help: "Sessions cut off because their outbox was full.",
		}),
		GapFills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_gap_fills_total", Help: "Fetches of a guild's missed events from the stream.",
		}),
		GapsNoticed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guildhall_gateway_gaps_noticed_total", Help: "Rooms found behind the stream, by what showed it: event, heartbeat or probe.",
		}, []string{"by"}),
		CatchUpFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_catch_up_failures_total", Help: "Failed attempts of a room to fetch what it missed.",
		}),
		CatchUpLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_catch_up_late_total", Help: "Catch-ups that finished after giving their members' frames back: refilled events may have followed later ones of other guilds.",
		}),
		PathProbeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_path_probe_failures_total", Help: "Path probes whose tick did not come back.",
		}),
		ForeignMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_gateway_foreign_messages_total", Help: "Messages on re-published subjects that the stream's RePublish did not make (dropped): a bug or an attack.",
		}),
		Resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guildhall_gateway_resumes_total", Help: "RESUME attempts by outcome.",
		}, []string{"outcome"}),
		ResumeReplays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guildhall_gateway_resume_replays_total", Help: "Resume replays by where the missed events came from: memory (the rooms' recent events) or stream (a JetStream consumer).",
		}, []string{"path"}),
		Identifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guildhall_gateway_identifies_total", Help: "IDENTIFY attempts by outcome.",
		}, []string{"outcome"}),
		EdgeCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guildhall_gateway_edge_closes_total", Help: "Connections closed or refused at the edges, by reason: identify_timeout, payload_rate, addr_cap, token_revoked.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Sessions, m.GuildSubscriptions, m.DispatchCandidates, m.FramesWritten, m.SocketWrites, m.Fanout,
			m.SlowConsumers, m.GapFills, m.GapsNoticed, m.CatchUpFailures, m.CatchUpLate, m.PathProbeFailures,
			m.ForeignMessages, m.Resumes, m.ResumeReplays, m.Identifies, m.EdgeCloses)
	}
	return m
}
