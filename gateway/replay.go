package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// replays reads resumes' missed events from the EVENTS stream: at most
// Config.MaxReplays at once on this gateway, each from a short-lived consumer
// the api creates for it, and answers what a resume must know of the stream
// first.
type replays struct {
	stream  jetstream.Stream
	api     replayConsumers
	timeout time.Duration // Config.APITimeout, for each consumer the api creates
	slots   chan struct{} // a slot per replay running

	mu      sync.Mutex // guards state, stateAt: the stream's state cached for resumes
	state   jetstream.StreamState
	stateAt time.Time
}

// replayConsumers creates a consumer for a replay and returns its name: the api
// (a gateway may not create consumers: see package nats, Permissions).
type replayConsumers interface {
	replay(ctx context.Context, req guildhall.ReplayRequest) (string, error)
}

var _ replayConsumers = apiClient{}

func newReplays(stream jetstream.Stream, api replayConsumers, slots int, timeout time.Duration) *replays {
	return &replays{stream: stream, api: api, timeout: timeout, slots: make(chan struct{}, slots)}
}

// replayable reports whether the stream still holds every event after seq, and
// whether seq is one the stream has reached.
//
// A reconnect storm asks this for every session at once, so the stream's state is
// cached for a second: the first sequence moves only as retention (hours) trims the
// stream, and a seq beyond the cached last sequence is checked again fresh.
func (r *replays) replayable(ctx context.Context, seq uint64) (bool, error) {
	st, err := r.streamState(ctx, false)
	if err == nil && seq > st.LastSeq {
		st, err = r.streamState(ctx, true)
	}
	if err != nil {
		return false, err
	}
	if seq > st.LastSeq {
		return false, nil
	}
	return st.Msgs == 0 || seq+1 >= st.FirstSeq, nil
}

func (r *replays) streamState(ctx context.Context, fresh bool) (jetstream.StreamState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !fresh && time.Since(r.stateAt) < time.Second {
		return r.state, nil
	}
	info, err := r.stream.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	r.state, r.stateAt = info.State, time.Now()
	return r.state, nil
}

// userQuietSince reports whether the stream holds no event for the user alone after
// seq (such events, a GUILD_CREATE on joining, are in no room).
func (r *replays) userQuietSince(ctx context.Context, uid guildhall.Snowflake, seq uint64) bool {
	msg, err := r.stream.GetLastMsgForSubject(ctx, ghnats.UserInSubject(uint64(uid)))
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

// newReplayView copies what visibility reads of r (the pump changes channels and
// roles in place) and of the session's membership m. Run it in the pump.
func newReplayView(r *room, m *membership) *replayView {
	state := r.state
	state.Channels = slices.Clone(state.Channels)
	state.Roles = slices.Clone(state.Roles)
	return &replayView{room: &room{id: r.id, state: state}, m: &membership{roles: m.roles, roleKey: m.roleKey}}
}

// replay sends the session's events with from < seq <= to, in stream order, past
// its held live frames.
func (r *replays) replay(s *Session, from, to uint64, views map[guildhall.Snowflake]*replayView) (int, error) {
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
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
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
		actx, acancel := context.WithTimeout(ctx, r.timeout)
		var name string
		if name, err = r.api.replay(actx, req); err == nil {
			cons, err = r.stream.Consumer(actx, name)
			if err != nil {
				dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = r.stream.DeleteConsumer(dctx, name)
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
		_ = r.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
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
			if replayVisible(views, ev, s.user.ID) && s.shard.ownsEvent(eventGuild(ev)) {
				if f := newDispatch(ev, seq).frameFor(s); f != nil {
					s.out.sendUnheld(f)
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
	return v != nil && v.room.mayView(ev.ChannelID, uid, v.m) && (ev.Requires == 0 || v.room.allows(ev.ChannelID, uid, v.m, ev.Requires))
}
