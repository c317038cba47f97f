package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// Group DMs per creator. Anyone who shares a guild with a user may add them to
// a group DM, and a user's DM list shows only the newest MaxPrivateChannels:
// without a bound, one person could bury someone's DMs under groups as fast as
// the rate limit lets them post. Each user may create at most
// DefaultGroupDMsPerHour group DMs in an hour (a window that starts at the first
// of them), counted across every api process in ghnats.BucketAPIState with
// compare-and-set. Opening a DM with one person, or one that exists, is not
// counted.

// DefaultGroupDMsPerHour is the bound when Config.GroupDMsPerHour is zero:
// well above what a person starts in an hour (Discord's own clients make a
// group a few times a week at most), far below the rate at which a flood would
// fill a list (MaxPrivateChannels would take 50 hours from one account).
const DefaultGroupDMsPerHour = 20

// groupDMWindow is the length of the window the bound counts in.
const groupDMWindow = time.Hour

// RateLimitedError refuses a request until RetryAfter has passed: a 429 with
// Discord's rate-limit body (`retry_after` in seconds).
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited; retry after %v", e.RetryAfter)
}

// groupDMBudget is the per-creator bound over the KV bucket.
type groupDMBudget struct {
	kv      jetstream.KeyValue
	perHour int // negative: no bound
	now     func() time.Time
	log     *slog.Logger
}

type groupDMCount struct {
	N     int       `json:"n"`
	Since time.Time `json:"since"`
}

// take counts one group DM created by user, or refuses with
// *RateLimitedError when the user has created perHour of them in the current
// window. A bucket that does not answer refuses (ErrServiceBusy): creating
// groups is never urgent.
func (b *groupDMBudget) take(ctx context.Context, user guildhall.Snowflake) error {
	if b.perHour < 0 {
		return nil
	}
	key := "groupdm." + user.String()
	for attempt := range 32 {
		if attempt > 0 {
			time.Sleep(time.Duration(rand.IntN(500*min(attempt, 10))) * time.Microsecond)
		}
		var c groupDMCount
		var rev uint64
		e, err := b.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return b.unavailable(err)
		default:
			rev = e.Revision()
			_ = json.Unmarshal(e.Value(), &c) // a garbled count starts afresh
		}
		now := b.now()
		if now.Sub(c.Since) >= groupDMWindow || now.Before(c.Since) {
			c = groupDMCount{Since: now}
		}
		if c.N >= b.perHour {
			return &RateLimitedError{RetryAfter: c.Since.Add(groupDMWindow).Sub(now)}
		}
		c.N++
		v, _ := json.Marshal(c)
		if rev == 0 {
			_, err = b.kv.Create(ctx, key, v, jetstream.KeyTTL(groupDMWindow))
		} else {
			_, err = b.kv.Update(ctx, key, v, rev)
		}
		if err == nil {
			return nil
		}
		if !ghnats.IsKVConflict(err) {
			return b.unavailable(err)
		}
	}
	return b.unavailable(errors.New("counter contended"))
}

func (b *groupDMBudget) unavailable(err error) error {
	b.log.Error("group DM bound unavailable; refusing new groups", "err", err)
	return guildhall.ErrServiceBusy
}
