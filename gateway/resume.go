package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// resume continues a session on this gateway, whichever gateway held it before.
//
// The seam with no gap: the session joins its rooms inside the pump at watermark w,
// holding live frames back; the events after the client's seq up to w are replayed
// from the EVENTS stream (filtered to the session's guilds and user, to the
// channels it may view, and by the intents of its IDENTIFY, as live frames are);
// then RESUMED; then the held live frames, all of which are
// after w. Each event is sent once: replay stops at w and live frames start after it.
//
// When the session's rooms here still hold every guild event it missed (see
// recentFor) and the user had no event of its own since, the replay sends those
// frames from memory instead: no JetStream consumer, no wait for a replay slot.
func (g *Gateway) resume(s *Session, raw json.RawMessage) {
	var d resumeData
	if json.Unmarshal(raw, &d) != nil || d.SessionID == "" {
		s.close(CloseDecodeError, "Error while decoding payload")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
	defer cancel()
	rep, err := g.api.identify(ctx, d.Token)
	if err != nil {
		metricResumes.WithLabelValues("api_error").Inc()
		s.close(CloseUnknownError, "Try again")
		return
	}
	if rep.Error != nil && !authFailed(rep.Error) {
		metricResumes.WithLabelValues("api_error").Inc()
		s.close(CloseUnknownError, "Try again")
		return
	}
	if rep.Error != nil {
		metricResumes.WithLabelValues("auth_failed").Inc()
		s.close(CloseAuthenticationFailed, "Authentication failed")
		return
	}
	gctx, gcancel := g.opContext()
	defer gcancel()
	entry, err := g.registry.Get(gctx, d.SessionID)
	reason := ""
	switch {
	case errors.Is(err, registry.ErrNotFound):
		reason = "unknown_or_expired"
	case err != nil:
		g.resumeLater(s, "registry_error", err)
		return
	case entry.UserID != rep.User.ID:
		reason = "wrong_user"
	default:
		ok, err := g.replayable(gctx, d.Seq)
		if err != nil {
			g.resumeLater(s, "stream_error", err)
			return
		}
		if !ok {
			reason = "seq_not_replayable"
		}
	}
	if reason != "" {
		metricResumes.WithLabelValues("invalid_" + reason).Inc()
		slog.Debug("resume refused", "session", d.SessionID, "seq", d.Seq, "reason", reason)
		s.send(opFrame(OpInvalidSession, []byte("false")))
		return
	}

	if entry.Node != g.cfg.Node {
		_ = g.hub.nc.Publish(kickSubject(entry.Node), []byte(d.SessionID))
	}
	s.user = rep.User
	s.id = d.SessionID
	s.intents = guildhall.IntentsAll
	if entry.Intents != nil {
		s.intents = *entry.Intents
	}
	s.identified.Store(true)
	g.mu.Lock()
	old := g.sessions[s.id]
	g.sessions[s.id] = s
	g.mu.Unlock()
	if old != nil && old != s {
		old.resumable.Store(true)
		old.close(CloseUnknownError, "session resumed on another connection")
	}

	s.hold()
	var w uint64
	views := map[guildhall.Snowflake]*replayView{}
	var recent []*frame
	inMemory := false
	cctx, ccancel := g.opContext()
	defer ccancel()
	ok := g.joinAtCut(cctx, s, rep, func(at uint64, _ []*room) {
		w = at
		for id, m := range s.guilds {
			r := g.hub.rooms[id]
			views[id] = &replayView{room: &room{id: id, state: r.state}, m: &membership{roles: m.roles, roleKey: m.roleKey}}
		}
		recent, inMemory = g.hub.recentFor(s, d.Seq)
	})
	if !ok {
		metricResumes.WithLabelValues("api_error").Inc()
		return
	}
	// Read after the cut: an event of the user's own up to w is in the stream by now.
	if inMemory && !g.userQuietSince(cctx, s.user.ID, d.Seq) {
		inMemory = false
	}
	n := len(recent)
	var replayErr error
	if inMemory {
		for _, f := range recent {
			s.sendDirect(f)
		}
		metricResumeReplays.WithLabelValues("memory").Inc()
	} else {
		metricResumeReplays.WithLabelValues("stream").Inc()
		n, replayErr = g.replay(s, d.Seq, w, views)
	}
	if replayErr != nil {
		// Without the replay the session would have a gap: make the client start over.
		metricResumes.WithLabelValues("replay_failed").Inc()
		slog.Warn("resume: replay", "session", s.id, "err", replayErr)
		s.send(opFrame(OpInvalidSession, []byte("false")))
		s.close(CloseUnknownError, "resume failed")
		return
	}
	s.sendDirect(dispatchFrame(guildhall.EventResumed, w, []byte("{}")))
	s.release()
	metricResumes.WithLabelValues("ok").Inc()
	g.sessionStarted(s, nil)
	slog.Debug("resumed", "session", s.id, "from", d.Seq, "to", w, "replayed", n)
	// A failed put leaves the entry of the previous node, which keeps the session
	// resumable until the next refresh here takes over.
	_ = g.putRegistry(s)
}

// replayable reports whether the stream still holds every event after seq, and
// whether seq is one the stream has reached.
//
// A reconnect storm asks this for every session at once, so the stream's state is
// cached for a second: the first sequence moves only as retention (hours) trims the
// stream, and a seq beyond the cached last sequence is checked again fresh.
func (g *Gateway) replayable(ctx context.Context, seq uint64) (bool, error) {
	st, err := g.streamState(ctx, false)
	if err == nil && seq > st.LastSeq {
		st, err = g.streamState(ctx, true)
	}
	if err != nil {
		return false, err
	}
	if seq > st.LastSeq {
		return false, nil
	}
	return st.Msgs == 0 || seq+1 >= st.FirstSeq, nil
}

// resumeLater answers a resume that could not be checked (NATS did not answer in
// time) with 4000: the session may still be resumable, and the client reconnects
// and resumes again. INVALID_SESSION would throw the session away and make the
// client identify afresh, missing what it could have replayed.
func (g *Gateway) resumeLater(s *Session, why string, err error) {
	metricResumes.WithLabelValues("retry_" + why).Inc()
	slog.Warn("resume: try again", "why", why, "err", err)
	s.close(CloseUnknownError, "Try again")
}

func (g *Gateway) streamState(ctx context.Context, fresh bool) (jetstream.StreamState, error) {
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	if !fresh && time.Since(g.stateAt) < time.Second {
		return g.state, nil
	}
	info, err := g.stream.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	g.state, g.stateAt = info.State, time.Now()
	return g.state, nil
}

// recentFor collects, in the pump at a cut, the session's guild events after seq
// from its rooms' recent events: those it may see (as replayVisible decides), in
// stream order. False when a room cannot vouch for every one of them.
func (h *Hub) recentFor(s *Session, seq uint64) ([]*frame, bool) {
	var got []recentEvent
	for id, m := range s.guilds {
		r := h.rooms[id]
		if r == nil || !h.covers(r, seq) {
			return nil, false
		}
		r.recent.after(seq, func(e recentEvent) {
			if r.mayView(e.channel, s.user.ID, m) {
				got = append(got, e)
			}
		})
	}
	slices.SortFunc(got, func(a, b recentEvent) int { return cmp.Compare(a.seq, b.seq) })
	frames := make([]*frame, 0, len(got))
	for _, e := range got {
		if f := e.d.frameFor(s); f != nil {
			frames = append(frames, f)
		}
	}
	return frames, true
}

// userQuietSince reports whether the stream holds no event for the user alone after
// seq (such events, a GUILD_CREATE on joining, are in no room).
func (g *Gateway) userQuietSince(ctx context.Context, uid guildhall.Snowflake, seq uint64) bool {
	msg, err := g.stream.GetLastMsgForSubject(ctx, ghnats.UserInSubject(uint64(uid)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	return err == nil && msg.Sequence <= seq
}

// replayView is a copy of a room's state taken at the seam, for filtering replayed
// events by channel visibility outside the pump.
type replayView struct {
	room *room
	m    *membership
}

// replay sends the session's events with from < seq <= to, in stream order.
func (g *Gateway) replay(s *Session, from, to uint64, views map[guildhall.Snowflake]*replayView) (int, error) {
	if from >= to {
		return 0, nil
	}
	req := guildhall.ReplayRequest{User: s.user.ID, After: from}
	for id := range views {
		req.Guilds = append(req.Guilds, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Each replay holds a consumer on the stream while it runs; a reconnect storm
	// must not ask for thousands at once (JetStream bounds consumers per stream).
	select {
	case g.replays <- struct{}{}:
		defer func() { <-g.replays }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	// The api creates the consumer (a gateway may not: see package nats,
	// Permissions); this side fetches from it and deletes it. Creating it is a
	// JetStream API call, which a busy cluster may refuse for a moment (a
	// reconnect storm makes many at once): try a few times.
	var cons jetstream.Consumer
	var err error
	for attempt := range 4 {
		actx, acancel := context.WithTimeout(ctx, g.cfg.APITimeout)
		var name string
		if name, err = g.api.replay(actx, req); err == nil {
			cons, err = g.stream.Consumer(actx, name)
			if err != nil {
				dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = g.stream.DeleteConsumer(dctx, name)
				dcancel()
			}
		}
		acancel()
		if err == nil {
			break
		}
		time.Sleep(time.Duration(50<<attempt)*time.Millisecond + time.Duration(rand.IntN(50))*time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = g.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
		dcancel()
	}()
	sent := 0
	var delivered uint64
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return sent, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return sent, err
			}
			// A consumer without acks sends each event once: one lost on the
			// way (this connection's buffers overflowed) would be a silent gap.
			if md.Sequence.Consumer != delivered+1 {
				return sent, fmt.Errorf("replay: delivery %d after %d: events lost", md.Sequence.Consumer, delivered)
			}
			delivered = md.Sequence.Consumer
			seq := md.Sequence.Stream
			if seq > to {
				return sent, nil
			}
			ev := ghnats.DecodeEvent(natsgo.Header(msg.Headers()), msg.Data())
			if replayVisible(views, ev, s.user.ID) {
				if f := newDispatch(ev, seq).frameFor(s); f != nil {
					s.sendDirect(f)
					sent++
				}
			}
			if seq == to || md.NumPending == 0 {
				return sent, nil
			}
		}
		if err := batch.Error(); err != nil {
			return sent, err
		}
		if got == 0 {
			// Nothing more matches before the stream's end.
			return sent, nil
		}
	}
}

func replayVisible(views map[guildhall.Snowflake]*replayView, ev guildhall.Event, uid guildhall.Snowflake) bool {
	if ev.GuildID == 0 {
		return ev.UserID == uid
	}
	v := views[ev.GuildID]
	return v != nil && v.room.mayView(ev.ChannelID, uid, v.m)
}
