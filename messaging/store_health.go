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
// 503 at once rather than after the barrier's timeout, until a probe (one
// read at most every storeProbeInterval) finds the store answering again.

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

// storeProbeInterval is how often a store found unreachable is probed (by
// the reads that would need it) until it answers.
const storeProbeInterval = 500 * time.Millisecond

// storeHealth remembers that the store was found unreachable, and when it was
// last probed.
type storeHealth struct {
	down      atomic.Bool
	probing   atomic.Bool
	lastProbe atomic.Int64 // unix nanoseconds
}

// unavailable reports whether err is the store failing to answer; if so the
// store is marked down.
func (s *Service) unavailable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) {
		return false
	}
	r, ok := s.store.(unavailabilityReporter)
	if !ok || !r.Unavailable(err) {
		return false
	}
	s.metrics.StoreUnavailable.Inc()
	if !s.health.down.Swap(true) {
		s.health.lastProbe.Store(time.Now().UnixNano())
	}
	return true
}

// storeDown reports whether the store was found unreachable and has not
// answered since. At most every storeProbeInterval one caller probes it.
func (s *Service) storeDown(ctx context.Context) bool {
	if !s.health.down.Load() {
		return false
	}
	if time.Since(time.Unix(0, s.health.lastProbe.Load())) < storeProbeInterval || !s.health.probing.CompareAndSwap(false, true) {
		return true
	}
	defer s.health.probing.Store(false)
	s.health.lastProbe.Store(time.Now().UnixNano())
	pctx, cancel := context.WithTimeout(ctx, storeProbeInterval)
	defer cancel()
	_, err := s.store.Guild(pctx, 0)
	if pctx.Err() != nil || s.unavailable(err) { // a database that hangs is down too
		return true
	}
	s.health.down.Store(false)
	s.log.Info("store answers again")
	return false
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
