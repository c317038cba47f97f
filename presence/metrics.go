package presence

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the presence Notifier and Aggregator.
type Metrics struct {
	// Announced counts PRESENCE_UPDATE guild events the Notifier published (one
	// per small guild of a changed user).
	Announced prometheus.Counter
	// Reports counts per-gateway online count reports an Aggregator received.
	Reports prometheus.Counter
	// Aggregated is the guilds with a live online count in an Aggregator.
	Aggregated prometheus.Gauge
}

// NewMetrics makes the presence metrics and registers them with reg; a nil reg
// keeps them unregistered. Registering twice with one registry panics: make one
// Metrics per registry and share it.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Announced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_presence_updates_published_total", Help: "PRESENCE_UPDATE guild events published by the notifier (one per small guild of a changed user).",
		}),
		Reports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guildhall_presence_count_reports_total", Help: "Per-gateway online count reports received by this aggregator.",
		}),
		Aggregated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "guildhall_presence_count_guilds", Help: "Guilds with a live online count in this aggregator.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Announced, m.Reports, m.Aggregated)
	}
	return m
}
