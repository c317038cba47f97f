package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/registry"
)

// resume handles op 6 RESUME: it continues a session on this gateway, whichever
// gateway held it before.
//
// The seam with no gap: the session holds its live frames back and joins its
// rooms at a cut, at watermark w (pump.joinResumed); the events after the
// client's seq up to w are replayed, filtered to the session's guilds and user,
// to the channels it may view, and by the intents of its IDENTIFY, as live frames
// are; then RESUMED; then the held live frames, all of which are after w. Each
// event is sent once: the replay stops at w and live frames start after it.
//
// The replay comes from memory when the session's rooms here still hold every
// guild event it missed (recent.go), the stream confirms that they applied every
// event of their guilds up to the cut, and the user had no event of its own
// since: one batch direct get, no JetStream consumer, no wait for a replay slot.
// Otherwise it reads the EVENTS stream (replay.go).
func (g *Gateway) resume(s *Session, raw json.RawMessage) {
	var d resumeData
	if json.Unmarshal(raw, &d) != nil || d.SessionID == "" {
		s.close(CloseDecodeError, "Error while decoding payload")
		return
	}
	d.Token = bareToken(d.Token)
	since := g.pump.current() // the memberships resumable reads are at least this new (see join.go)
	rep, entry, ok := g.resumable(s, d)
	if !ok {
		return
	}
	s.user = rep.User
	s.tokenHash = guildhall.TokenHash(d.Token)
	s.id = d.SessionID
	// The entry names this connection from here on; of two resumes racing for
	// the session, the one that wrote first has it, and the other one tries again.
	tctx, tcancel := g.opContext()
	entry, err := g.takeOverLeft(tctx, s, entry)
	tcancel()
	switch {
	case errors.Is(err, errResumeExpired):
		g.metrics.Resumes.WithLabelValues("invalid_expired").Inc()
		s.send(opFrame(OpInvalidSession, []byte("false")))
		return
	case errors.Is(err, registry.ErrConflict):
		g.resumeLater(s, rep.User.ID, "registry_conflict", err)
		return
	case err != nil:
		g.resumeLater(s, rep.User.ID, "registry_error", err)
		return
	}
	g.sessions.kickPrevious(entry)
	s.start = entry.Start
	s.intents = guildhall.IntentsAll
	if entry.Intents != nil {
		s.intents = *entry.Intents
	}
	// The session keeps the shard of its IDENTIFY, and so its guilds.
	s.shard, _ = parseShard(entry.Shard)
	rep.Members = s.shard.filterMembers(rep.Members)
	s.identified.Store(true)
	g.takeSession(s)

	s.out.hold()
	jctx, jcancel := g.joinContext()
	cut, err := g.pump.joinResumed(jctx, s, rep.Members, since, d.Seq)
	jcancel()
	if err != nil {
		g.metrics.Resumes.WithLabelValues("api_error").Inc()
		g.resumes.refund(s.user.ID) // the client tries again: the failure was ours
		return
	}
	ctx, cancel := g.opContext()
	defer cancel()
	// Memory only when the stream confirms that the rooms missed nothing up to
	// the cut (NATS may have lost events that no later event revealed yet).
	fromMemory := cut.fromMemory && g.replays.complete(ctx, s.user.ID, d.Seq, cut)
	n := len(cut.recent)
	if fromMemory {
		for _, f := range cut.recent {
			s.out.sendUnheld(f)
		}
		g.metrics.ResumeReplays.WithLabelValues("memory").Inc()
	} else {
		g.metrics.ResumeReplays.WithLabelValues("stream").Inc()
		if n, err = g.replays.replay(s, d.Seq, cut.w, cut.views); err != nil {
			// Without the replay the session would have a gap. The failure is
			// ours (the stream was out of reach, a replay lost a message): the
			// client resumes again (4000) and the entry stays, marked left when
			// this connection closes.
			g.resumeLater(s, s.user.ID, "replay_failed", err)
			return
		}
	}
	s.out.sendUnheld(dispatchFrame(guildhall.EventResumed, cut.w, []byte("{}")))
	s.out.release()
	g.metrics.Resumes.WithLabelValues("ok").Inc()
	g.presence.started(s, nil)
	g.log.Debug("resumed", "session", s.id, "from", d.Seq, "to", cut.w, "replayed", n)
}

