package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// revocationWatcher closes the sessions of revoked tokens (logout, token reset,
// password change, a bot's owner or an operator revoking; see
// messaging/service_tokens.go) with 4004, not resumable: a RESUME or IDENTIFY
// with the token asks the api, which no longer knows it.
//
// Revocations are events of the EVENTS stream, re-published on
// ghnats.SubjectRevocationsEv (only JetStream publishes there, so they are
// believed). A gateway that was disconnected from NATS reads the ones it missed
// from the stream, by direct get, from the last sequence it saw.
type revocationWatcher struct {
	sessions revocationSessions
	stream   jetstream.Stream
	log      *slog.Logger
	sub      *natsgo.Subscription
	closed   func(n int) // counts the sessions closed (metrics)

	mu      sync.Mutex
	lastSeq uint64 // stream sequence of the last revocation seen
}

// revocationSessions is what the watcher asks of the session directory.
type revocationSessions interface{ connections() []*Session }

var _ revocationSessions = (*directory)(nil)

func newRevocationWatcher(nc *natsgo.Conn, stream jetstream.Stream, sessions revocationSessions, closed func(n int), log *slog.Logger) (*revocationWatcher, error) {
	w := &revocationWatcher{sessions: sessions, stream: stream, log: log, closed: closed}
	// Revocations from now on: the stream's last sequence is where a catch-up
	// after a reconnect starts.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if info, err := stream.Info(ctx); err == nil {
		w.lastSeq = info.State.LastSeq
	}
	sub, err := nc.Subscribe(ghnats.SubjectRevocationsEv, w.received)
	if err != nil {
		return nil, err
	}
	w.sub = sub
	return w, nil
}

func (w *revocationWatcher) close() { _ = w.sub.Unsubscribe() }

func (w *revocationWatcher) received(m *natsgo.Msg) {
	seq, _ := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	w.apply(m.Data, seq)
}

// apply closes the sessions r revokes; seq advances the catch-up point.
func (w *revocationWatcher) apply(data []byte, seq uint64) {
	w.mu.Lock()
	if seq > w.lastSeq {
		w.lastSeq = seq
	}
	w.mu.Unlock()
	var r guildhall.TokenRevocation
	if err := json.Unmarshal(data, &r); err != nil || r.UserID == 0 {
		w.log.Warn("revocation: undecodable", "err", err)
		return
	}
	n := 0
	for _, s := range w.sessions.connections() {
		// user and tokenHash are written before identified is set.
		if s.identified.Load() && r.Revokes(s.user.ID, s.tokenHash) {
			s.resumable.Store(false)
			s.close(CloseAuthenticationFailed, "Authentication failed: the token was revoked")
			n++
		}
	}
	if n > 0 {
		w.closed(n)
		w.log.Info("revocation: sessions closed", "user", r.UserID, "sessions", n)
	}
}

// reconnected reads the revocations published while this gateway was away
// from NATS, in stream order, from the stream.
func (w *revocationWatcher) reconnected() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			w.mu.Lock()
			next := w.lastSeq + 1
			w.mu.Unlock()
			m, err := w.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(ghnats.SubjectRevocationsIn))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return
			}
			if err != nil {
				w.log.Warn("revocation: catch-up after reconnect", "err", err)
				return
			}
			w.apply(m.Data, m.Sequence)
		}
	}()
}
