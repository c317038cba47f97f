package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// LoginLimits throttle password guessing, per account and per client address,
// across every api process (the counters live in the bucket
// ghnats.BucketAPIState, updated with compare-and-set). Each failed login
// counts against both; past Free failures, every further one locks the key for
// twice as long as the one before (Base, 2×Base, 4×Base, … up to Max). A
// successful login clears the account's count. Counts are forgotten Forget
// after the last failure.
//
// It fails safe: when the bucket does not answer, logins are refused with 503
// rather than let through unthrottled.
//
// Zero values mean: per account 5 free failures, per address 20; Base 1 s,
// Max 15 minutes, Forget 1 hour.
type LoginLimits struct {
	AccountFree, AddressFree int
	Base, Max, Forget        time.Duration
}

func (l LoginLimits) withDefaults() LoginLimits {
	if l.AccountFree == 0 {
		l.AccountFree = 5
	}
	if l.AddressFree == 0 {
		l.AddressFree = 20
	}
	if l.Base == 0 {
		l.Base = time.Second
	}
	if l.Max == 0 {
		l.Max = 15 * time.Minute
	}
	if l.Forget == 0 {
		l.Forget = time.Hour
	}
	return l
}

// LoginThrottledError refuses a login until RetryAfter has passed (429).
type LoginThrottledError struct{ RetryAfter time.Duration }

func (e *LoginThrottledError) Error() string {
	return fmt.Sprintf("login throttled; retry after %v", e.RetryAfter)
}

// loginThrottle is LoginLimits over a KV bucket.
type loginThrottle struct {
	kv     jetstream.KeyValue
	limits LoginLimits
	now    func() time.Time
}

type loginCount struct {
	Fails int       `json:"fails"`
	Until time.Time `json:"until"`
}

// keys are hashes: usernames and addresses may hold what a KV key may not.
func (t *loginThrottle) keys(username, addr string) (account, address string) {
	a := sha256.Sum256([]byte(strings.ToLower(username)))
	b := sha256.Sum256([]byte(addr))
	return "login.user." + hex.EncodeToString(a[:16]), "login.addr." + hex.EncodeToString(b[:16])
}

// check refuses when either key is locked now.
func (t *loginThrottle) check(ctx context.Context, username, addr string) error {
	acct, ip := t.keys(username, addr)
	var wait time.Duration
	for _, k := range []string{acct, ip} {
		c, _, err := t.read(ctx, k)
		if err != nil {
			return err
		}
		if d := c.Until.Sub(t.now()); d > wait {
			wait = d
		}
	}
	if wait > 0 {
		return &LoginThrottledError{RetryAfter: wait}
	}
	return nil
}

// failed counts a failed login against the account and the address.
func (t *loginThrottle) failed(ctx context.Context, username, addr string) error {
	acct, ip := t.keys(username, addr)
	if err := t.count(ctx, acct, t.limits.AccountFree); err != nil {
		return err
	}
	return t.count(ctx, ip, t.limits.AddressFree)
}

// succeeded clears the account's count (not the address's: one right password
// does not excuse a thousand wrong ones for other accounts).
func (t *loginThrottle) succeeded(ctx context.Context, username string) {
	acct, _ := t.keys(username, "")
	_ = t.kv.Purge(ctx, acct)
}

func (t *loginThrottle) read(ctx context.Context, key string) (loginCount, uint64, error) {
	e, err := t.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return loginCount{}, 0, nil
	}
	if err != nil {
		return loginCount{}, 0, fmt.Errorf("login throttle: %w", err)
	}
	var c loginCount
	_ = json.Unmarshal(e.Value(), &c)
	return c, e.Revision(), nil
}

// count adds one failure to key with compare-and-set, retrying when another
// process got there first.
func (t *loginThrottle) count(ctx context.Context, key string, free int) error {
	for attempt := range 32 {
		if attempt > 0 {
			time.Sleep(time.Duration(rand.IntN(500*min(attempt, 10))) * time.Microsecond)
		}
		c, rev, err := t.read(ctx, key)
		if err != nil {
			return err
		}
		c.Fails++
		if over := c.Fails - free; over > 0 {
			lock := t.limits.Max
			if over < 31 {
				lock = min(t.limits.Max, t.limits.Base<<(over-1))
			}
			c.Until = t.now().Add(lock)
		}
		b, _ := json.Marshal(c)
		if rev == 0 {
			_, err = t.kv.Create(ctx, key, b, jetstream.KeyTTL(t.limits.Forget))
		} else {
			_, err = t.kv.Update(ctx, key, b, rev)
		}
		if err == nil || !ghnats.IsKVConflict(err) {
			if err != nil {
				return fmt.Errorf("login throttle: %w", err)
			}
			return nil
		}
	}
	return errors.New("login throttle: counter contended")
}

// throttledLogin wraps a password check in the throttle: refused up front while
// locked, counted when it fails, cleared when it succeeds. A throttle that does
// not answer refuses the login (ErrServiceBusy).
func (s *Service) throttledLogin(ctx context.Context, c Credentials, checkFn func() (UserRecord, error)) (UserRecord, error) {
	if err := s.logins.check(ctx, c.Username, c.Addr); err != nil {
		return UserRecord{}, s.throttleError(err)
	}
	rec, err := checkFn()
	switch {
	case errors.Is(err, guildhall.ErrInvalidLogin):
		if ferr := s.logins.failed(ctx, c.Username, c.Addr); ferr != nil {
			return UserRecord{}, s.throttleError(ferr)
		}
	case err == nil:
		s.logins.succeeded(ctx, c.Username)
	}
	return rec, err
}

func (s *Service) throttleError(err error) error {
	var lt *LoginThrottledError
	if errors.As(err, &lt) {
		return err
	}
	s.log.Error("login throttle unavailable; refusing logins", "err", err)
	return guildhall.ErrServiceBusy
}
