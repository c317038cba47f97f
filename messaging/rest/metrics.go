package rest

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the REST surface.
type Metrics struct {
	// Requests counts REST requests by route pattern, method and status.
	Requests *prometheus.CounterVec
	// Latency is REST handling time by route pattern.
	Latency *prometheus.HistogramVec
}

// NewMetrics makes the metrics and registers them with reg; a nil reg keeps them
// unregistered (tests, or a caller that does not export metrics). Registering
// twice with one registry panics: make one Metrics per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guildhall", Name: "rest_requests_total",
			Help: "REST requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "guildhall", Name: "rest_request_seconds",
			Help:    "REST request handling time by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Latency)
	}
	return m
}
