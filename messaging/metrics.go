package messaging

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the api side: publishing, the writer and the read barrier (the REST
// surface has its own, rest.Metrics).
type Metrics struct {
	// PublishLatency is the time from the first publish attempt of an event to
	// the stream's acknowledgement, by event type.
	PublishLatency *prometheus.HistogramVec
	// PublishErrors counts events whose publish failed after retries, by type.
	PublishErrors *prometheus.CounterVec
	// WriterBatchSize is the number of stream messages per applied batch.
	WriterBatchSize prometheus.Histogram
	// WriterApplied is the highest stream sequence the local writer has applied
	// with everything before it.
	WriterApplied prometheus.Gauge
	// WriterLag is how many messages the writer's consumer has not yet had
	// delivered and acknowledged (pending + ack pending), as of the last batch.
	WriterLag prometheus.Gauge
	// WriterErrors counts failed store writes (each retried) and fetch errors.
	WriterErrors *prometheus.CounterVec
	// WriterSkipped counts stream messages the writer could not decode and
	// acknowledged without writing (a bug in whoever published them).
	WriterSkipped prometheus.Counter
	// BarrierWait is how long reads waited for the writer (read your writes).
	BarrierWait prometheus.Histogram
	// BarrierTimeouts counts reads answered 503 because the writer lagged.
	BarrierTimeouts prometheus.Counter
	// AccessReads counts the authorization reads of requests by where they
	// were answered: "projection" (memory, kept current from the stream) or
	// "store" (the projection was not running, not fresh, or lacked the guild's
	// newest change).
	AccessReads *prometheus.CounterVec
	// ProjectionGuilds and ProjectionMembers are how many guilds and
	// memberships (with bans) the projection holds.
	ProjectionGuilds, ProjectionMembers prometheus.Gauge
	// ProjectionStale counts requests that found the projection not fresh
	// within the wait and read the store instead.
	ProjectionStale prometheus.Counter
	// StoreUnavailable counts store reads that failed because the database
	// could not be reached (answered 503, or from the projection).
	StoreUnavailable prometheus.Counter
	// FilesSwept counts orphaned attachment files the Sweeper deleted.
	FilesSwept prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg; a nil reg keeps them
// unregistered (tests, or a caller that does not export metrics). Registering
// twice with one registry panics: make one Metrics per registry, and share it
// between the Writer, the Barrier and the Service of one process.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	lat := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &Metrics{
		PublishLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "guildhall", Name: "publish_latency_seconds",
			Help: "Time to publish an event to JetStream until it is acknowledged, by event type.", Buckets: lat,
		}, []string{"type"}),
		PublishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "publish_errors_total",
			Help: "Events whose publish failed after retries, by event type.",
		}, []string{"type"}),
		WriterBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "guildhall", Name: "writer_batch_size",
			Help: "Stream messages per batch applied to the store.", Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		WriterApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "guildhall", Name: "writer_applied_sequence",
			Help: "Highest EVENTS stream sequence the writer has applied, with everything before it.",
		}),
		WriterLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "guildhall", Name: "writer_lag_messages",
			Help: "Guild events in the stream not yet persisted by the writer.",
		}),
		WriterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "writer_errors_total",
			Help: "Writer errors by stage (fetch, store); each is retried.",
		}, []string{"stage"}),
		WriterSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "writer_skipped_total",
			Help: "Stream messages the writer could not decode and acknowledged without writing.",
		}),
		BarrierWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "guildhall", Name: "read_barrier_wait_seconds",
			Help: "Time history reads waited for the writer to persist the guild's latest event.", Buckets: lat,
		}),
		BarrierTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "read_barrier_timeouts_total",
			Help: "History reads answered 503 because the writer was too far behind.",
		}),
		AccessReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "access_reads_total",
			Help: "Authorization reads of requests by where they were answered (projection, store).",
		}, []string{"from"}),
		ProjectionGuilds: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "guildhall", Name: "projection_guilds",
			Help: "Guilds the api's projection of the event stream holds.",
		}),
		ProjectionMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "guildhall", Name: "projection_members",
			Help: "Memberships and bans the api's projection of the event stream holds.",
		}),
		ProjectionStale: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "projection_stale_total",
			Help: "Requests that found the projection not fresh in time and read the store instead.",
		}),
		StoreUnavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "store_unavailable_total",
			Help: "Store reads that failed because the database could not be reached.",
		}),
		FilesSwept: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "attachment_files_swept_total",
			Help: "Orphaned attachment files (post failed, or message deleted) the sweeper deleted.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.PublishLatency, m.PublishErrors, m.WriterBatchSize, m.WriterApplied, m.WriterLag,
			m.WriterErrors, m.WriterSkipped, m.BarrierWait, m.BarrierTimeouts,
			m.AccessReads, m.ProjectionGuilds, m.ProjectionMembers, m.ProjectionStale, m.StoreUnavailable,
			m.FilesSwept)
	}
	return m
}
