package messaging

import (
	"context"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// Pins. A pin or unpin is published as CHANNEL_PINS_UPDATE (Discord's event)
// carrying guildhall.MessagePin for the Writer, which stores it like a message
// write: idempotent, order-free, versioned apart from the message's content (see
// PinWrite). Nothing is written to the store here.

// MaxPins is Discord's limit of pinned messages per channel. Two pins at the
// same instant may both pass it.
const MaxPins = 50

// ChannelPins lists a channel's pinned messages, the most recently pinned first
// (at most MaxPins+ of them), for a member who may read its history (without
// READ_MESSAGE_HISTORY the list is empty, as history is). Pins of before
// (non-zero) or later are left out, and at most limit (1..50) returned.
func (s *Service) ChannelPins(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, before time.Time, limit int) (pins []PinnedMessage, more bool, err error) {
	if limit < 1 || limit > MaxPins {
		return nil, false, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 50.")
	}
	_, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return nil, false, err
	}
	if !p.Has(guildhall.PermReadMessageHistory) {
		return []PinnedMessage{}, false, nil
	}
	all, err := s.pins(ctx, ch)
	if err != nil {
		return nil, false, err
	}
	out := make([]PinnedMessage, 0, min(limit, len(all)))
	for _, pm := range all {
		if !before.IsZero() && !pm.PinnedAt.Before(before) {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, pm)
	}
	// As History shows them: with their reactions, and a reply with the
	// message it answers as it is now (the stored reply quotes it as it was
	// when posted: deleted or edited since, it must not come back here).
	page := make([]guildhall.Message, len(out))
	for i, pm := range out {
		page[i] = pm.Message
	}
	if err := s.complete(ctx, ch.ID, page, u.ID); err != nil {
		return nil, false, err
	}
	for i := range out {
		out[i].Message = restMessage(page[i])
	}
	return out, more, nil
}

// pins reads a channel's pins after the read barrier.
func (s *Service) pins(ctx context.Context, ch guildhall.Channel) ([]PinnedMessage, error) {
	if err := s.barrier.Wait(ctx, ch.GuildID); err != nil {
		return nil, err
	}
	ps, err := s.store.Pins(ctx, ch.ID, MaxPinsRead)
	if err != nil {
		return nil, internal("pins", err)
	}
	return ps, nil
}

// PinMessage pins a message (MANAGE_MESSAGES in its channel); pinning one that
// is pinned changes nothing. Past MaxPins it answers Maximum number of pins.
func (s *Service) PinMessage(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, reason string) error {
	return s.setPin(ctx, u, channelID, messageID, true, reason)
}

// UnpinMessage unpins a message (MANAGE_MESSAGES in its channel); unpinning one
// that is not pinned changes nothing.
func (s *Service) UnpinMessage(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, reason string) error {
	return s.setPin(ctx, u, channelID, messageID, false, reason)
}

func (s *Service) setPin(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, pin bool, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	if err := need(p, guildhall.PermManageMessages); err != nil {
		return err
	}
	m, err := s.message(ctx, guildConversation(a, ch, p), messageID)
	if err != nil {
		return err
	}
	if m.Pinned == pin {
		return nil
	}
	all, err := s.pins(ctx, ch)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	var last *time.Time
	if pin {
		if len(all) >= MaxPins {
			return guildhall.ErrMaxPins
		}
		last = &now
	} else {
		for _, pm := range all {
			if pm.Message.ID != messageID {
				at := pm.PinnedAt
				last = &at
				break
			}
		}
	}
	ev, err := guildEvent(guildhall.EventChannelPinsUpdate, ch.GuildID, ch.ID, guildhall.ChannelPinsUpdate{GuildID: ch.GuildID, ChannelID: ch.ID, LastPinTimestamp: last})
	if err != nil {
		return err
	}
	ev.Pin = &guildhall.MessagePin{MessageID: messageID, Pinned: pin, At: now}
	if err := s.publishEvents(ctx, ev); err != nil {
		return err
	}
	action := guildhall.AuditMessageUnpin
	if pin {
		action = guildhall.AuditMessagePin
	}
	s.audit(ctx, a, reason, auditEntry{action: action, target: m.Author.ID.String(),
		options: &guildhall.AuditLogOptions{ChannelID: ch.ID.String(), MessageID: messageID.String()}})
	return nil
}
