package messaging

import (
	"context"
	"encoding/json"
	"errors"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Recent messages. Editing or deleting a message needs the message (its
// author, and for an edit the whole of it: MESSAGE_UPDATE carries it whole).
// The store has it, once the writer has written it; while the store is down
// the projection answers for the messages its held guilds received while held,
// the last ProjectionConfig.Messages of them. An older message answers 503, as
// history does.

// projMessage is the latest version of a recent message.
type projMessage struct {
	guild   *projGuild
	id      guildhall.Snowflake
	channel guildhall.Snowflake
	// data is the payload of its latest MESSAGE_CREATE or MESSAGE_UPDATE.
	data    []byte
	pinned  *bool // from CHANNEL_PINS_UPDATE, when one came
	deleted bool  // a delete is final
	// created: its MESSAGE_CREATE was applied, so every reaction to it since
	// was too (a reaction needs the message, which is stored after it is in
	// the stream) and reactions are known (projection_reactions.go).
	created   bool
	reactions []projReaction
	reactors  int  // users across reactions
	lost      bool // more than maxKeptReactors: the store answers
}

// messageIDs is what is read of a message event's payload to file it.
type messageIDs struct {
	ID  guildhall.Snowflake   `json:"id"`
	IDs []guildhall.Snowflake `json:"ids"` // MESSAGE_DELETE_BULK
	// Reaction events.
	MessageID guildhall.Snowflake `json:"message_id"`
	UserID    guildhall.Snowflake `json:"user_id"`
	Emoji     struct {
		Name string `json:"name"`
	} `json:"emoji"`
}

// message returns g's entry of message id, made if create.
func (p *projection) message(g *projGuild, id guildhall.Snowflake, create bool) *projMessage {
	if e := g.messages[id]; e != nil {
		return e.Value.(*projMessage)
	}
	if !create || p.cfg.Messages < 0 {
		return nil
	}
	m := &projMessage{guild: g, id: id}
	g.messages[id] = p.messages.PushFront(m)
	for p.messages.Len() > p.cfg.Messages {
		last := p.messages.Back()
		old := last.Value.(*projMessage)
		delete(old.guild.messages, old.id)
		p.messages.Remove(last)
	}
	return m
}

// messageIDs reads which messages a message event is about: a post's id is
// its Nats-Msg-Id (the api publishes it so, for dedupe), so the payload of the
// most frequent event is not decoded here; the others' payloads are.
func (p *projection) messageIDs(ev guildhall.Event, h natsgo.Header) messageIDs {
	var ids messageIDs
	if p.cfg.Messages < 0 {
		return ids
	}
	switch ev.Type {
	case guildhall.EventMessageCreate:
		if id, err := guildhall.ParseSnowflake(h.Get(natsgo.MsgIdHdr)); err == nil {
			ids.ID = id
			return ids
		}
	case guildhall.EventMessageUpdate, guildhall.EventMessageDelete, guildhall.EventMessageDeleteBulk,
		guildhall.EventMessageReactionAdd, guildhall.EventMessageReactionRemove,
		guildhall.EventMessageReactionRemoveAll, guildhall.EventMessageReactionRemoveEmoji:
	default:
		return ids
	}
	_ = json.Unmarshal(ev.Data, &ids)
	return ids
}

// noteMessage keeps a message's latest version (MESSAGE_CREATE, _UPDATE).
func (p *projection) noteMessage(g *projGuild, ev guildhall.Event, ids messageIDs) {
	if p.cfg.Messages < 0 || ids.ID == 0 {
		return
	}
	m := p.message(g, ids.ID, true)
	if m.deleted {
		return
	}
	m.channel, m.data = ev.ChannelID, ev.Data
	if ev.Type == guildhall.EventMessageCreate {
		m.created = true
	}
}

// noteDeleted marks deleted messages (MESSAGE_DELETE, _DELETE_BULK).
func (p *projection) noteDeleted(g *projGuild, ev guildhall.Event, ids messageIDs) {
	if p.cfg.Messages < 0 {
		return
	}
	if ids.ID != 0 {
		ids.IDs = append(ids.IDs, ids.ID)
	}
	for _, id := range ids.IDs {
		m := p.message(g, id, true)
		m.channel, m.data, m.deleted = ev.ChannelID, nil, true
	}
}

// notePin records a pin or unpin of a kept message.
func (p *projection) notePin(g *projGuild, ev guildhall.Event) {
	if ev.Pin == nil {
		return
	}
	if m := p.message(g, ev.Pin.MessageID, false); m != nil {
		pinned := ev.Pin.Pinned
		m.pinned = &pinned
	}
}

// recentMessage returns a message of a held guild as the stream has it now,
// once the projection has applied every event of the guild the stream held
// when asked. ErrUnknownMessage for a message deleted (or of another channel);
// errHistoryUnavailable for one it does not keep.
func (p *projection) recentMessage(ctx context.Context, guildID, channelID, id guildhall.Snowflake) (guildhall.Message, error) {
	return p.recent(ctx, guildID, channelID, id, 0, false)
}

// recentReactions is recentMessage with the message's reactions as user me
// sees them; errHistoryUnavailable when they are not known.
func (p *projection) recentReactions(ctx context.Context, guildID, channelID, id, me guildhall.Snowflake) (guildhall.Message, error) {
	return p.recent(ctx, guildID, channelID, id, me, true)
}

func (p *projection) recent(ctx context.Context, guildID, channelID, id, me guildhall.Snowflake, reactions bool) (guildhall.Message, error) {
	p.mu.Lock()
	stream := p.stream
	running := p.running
	p.mu.Unlock()
	if !running || p.cfg.Messages < 0 {
		return guildhall.Message{}, errHistoryUnavailable
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.Wait)
	defer cancel()
	var target uint64
	last, err := stream.GetLastMsgForSubject(wctx, ghnats.GuildInSubject(uint64(guildID)))
	switch {
	case err == nil:
		target = last.Sequence
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return guildhall.Message{}, guildhall.ErrServiceBusy
	}
	for {
		p.mu.Lock()
		if !p.running {
			p.mu.Unlock()
			return guildhall.Message{}, errHistoryUnavailable
		}
		if p.pos >= target {
			break // holding the lock
		}
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return guildhall.Message{}, ctx.Err()
			}
			return guildhall.Message{}, guildhall.ErrServiceBusy
		}
	}
	defer p.mu.Unlock()
	g := p.guilds[guildID]
	if g == nil || g.deleted {
		return guildhall.Message{}, errHistoryUnavailable
	}
	m := p.message(g, id, false)
	switch {
	case m == nil:
		return guildhall.Message{}, errHistoryUnavailable
	case m.deleted || m.channel != channelID:
		return guildhall.Message{}, guildhall.ErrUnknownMessage
	case reactions && (!m.created || m.lost):
		return guildhall.Message{}, errHistoryUnavailable
	}
	var msg guildhall.Message
	if err := json.Unmarshal(m.data, &msg); err != nil {
		return guildhall.Message{}, internal("decode recent message", err)
	}
	if m.pinned != nil {
		msg.Pinned = *m.pinned
	}
	if reactions {
		msg.Reactions = m.reactionsFor(me)
	}
	return restMessage(msg), nil
}
