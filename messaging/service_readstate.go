package messaging

import (
	"context"
	"encoding/json"
	"errors"

	guildhall "github.com/guildhall/guildhall"
)

// Read states: how far each user has read each channel, the state behind bold
// channels and mention badges.
//
// An ack (POST /channels/{id}/messages/{id}/ack) is stored at once (durable, the
// same on every api process; Store.PutReadState, last ack wins by version) and
// announced with MESSAGE_ACK to the user's sessions. What is unread is what came
// after the ack: each channel's last_message_id is kept by the store as messages
// are written. The mention count is computed when read (ReadStates), from the
// messages after the ack point: nothing is written per recipient when a message
// mentions @everyone in a guild of 100,000, at the price of one history read per
// unread channel, bounded by MaxMentionScan messages each.

// MaxMentionScan bounds the messages after an ack point that are read to count
// mentions: a channel with more unread messages than this reports the mentions
// among its oldest MaxMentionScan unread ones.
const MaxMentionScan = 100

// MaxReadStateScans bounds the unread channels whose mentions one ReadStates
// call counts (each costs a history read); the others report zero.
const MaxReadStateScans = 200

// Ack marks channelID read by u up to messageID (which need not exist any more)
// and sends MESSAGE_ACK to u's sessions. The user must be able to view the
// channel. It returns the ack's version.
func (s *Service) Ack(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake) (int64, error) {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return 0, err
	}
	if messageID > s.ids.Next() { // no message can be newer than a fresh id
		return 0, guildhall.ErrUnknownMessage
	}
	version := s.now().UnixMicro()
	if err := s.store.PutReadState(ctx, u.ID, guildhall.ReadState{ChannelID: c.ID, LastMessageID: messageID, Version: version}); err != nil {
		return 0, internal("put read state", err)
	}
	data, err := json.Marshal(guildhall.MessageAck{ChannelID: c.ID, MessageID: messageID, Version: version})
	if err != nil {
		return 0, internal("encode ack", err)
	}
	ev := guildhall.Event{Type: guildhall.EventMessageAck, ChannelID: c.ID, UserID: u.ID, Data: data}
	if _, err := s.publish(ctx, ev, s.ids.Next().String()); err != nil {
		return 0, err
	}
	return version, nil
}

// ReadStates is READY's read_state for u: every channel u has acked and can
// still view, and every DM u takes part in (acked or not), each with the last
// message acked and the mentions of u after it. dms are u's DM channels (nil:
// looked up). It reads the store as it is, without the read barrier (one wait
// per channel would cost READY a round trip each): a message posted in the last
// few milliseconds may not be counted yet.
func (s *Service) ReadStates(ctx context.Context, u guildhall.User, dms []guildhall.PrivateChannel) ([]guildhall.ReadState, error) {
	acked, err := s.store.ReadStates(ctx, u.ID)
	if err != nil {
		return nil, internal("read states", err)
	}
	if dms == nil {
		if dms, err = s.PrivateChannels(ctx, u); err != nil {
			return nil, err
		}
	}
	byChannel := make(map[guildhall.Snowflake]int, len(acked))
	for i, rs := range acked {
		byChannel[rs.ChannelID] = i
	}
	for _, dm := range dms {
		if _, ok := byChannel[dm.ID]; !ok {
			byChannel[dm.ID] = len(acked)
			acked = append(acked, guildhall.ReadState{ChannelID: dm.ID})
		}
	}
	ids := make([]guildhall.Snowflake, 0, len(acked))
	for _, rs := range acked {
		ids = append(ids, rs.ChannelID)
	}
	last := map[guildhall.Snowflake]guildhall.Snowflake{}
	for i := 0; i < len(ids); i += MaxLastMessageQuery {
		part, err := s.store.LastMessageIDs(ctx, ids[i:min(i+MaxLastMessageQuery, len(ids))])
		if err != nil {
			return nil, internal("last message ids", err)
		}
		for k, v := range part {
			last[k] = v
		}
	}
	out := make([]guildhall.ReadState, 0, len(acked))
	scans := 0
	access := s.conversations(u)
	for _, rs := range acked {
		c, err := access.get(ctx, rs.ChannelID)
		if errors.Is(err, guildhall.ErrUnknownChannel) || errors.Is(err, guildhall.ErrMissingAccess) {
			continue // gone, or no longer visible
		}
		if err != nil {
			return nil, err
		}
		if last[rs.ChannelID] > rs.LastMessageID && scans < MaxReadStateScans && c.perms.Has(guildhall.PermReadMessageHistory) {
			scans++
			if rs.MentionCount, err = s.mentionCount(ctx, c, u.ID, rs.LastMessageID); err != nil {
				return nil, err
			}
		}
		out = append(out, rs)
	}
	return out, nil
}

// mentionCount counts the messages of c after ack that mention user.
func (s *Service) mentionCount(ctx context.Context, c *conversation, user, ack guildhall.Snowflake) (int, error) {
	after := ack
	if after == 0 {
		after = 1 // from the first message
	}
	ms, err := s.store.History(ctx, c.ID, HistoryQuery{After: after, Limit: MaxMentionScan})
	if err != nil {
		return 0, internal("history", err)
	}
	var roles []guildhall.Snowflake
	if c.guild != nil {
		roles = c.guild.Member.Roles
	}
	n := 0
	for i := range ms {
		if MentionsUser(&ms[i], user, roles, c.dm != nil) {
			n++
		}
	}
	return n, nil
}

// fillLastMessages sets each channel's LastMessageID from the store.
func (s *Service) fillLastMessages(ctx context.Context, chs []guildhall.Channel) error {
	for i := 0; i < len(chs); i += MaxLastMessageQuery {
		part := chs[i:min(i+MaxLastMessageQuery, len(chs))]
		ids := make([]guildhall.Snowflake, len(part))
		for j, c := range part {
			ids[j] = c.ID
		}
		last, err := s.store.LastMessageIDs(ctx, ids)
		if err != nil {
			return internal("last message ids", err)
		}
		for j := range part {
			part[j].LastMessageID = nil
			if id, ok := last[part[j].ID]; ok {
				part[j].LastMessageID = &id
			}
		}
	}
	return nil
}

// identifyConversations adds to an identify reply what READY says of the user's
// conversations: the DMs and the read states.
func (s *Service) identifyConversations(ctx context.Context, u guildhall.User, r *guildhall.IdentifyReply) error {
	dms, err := s.PrivateChannels(ctx, u)
	if err != nil {
		return err
	}
	states, err := s.ReadStates(ctx, u, dms)
	if err != nil {
		return err
	}
	r.PrivateChannels, r.ReadStates = dms, states
	return nil
}
