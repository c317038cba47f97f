package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readiness answers GET /readyz: 200 when everything this process's roles need
// is there and answers, else 503 with a JSON body naming what is missing:
//
//	{"ready": false, "missing": ["stream EVENTS: ...", "bucket gh_sessions: ..."]}
//
// Every role needs NATS and the EVENTS stream; the api and the writer need the
// writer's durable consumer (the writer consumes it, the api's read barrier
// polls it); the api needs every bucket, a gateway the sessions, presence and
// limits buckets. A check is at most a few JetStream requests; answers are
// reused for a second so that a probe storm does not become a JetStream load.
type readiness struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	buckets []string
	// consumer: the writer's consumer is needed.
	consumer bool

	mu      sync.Mutex
	checked time.Time
	missing []string
}

func newReadiness(nc *natsgo.Conn, js jetstream.JetStream, f serveFlags) *readiness {
	r := &readiness{nc: nc, js: js, consumer: f.has("api") || f.has("writer")}
	need := map[string]bool{}
	if f.has("gateway") {
		for _, b := range []string{ghnats.BucketSessions, ghnats.BucketPresence, ghnats.BucketLimits} {
			need[b] = true
		}
	}
	if f.has("api") {
		for _, b := range (ghnats.Topology{}).Buckets() {
			need[b.Bucket] = true
		}
	}
	for b := range need {
		r.buckets = append(r.buckets, b)
	}
	return r
}

// readyCheckTimeout bounds one check; an answer that takes longer is
// "unreachable".
const readyCheckTimeout = 2 * time.Second

func (r *readiness) check(ctx context.Context) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < time.Second {
		return r.missing
	}
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	missing := []string{}
	if !r.nc.IsConnected() {
		missing = append(missing, "nats: not connected ("+r.nc.Status().String()+")")
	} else {
		s, err := r.js.Stream(ctx, ghnats.StreamEvents)
		if err != nil {
			missing = append(missing, "stream "+ghnats.StreamEvents+": "+err.Error())
		} else if r.consumer {
			if _, err := s.Consumer(ctx, ghnats.ConsumerWriter); err != nil {
				missing = append(missing, "consumer "+ghnats.StreamEvents+"/"+ghnats.ConsumerWriter+": "+err.Error())
			}
		}
		for _, b := range r.buckets {
			if _, err := r.js.KeyValue(ctx, b); err != nil {
				missing = append(missing, "bucket "+b+": "+err.Error())
			}
		}
	}
	r.checked, r.missing = time.Now(), missing
	return missing
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	missing := r.check(req.Context())
	body, _ := json.Marshal(struct {
		Ready   bool     `json:"ready"`
		Missing []string `json:"missing,omitempty"`
	}{len(missing) == 0, missing})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if len(missing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(body)
}
