package messaging

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// When the store cannot be reached.
//
// A database outage is not a bug: requests that need the store then answer
// 503 with Discord's error body, so clients retry, and never 500. Requests the
// projection can answer (projection.go) do not need the store at all. Reads of
// history wait for the writer (the read barrier), which cannot write while the
// database is down: once a store read has failed for that reason, they answer
// 503 at once rather than after the barrier's timeout, until a probe finds the
// store answering again.

// Errors a request gets while the database cannot be reached.
var (
	errStoreUnavailable   = &guildhall.Error{Status: 503, Code: 0, Message: "The database is unavailable; try again later"}
	errHistoryUnavailable = &guildhall.Error{Status: 503, Code: 0, Message: "Message history is unavailable while the database is down; new messages are still accepted; try again later"}
)

// unavailabilityReporter is what a Store may tell of its errors: whether err
// means the database could not be reached or did not answer in time, as
// opposed to a bad query or bad data. A Store without it (the embedded one, a
// local file) is never unavailable.
type unavailabilityReporter interface {
	Unavailable(err error) bool
}

// storeProbeInterval is how often a store found unreachable is probed until
// it answers.
const storeProbeInterval = 500 * time.Millisecond

// storeHealth remembers that the store was found unreachable, and probes it
// until it answers again.
type storeHealth struct {
	down    atomic.Bool
	probing atomic.Bool
}

// unavailable reports whether err is the store failing to answer; if so the
// store is marked down and probed until it answers.
func (s *Service) unavailable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) {
		return false
	}
	r, ok := s.store.(unavailabilityReporter)
	if !ok || !r.Unavailable(err) {
		return false
	}
	s.metrics.StoreUnavailable.Inc()
	s.health.down.Store(true)
	if s.health.probing.CompareAndSwap(false, true) {
		go s.probeStore()
	}
	return true
}

// storeDown reports whether the store was found unreachable and has not
// answered a probe since.
func (s *Service) storeDown() bool { return s.health.down.Load() }

// probeStore asks the store a cheap question until it answers.
func (s *Service) probeStore() {
	defer s.health.probing.Store(false)
	tick := time.NewTicker(storeProbeInterval)
	defer tick.Stop()
	for range tick.C {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.store.Guild(ctx, 0)
		late := ctx.Err() != nil // a database that hangs is down too
		cancel()
		r, _ := s.store.(unavailabilityReporter)
		if !late && (err == nil || errors.Is(err, ErrNotFound) || r == nil || !r.Unavailable(err)) {
			s.health.down.Store(false)
			s.log.Info("store answers again")
			return
		}
	}
}

// storeErr is internal for a store error, except that a database that cannot
// be reached answers 503 (errStoreUnavailable).
func (s *Service) storeErr(what string, err error) error {
	if s.unavailable(err) {
		s.log.Warn("store unavailable", "reading", what, "err", err)
		return errStoreUnavailable
	}
	return internal(what, err)
}

// isUnavailable reports whether err is a 503 of the store or of the read
// barrier: what a request may answer from the projection instead.
func isUnavailable(err error) bool {
	var ge *guildhall.Error
	return errors.As(err, &ge) && (ge == errStoreUnavailable || ge == errHistoryUnavailable || ge == guildhall.ErrServiceBusy)
}
