package presence

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricAnnounced = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_presence_updates_published_total", Help: "PRESENCE_UPDATE guild events published by the notifier (one per small guild of a changed user).",
	})
	metricReports = promauto.NewCounter(prometheus.CounterOpts{
		Name: "guildhall_presence_count_reports_total", Help: "Per-gateway online count reports received by this aggregator.",
	})
	metricAggregated = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "guildhall_presence_count_guilds", Help: "Guilds with a live online count in this aggregator.",
	})
)
