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
//	{"ready": false, "missing": ["api: stream EVENTS: ...", "gateway: bucket gh_sessions: ..."]}
//
// Each role is checked through its own connection, with its own permissions:
// every role needs NATS and the EVENTS stream; the api and the writer need the
// writer's durable consumer (the writer consumes it, the api's read barrier
// polls it); the api needs every bucket, a gateway the sessions, presence and
// limits buckets. A check is a few JetStream requests; answers are reused for a
// second so that a probe storm does not become a JetStream load.
type readiness struct {
	roles []roleReadiness

	mu      sync.Mutex
	checked time.Time
	missing []string
}

// roleReadiness is what one role of the process needs.
type roleReadiness struct {
	role     ghnats.Role
	nc       *natsgo.Conn
	js       jetstream.JetStream
	consumer bool // the writer's consumer
	buckets  []string
}

func newReadiness(conns map[ghnats.Role]*roleConn) *readiness {
	r := &readiness{}
	for _, role := range []ghnats.Role{ghnats.RoleAPI, ghnats.RoleWriter, ghnats.RoleGateway} {
		c := conns[role]
		if c == nil {
			continue
		}
		rr := roleReadiness{role: role, nc: c.nc, js: c.js}
		switch role {
		case ghnats.RoleAPI:
			rr.consumer = true
			for _, b := range (ghnats.Topology{}).Buckets() {
				rr.buckets = append(rr.buckets, b.Bucket)
			}
		case ghnats.RoleWriter:
			rr.consumer = true
		case ghnats.RoleGateway:
			rr.buckets = []string{ghnats.BucketSessions, ghnats.BucketPresence, ghnats.BucketLimits}
		}
		r.roles = append(r.roles, rr)
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
	for _, rr := range r.roles {
		missing = append(missing, rr.check(ctx)...)
	}
	r.checked, r.missing = time.Now(), missing
	return missing
}

func (rr roleReadiness) check(ctx context.Context) []string {
	var missing []string
	add := func(what string, err error) {
		missing = append(missing, string(rr.role)+": "+what+": "+err.Error())
	}
	if !rr.nc.IsConnected() {
		return []string{string(rr.role) + ": nats: not connected (" + rr.nc.Status().String() + ")"}
	}
	s, err := rr.js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		add("stream "+ghnats.StreamEvents, err)
	} else if rr.consumer {
		if _, err := s.Consumer(ctx, ghnats.ConsumerWriter); err != nil {
			add("consumer "+ghnats.StreamEvents+"/"+ghnats.ConsumerWriter, err)
		}
	}
	for _, b := range rr.buckets {
		if _, err := rr.js.KeyValue(ctx, b); err != nil {
			add("bucket "+b, err)
		}
	}
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
