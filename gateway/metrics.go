package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricSessions = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "guildhall_gateway_sessions", Help: "Open gateway connections.",
	})
	metricRooms = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "guildhall_gateway_guild_subscriptions", Help: "Guilds this gateway is subscribed to (guilds with a local session).",
	})
	metricDispatches = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_gateway_dispatch_candidates_total", Help: "Session deliveries considered by the fan-out (before channel visibility).",
	})
	metricFramesWritten = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_gateway_frames_written_total", Help: "Frames written to sockets.",
	})
	metricFanout = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "guildhall_gateway_fanout_seconds", Help: "Time to hand one event to every local recipient's outbox.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
	})
	metricSlowConsumers = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_gateway_slow_consumers_total", Help: "Sessions cut off because their outbox was full.",
	})
	metricGapFills = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_gateway_gap_fills_total", Help: "Gaps in a guild's events filled from the stream.",
	})
	metricForeign = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_gateway_foreign_messages_total", Help: "Messages on re-published subjects that the stream's RePublish did not make (dropped): a bug or an attack.",
	})
	metricResumes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "guildhall_gateway_resumes_total", Help: "RESUME attempts by outcome.",
	}, []string{"outcome"})
	metricResumeReplays = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "guildhall_gateway_resume_replays_total", Help: "Resume replays by where the missed events came from: memory (the rooms' recent events) or stream (a JetStream consumer).",
	}, []string{"path"})
	metricIdentifies = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "guildhall_gateway_identifies_total", Help: "IDENTIFY attempts by outcome.",
	}, []string{"outcome"})
)