// resumable checks a RESUME: the token (the api), the session's registry entry
// (it exists, is the same user's, and the session is within its resume window:
// its client left, or its gateway was last seen, no longer ago than that), and
// that the stream still holds every event after seq. It answers the client itself when the resume cannot go on:
// INVALID_SESSION (d=false) when the session cannot be resumed, 4000 when that
// could not be checked (NATS did not answer in time: the session may still be
// resumable, and the client resumes again; INVALID_SESSION would throw it away).
func (g *Gateway) resumable(s *Session, d resumeData) (guildhall.IdentifyReply, registry.Session, bool) {
	ctx, cancel := g.opContext()
	defer cancel()
	rep, err := g.api.identify(ctx, d.Token)
	switch {
	case err != nil || rep.Error != nil && !errors.Is(rep.Error, guildhall.ErrUnauthorized):
		g.metrics.Resumes.WithLabelValues("api_error").Inc()
		s.close(CloseUnknownError, "Try again")
		return rep, registry.Session{}, false
	case rep.Error != nil:
		g.metrics.Resumes.WithLabelValues("auth_failed").Inc()
		s.close(CloseAuthenticationFailed, "Authentication failed")
		return rep, registry.Session{}, false
	}
	if !g.resumes.allow(rep.User.ID, time.Now()) {
		g.metrics.Resumes.WithLabelValues("rate_limited").Inc()
		s.close(CloseRateLimited, "Too many resumes: retry later")
		return rep, registry.Session{}, false
	}
	gctx, gcancel := g.opContext()
	defer gcancel()
	entry, err := g.sessions.entry(gctx, d.SessionID)
	reason := ""
	switch {
	case errors.Is(err, registry.ErrNotFound):
		reason = "unknown_or_expired"
	case err != nil:
		g.resumeLater(s, rep.User.ID, "registry_error", err)
		return rep, entry, false
	case entry.UserID != rep.User.ID:
		reason = "wrong_user"
	case d.Seq < entry.Start:
		// Before the session existed: events it never had (older messages,
		// deleted ones, edits' originals, a guild's past before the user joined).
		reason = "seq_before_start"
	default:
		live, err := g.sessions.resumable(gctx, entry)
		if err != nil {
			g.resumeLater(s, rep.User.ID, "registry_error", err)
			return rep, entry, false
		}
		if !live {
			reason = "expired"
			break
		}
		ok, err := g.replays.replayable(gctx, d.Seq)
		if err != nil {
			g.resumeLater(s, rep.User.ID, "stream_error", err)
			return rep, entry, false
		}
		if !ok {
			reason = "seq_not_replayable"
		}
	}
	if reason != "" {
		g.metrics.Resumes.WithLabelValues("invalid_" + reason).Inc()
		g.log.Debug("resume refused", "session", d.SessionID, "seq", d.Seq, "reason", reason)
		s.send(opFrame(OpInvalidSession, []byte("false")))
		return rep, entry, false
	}
	return rep, entry, true
}

// resumeLater answers a resume that could not be checked with 4000 (see
// resumable). It does not count against the user's resumes: the client tries
// again because this side could not answer.
func (g *Gateway) resumeLater(s *Session, user guildhall.Snowflake, why string, err error) {
	g.resumes.refund(user)
	g.metrics.Resumes.WithLabelValues("retry_" + why).Inc()
	g.log.Warn("resume: try again", "why", why, "err", err)
	s.close(CloseUnknownError, "Try again")
}

// errResumeExpired: the session's window closed while a resume took it over.
var errResumeExpired = errors.New("gateway: the session's resume window closed")

// takeOverLeft takes the session of entry over for s and returns the entry as
// written. When the entry changed since the checks read it only because the
// previous connection's leaving was recorded (a client that resumes at once
// races its old connection's close), it is read again and taken over at its
// new revision; any other change (another resume took it) is
// registry.ErrConflict, and the client resumes again.
func (g *Gateway) takeOverLeft(ctx context.Context, s *Session, entry registry.Session) (registry.Session, error) {
	err := g.sessions.takeOver(ctx, s, entry)
	if !errors.Is(err, registry.ErrConflict) {
		return entry, err
	}
	now, rerr := g.sessions.entry(ctx, entry.ID)
	switch {
	case rerr != nil:
		return entry, err
	case now.UserID != entry.UserID || now.DisconnectedAt.IsZero():
		return entry, err // held by another connection now
	}
	if live, lerr := g.sessions.resumable(ctx, now); lerr != nil || !live {
		if lerr != nil {
			return entry, lerr
		}
		return entry, errResumeExpired
	}
	return now, g.sessions.takeOver(ctx, s, now)
}
