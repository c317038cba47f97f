package messaging

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// Count caps (guilds per user, channels and roles per guild, invites per guild
// and per channel) are checked against the store and then written; two requests that
// check at once could both pass. capLock makes check-and-write one step across
// every api process: a short lock per counted thing, a key created in the
// bucket ghnats.BucketAPIState (create fails while another holder has it) with
// a TTL, so that a process that dies holding one blocks the others for at most
// capLockTTL. The store stays the one source of the counts: there is no counter
// to drift when a write fails half-way or something is deleted.
const (
	// capLockTTL bounds how long a dead holder blocks a key. A live holder's
	// work (a few store reads and one write; the event is published after the
	// unlock) is far shorter: a holder slower than this could let one more
	// through.
	capLockTTL = 15 * time.Second
	// capLockWait is how long a request waits for a lock before 503.
	capLockWait = 10 * time.Second
)

// errMaxInvitesPerChannel is Discord's code for too many invites with
// Guildhall's per-channel cap in the message (the per-guild one is
// guildhall.ErrMaxInvites).
var errMaxInvitesPerChannel = &guildhall.Error{Status: 400, Code: 30016, Message: "Maximum number of invites reached for this channel (100)"}

// Invite caps: Discord's per guild; per channel is Guildhall's own, so that one
// channel cannot take the whole guild's allowance.
const (
	MaxInvitesPerGuild   = 1000
	MaxInvitesPerChannel = 100
)

// capLock takes the lock named key and returns the function that releases it
// (idempotent: callers defer it and also call it as soon as the counted write
// is done, before publishing). It waits up to capLockWait; a bucket that does
// not answer, or a lock held all that time, is ErrServiceBusy.
func (s *Service) capLock(ctx context.Context, key string) (unlock func(), err error) {
	key = "cap." + key
	wait, cancelWait := context.WithTimeout(ctx, capLockWait)
	defer cancelWait()
	for attempt := 0; ; attempt++ {
		_, err := s.state.Create(wait, key, nil, jetstream.KeyTTL(capLockTTL))
		if err == nil {
			break
		}
		if !ghnats.IsKVConflict(err) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.log.Error("count cap lock", "key", key, "err", err)
			return nil, guildhall.ErrServiceBusy
		}
		d := time.Duration(1+rand.IntN(1+min(attempt, 20)*2)) * time.Millisecond
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, guildhall.ErrServiceBusy
		case <-time.After(d):
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Delete, not purge: Create succeeds on a deleted key, and the
			// marker goes with the bucket's TTL.
			if err := s.state.Delete(rctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				s.log.Warn("count cap unlock; the lock expires by itself", "key", key, "err", err)
			}
		})
	}, nil
}

// checkInviteCaps refuses an invite to channelID of guildID when the guild has
// MaxInvitesPerGuild live invites or the channel MaxInvitesPerChannel. Dead
// ones (expired, used up, or of a channel that is gone: inviteLive) are deleted
// on the way, so they count for nothing and the guild's list stays bounded;
// nothing else collects them. Call it holding the guild's invite lock.
func (s *Service) checkInviteCaps(ctx context.Context, guildID, channelID guildhall.Snowflake) error {
	invs, err := s.store.GuildInvites(ctx, guildID)
	if err != nil {
		return internal("guild invites", err)
	}
	chs, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return internal("channels", err)
	}
	now := s.now()
	guild, channel := 0, 0
	for _, inv := range invs {
		if _, live := inviteLive(inv, chs, now); !live {
			// ErrNotFound: a concurrent delete (DELETE /invites/{code}) was first.
			if err := s.store.DeleteInvite(ctx, inv.Code); err != nil && !errors.Is(err, ErrNotFound) {
				return internal("delete invite", err)
			}
			continue
		}
		guild++
		if inv.ChannelID == channelID {
			channel++
		}
	}
	if guild >= MaxInvitesPerGuild {
		return guildhall.ErrMaxInvites
	}
	if channel >= MaxInvitesPerChannel {
		return errMaxInvitesPerChannel
	}
	return nil
}

// inviteLive reports whether an invite can still be used, and its channel: not
// expired, not used up, and its channel still among the guild's chs. A dead
// invite answers Unknown Invite, is not listed, and does not count against the
// caps.
func inviteLive(inv guildhall.Invite, chs []guildhall.Channel, now time.Time) (guildhall.Channel, bool) {
	if inv.Expired(now) {
		return guildhall.Channel{}, false
	}
	i := slices.IndexFunc(chs, func(c guildhall.Channel) bool { return c.ID == inv.ChannelID })
	if i < 0 {
		return guildhall.Channel{}, false
	}
	return chs[i], true
}
