package messaging

import (
	"slices"

	guildhall "github.com/guildhall/guildhall"
)

// Reactions of recent messages. Whether a user may react depends on the
// message's reactions (ADD_REACTIONS is needed only to be the first with an
// emoji, and a message has at most MaxReactionEmojis), so while the store is
// down the projection answers from the reaction events of the messages whose
// MESSAGE_CREATE it applied, applying them as the Writer stores them: an add
// of a user already there and a remove of one not there change nothing.

// maxKeptReactors bounds the users kept per message across its emojis; a
// message with more has its reactions read from the store only.
const maxKeptReactors = 100

// projReaction is one emoji's reaction to a kept message.
type projReaction struct {
	emoji string
	users []guildhall.Snowflake
}

// noteReaction applies a reaction event to a kept message.
func (p *projection) noteReaction(g *projGuild, ev guildhall.Event, ids messageIDs) {
	if p.cfg.Messages < 0 || ids.MessageID == 0 {
		return
	}
	m := p.message(g, ids.MessageID, false)
	if m == nil || m.deleted || !m.created || m.lost {
		return
	}
	i := slices.IndexFunc(m.reactions, func(r projReaction) bool { return r.emoji == ids.Emoji.Name })
	switch ev.Type {
	case guildhall.EventMessageReactionAdd:
		if i < 0 {
			m.reactions = append(m.reactions, projReaction{emoji: ids.Emoji.Name})
			i = len(m.reactions) - 1
		}
		if slices.Contains(m.reactions[i].users, ids.UserID) {
			return
		}
		if m.reactors == maxKeptReactors {
			m.reactions, m.reactors, m.lost = nil, 0, true
			return
		}
		m.reactions[i].users = append(m.reactions[i].users, ids.UserID)
		m.reactors++
	case guildhall.EventMessageReactionRemove:
		if i < 0 {
			return
		}
		r := &m.reactions[i]
		if j := slices.Index(r.users, ids.UserID); j >= 0 {
			r.users = slices.Delete(r.users, j, j+1)
			m.reactors--
		}
		if len(r.users) == 0 {
			m.reactions = slices.Delete(m.reactions, i, i+1)
		}
	case guildhall.EventMessageReactionRemoveEmoji:
		if i >= 0 {
			m.reactors -= len(m.reactions[i].users)
			m.reactions = slices.Delete(m.reactions, i, i+1)
		}
	case guildhall.EventMessageReactionRemoveAll:
		m.reactions, m.reactors = nil, 0
	}
}

// reactionsFor is the message's reactions as user me sees them.
func (m *projMessage) reactionsFor(me guildhall.Snowflake) []guildhall.Reaction {
	out := make([]guildhall.Reaction, 0, len(m.reactions))
	for _, r := range m.reactions {
		x := guildhall.NewReaction(r.emoji)
		x.Count, x.Me = len(r.users), slices.Contains(r.users, me)
		x.CountDetails.Normal = x.Count
		out = append(out, x)
	}
	return out
}
