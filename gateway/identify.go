package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/registry"
)

// identify handles op 2 IDENTIFY: check the payload and the token (the api),
// take a session start (the start limiter), put the session in the registry, then
// join its guilds at a cut, where READY and the GUILD_CREATEs are queued.
func (g *Gateway) identify(s *Session, raw json.RawMessage) {
	var d identifyData
	if json.Unmarshal(raw, &d) != nil {
		s.close(CloseDecodeError, "Error while decoding payload")
		return
	}
	intents, ok := identifyIntents(d.Intents)
	if !ok {
		g.metrics.Identifies.WithLabelValues("invalid_intents").Inc()
		s.close(CloseInvalidIntents, "Invalid intent(s)")
		return
	}
	shard, ok := parseShard(d.Shard)
	if !ok {
		g.metrics.Identifies.WithLabelValues("invalid_shard").Inc()
		s.close(CloseInvalidShard, "Invalid shard")
		return
	}
	d.Token = bareToken(d.Token)
	if d.Token == "" {
		g.metrics.Identifies.WithLabelValues("auth_failed").Inc()
		s.close(CloseAuthenticationFailed, "Authentication failed")
		return
	}
	if !g.identifySlot() {
		// Shed, keeping the connection: the client identifies again in 1–5 s.
		g.metrics.Identifies.WithLabelValues("shed").Inc()
		g.restartIdentifyDeadline(s) // the wait is the server's, not the client's
		s.send(opFrame(OpInvalidSession, []byte("false")))
		return
	}
	defer func() { <-g.identifies }()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
	defer cancel()
	since := g.pump.current() // the memberships below are at least this new (see join.go)
	rep, err := g.api.identify(ctx, d.Token)
	if err != nil {
		g.metrics.Identifies.WithLabelValues("api_error").Inc()
		g.log.Warn("identify: api", "err", err)
		s.close(CloseUnknownError, "Try again")
		return
	}
	if rep.Error != nil {
		if !errors.Is(rep.Error, guildhall.ErrUnauthorized) {
			g.metrics.Identifies.WithLabelValues("api_error").Inc()
			s.close(CloseUnknownError, "Try again")
			return
		}
		g.metrics.Identifies.WithLabelValues("auth_failed").Inc()
		s.close(CloseAuthenticationFailed, "Authentication failed")
		return
	}
	// A sharded session starts in its shard's bucket (shard_id %
	// max_concurrency); an unsharded one ([0, 1] or none) in any free bucket.
	limiterShard := -1
	if shard.sharded() {
		limiterShard = shard.id
	}
	if !g.allowStart(s, rep.User.ID, limiterShard) {
		return
	}
	s.user = rep.User
	s.tokenHash = guildhall.TokenHash(d.Token)
	s.id = randomHex(16)
	s.intents = intents
	s.shard = shard
	// READY lists, and the session joins, only the guilds of its shard.
	rep.Members = shard.filterMembers(rep.Members)
	// The cut comes after the entry is written; until then the watermark is as
	// close a floor as there is (it can only be lower than READY's s).
	s.start = g.pump.current()
	s.out.compressPayloads(d.Compress)
	// The registry entry exists before READY: a client that got a session id can
	// always resume it, even if this gateway dies the next moment.
	if err := g.sessions.started(s); err != nil {
		g.metrics.Identifies.WithLabelValues("api_error").Inc()
		s.close(CloseUnknownError, "Try again")
		return
	}
	cctx, ccancel := g.joinContext()
	defer ccancel()
	// READY and the GUILD_CREATEs are queued at the cut, before any live frame.
	w, err := g.pump.joinIdentified(cctx, s, rep.Members, since, readyPayload(s, rep), g.counts)
	if err != nil {
		g.metrics.Identifies.WithLabelValues("api_error").Inc()
		// The client got no READY, so no session id: nothing can resume this.
		ectx, ecancel := g.opContext()
		g.sessions.end(ectx, s)
		ecancel()
		return
	}
	// The session's floor is READY's s. Should this write fail, the one before
	// stands (lower, never higher) until the next refresh.
	s.start = readySeq(w)
	g.sessions.startAt(s)
	s.identified.Store(true)
	g.takeSession(s)
	g.metrics.Identifies.WithLabelValues("ok").Inc()
	g.presence.started(s, d.Presence)
}

// allowStart asks the start limiter; false when it refused (the session is closed
// with 4008). The limiter protects the tier; when its KV is too slow to answer,
// refusing would make every client retry at once and feed the storm it guards
// against, so the identify goes through uncounted, and the next ones for
// limiterTimeout do not ask.
func (g *Gateway) allowStart(s *Session, user guildhall.Snowflake, shard int) bool {
	if time.Now().UnixNano() < g.limiterDownUntil.Load() {
		g.metrics.Identifies.WithLabelValues("limiter_skipped").Inc()
		return true
	}
	// Waiting long for a limiter that fails open only holds an identify slot.
	ctx, cancel := context.WithTimeout(context.Background(), min(g.cfg.APITimeout, limiterTimeout))
	defer cancel()
	err := g.limiter.Allow(ctx, user, shard)
	var limited *registry.ErrStartLimited
	switch {
	case err == nil:
		return true
	case errors.As(err, &limited):
		g.metrics.Identifies.WithLabelValues("rate_limited").Inc()
		s.close(CloseRateLimited, fmt.Sprintf("Session start limit: retry after %.1fs", limited.RetryAfter.Seconds()))
		return false
	}
	g.limiterDownUntil.Store(time.Now().Add(limiterTimeout).UnixNano())
	g.metrics.Identifies.WithLabelValues("limiter_unavailable").Inc()
	g.log.Warn("identify: start limiter unavailable; allowing", "err", err)
	return true
}

// limiterTimeout bounds the start limiter's KV round trips in an identify.
const limiterTimeout = time.Second

// identifySlot takes a slot of Config.MaxIdentifies, waiting at most
// Config.IdentifyWait; false when none freed up.
func (g *Gateway) identifySlot() bool {
	select {
	case g.identifies <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(g.cfg.IdentifyWait)
	defer t.Stop()
	select {
	case g.identifies <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func readyPayload(s *Session, rep guildhall.IdentifyReply) []byte {
	ready := readyData{
		V: 10, User: rep.User, SessionID: s.id, SessionType: "normal",
		ResumeGatewayURL: s.resumeURL,
		Guilds:           make([]unavailableGuild, len(rep.Members)),
		Application:      readyApplication{ID: rep.User.ID},
		PrivateChannels:  rep.PrivateChannels, Relationships: []struct{}{}, Presences: []struct{}{},
		ReadState: readState{Entries: rep.ReadStates},
	}
	if ready.PrivateChannels == nil || !s.shard.ownsGuildless() {
		// DMs are shard 0's, their channels with them (shard.go).
		ready.PrivateChannels = []guildhall.PrivateChannel{}
	}
	if ready.ReadState.Entries == nil {
		ready.ReadState.Entries = []guildhall.ReadState{}
	}
	ready.Shard = s.shard.array()
	for i, m := range rep.Members {
		ready.Guilds[i] = unavailableGuild{ID: m.GuildID, Unavailable: true}
	}
	b, _ := json.Marshal(ready)
	return b
}
