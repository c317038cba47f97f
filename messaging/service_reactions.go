package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Reactions travel like messages: each change is an event on the stream
// (MESSAGE_REACTION_ADD, _REMOVE, _REMOVE_ALL, _REMOVE_EMOJI) that gateways
// deliver and the Writer persists as a ReactionWrite, order-free by stream
// sequence, so they resume, replay and survive restarts exactly as messages do.
// Counts and "me" are read from the store (Store.Reactions) when a message is.

var (
	errUnknownEmoji  = &guildhall.Error{Status: 400, Code: 10014, Message: "Unknown Emoji"}
	errMaxReactions  = &guildhall.Error{Status: 400, Code: 30010, Message: "Maximum number of reactions reached (20)"}
	errReactionEmpty = &guildhall.Error{Status: 400, Code: 50035, Message: "Invalid Form Body"}
)

// MaxEmojiBytes bounds an emoji's UTF-8 length (the longest ZWJ sequences are
// about 35 bytes).
const MaxEmojiBytes = 64

// validEmoji checks the emoji of a reaction route: a unicode emoji (a sequence
// of symbols with their joiners, variation selectors, skin tones, keycaps and
// tags). Custom emojis ("name:id") are unknown: Guildhall has none.
func validEmoji(e string) (string, error) {
	if e == "" || len(e) > MaxEmojiBytes || !utf8.ValidString(e) || strings.ContainsRune(e, ':') {
		return "", errUnknownEmoji
	}
	symbols := 0
	runes := []rune(e)
	for i, r := range runes {
		switch {
		case unicode.Is(unicode.So, r), unicode.Is(unicode.Sk, r) && r >= 0x1F3FB && r <= 0x1F3FF:
			symbols++
		case r == 0x200D, r == 0xFE0F, r == 0xFE0E, r == 0x20E3, r >= 0xE0020 && r <= 0xE007F:
			// joiner, variation selectors, keycap, tags
		case r == '#' || r == '*' || (r >= '0' && r <= '9'):
			// a keycap's base: must be followed by FE0F 20E3 or 20E3
			if i+1 >= len(runes) || (runes[i+1] != 0xFE0F && runes[i+1] != 0x20E3) {
				return "", errUnknownEmoji
			}
			symbols++
		case r == 0x00A9 || r == 0x00AE || r == 0x203C || r == 0x2049 || r == 0x2122 || r == 0x2139 ||
			(r >= 0x2194 && r <= 0x21AA) || (r >= 0x231A && r <= 0x23FF) || (r >= 0x25AA && r <= 0x27BF) ||
			(r >= 0x2934 && r <= 0x2B55) || r == 0x3030 || r == 0x303D || r == 0x3297 || r == 0x3299:
			symbols++ // emoji that Unicode files under other categories
		default:
			return "", errUnknownEmoji
		}
	}
	if symbols == 0 {
		return "", errUnknownEmoji
	}
	return e, nil
}

// reactionTarget authorizes a reaction operation on a message and loads the
// message with its current reactions as u sees them.
func (s *Service) reactionTarget(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake) (*conversation, guildhall.Message, error) {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return nil, guildhall.Message{}, err
	}
	if !c.perms.Has(guildhall.PermReadMessageHistory) {
		return nil, guildhall.Message{}, guildhall.ErrMissingPerms
	}
	m, err := s.message(ctx, c, messageID)
	if isUnavailable(err) && c.dm == nil {
		// The store cannot answer: a recent message's reactions are in the
		// projection (projection_reactions.go).
		m, err = s.proj.recentReactions(ctx, c.GuildID, c.ID, messageID, u.ID)
		if err != nil {
			return nil, guildhall.Message{}, err
		}
		return c, m, nil
	}
	if err != nil {
		return nil, guildhall.Message{}, err
	}
	rs, err := s.store.Reactions(ctx, c.ID, []guildhall.Snowflake{m.ID}, u.ID)
	if err != nil {
		return nil, guildhall.Message{}, s.historyErr("reactions", err)
	}
	m.Reactions = rs[m.ID]
	return c, m, nil
}

func findReaction(m guildhall.Message, emoji string) (guildhall.Reaction, bool) {
	for _, r := range m.Reactions {
		if r.Emoji.Name == emoji {
			return r, true
		}
	}
	return guildhall.Reaction{}, false
}

// AddReaction reacts to a message as u (READ_MESSAGE_HISTORY needed, and
// ADD_REACTIONS to be the first with an emoji; at most 20 emojis per message;
// never in timeout) and publishes MESSAGE_REACTION_ADD. Reacting again with
// the same emoji changes nothing.
func (s *Service) AddReaction(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, emoji string) error {
	emoji, err := validEmoji(emoji)
	if err != nil {
		return err
	}
	c, m, err := s.reactionTarget(ctx, u, channelID, messageID)
	if err != nil {
		return err
	}
	if err := s.dmReachable(ctx, u, c); err != nil {
		return err
	}
	r, exists := findReaction(m, emoji)
	switch {
	case c.guild != nil && c.guild.TimedOut:
		// ADD_REACTIONS gates only a new emoji; a member in timeout may not
		// join an existing one either, as on Discord.
		return guildhall.ErrMissingPerms
	case exists && r.Me:
		return nil
	case !exists && !c.perms.Has(guildhall.PermAddReactions):
		return guildhall.ErrMissingPerms
	case !exists && len(m.Reactions) >= guildhall.MaxReactionEmojis:
		return errMaxReactions
	}
	d := guildhall.MessageReactionAdd{
		UserID: u.ID, ChannelID: c.ID, MessageID: m.ID, GuildID: c.GuildID, Emoji: guildhall.Emoji{Name: emoji},
		MessageAuthorID: m.Author.ID, BurstColors: []string{},
	}
	if mem := c.member(); mem != nil {
		mem.GuildID = 0
		if mem.Roles == nil {
			mem.Roles = []guildhall.Snowflake{}
		}
		d.Member = mem
	}
	return s.publishReaction(ctx, c, guildhall.EventMessageReactionAdd, u.ID, d)
}

// RemoveReaction removes user's emoji reaction to a message: u's own, or with
// MANAGE_MESSAGES anyone's (in a DM, only one's own). A reaction that is not
// there changes nothing.
func (s *Service) RemoveReaction(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, emoji string, user guildhall.Snowflake) error {
	emoji, err := validEmoji(emoji)
	if err != nil {
		return err
	}
	c, m, err := s.reactionTarget(ctx, u, channelID, messageID)
	if err != nil {
		return err
	}
	if user != u.ID && !c.perms.Has(guildhall.PermManageMessages) {
		return guildhall.ErrMissingPerms
	}
	if user == u.ID {
		if r, ok := findReaction(m, emoji); !ok || !r.Me {
			return nil
		}
	} else if ok, err := s.hasReacted(ctx, c, m.ID, emoji, user); err != nil || !ok {
		return err
	}
	d := guildhall.MessageReactionRemove{UserID: user, ChannelID: c.ID, MessageID: m.ID, GuildID: c.GuildID, Emoji: guildhall.Emoji{Name: emoji}}
	return s.publishReaction(ctx, c, guildhall.EventMessageReactionRemove, u.ID, d)
}

// hasReacted reports whether user reacted to a message with emoji.
func (s *Service) hasReacted(ctx context.Context, c *conversation, messageID guildhall.Snowflake, emoji string, user guildhall.Snowflake) (bool, error) {
	if user == 0 {
		return false, nil
	}
	ids, err := s.store.ReactionUsers(ctx, c.ID, messageID, emoji, user-1, 1)
	if err != nil {
		return false, s.historyErr("reaction users", err)
	}
	return len(ids) == 1 && ids[0] == user, nil
}

// RemoveReactions removes every reaction to a message (emoji empty) or every
// reaction with one emoji (MANAGE_MESSAGES needed) and publishes
// MESSAGE_REACTION_REMOVE_ALL or _REMOVE_EMOJI. Nothing to remove changes
// nothing.
func (s *Service) RemoveReactions(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, emoji string) error {
	if emoji != "" {
		var err error
		if emoji, err = validEmoji(emoji); err != nil {
			return err
		}
	}
	c, m, err := s.reactionTarget(ctx, u, channelID, messageID)
	if err != nil {
		return err
	}
	if !c.perms.Has(guildhall.PermManageMessages) {
		return guildhall.ErrMissingPerms
	}
	if emoji == "" {
		if len(m.Reactions) == 0 {
			return nil
		}
		d := guildhall.MessageReactionRemoveAll{ChannelID: c.ID, MessageID: m.ID, GuildID: c.GuildID}
		return s.publishReaction(ctx, c, guildhall.EventMessageReactionRemoveAll, u.ID, d)
	}
	if _, ok := findReaction(m, emoji); !ok {
		return nil
	}
	d := guildhall.MessageReactionRemoveEmoji{ChannelID: c.ID, MessageID: m.ID, GuildID: c.GuildID, Emoji: guildhall.Emoji{Name: emoji}}
	return s.publishReaction(ctx, c, guildhall.EventMessageReactionRemoveEmoji, u.ID, d)
}

// ReactionUsers pages the users who reacted to a message with emoji, by id,
// after the given one, at most limit (1..100).
func (s *Service) ReactionUsers(ctx context.Context, u guildhall.User, channelID, messageID guildhall.Snowflake, emoji string, after guildhall.Snowflake, limit int) ([]guildhall.User, error) {
	if limit < 1 || limit > 100 {
		return nil, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
	}
	emoji, err := validEmoji(emoji)
	if err != nil {
		return nil, err
	}
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return nil, err
	}
	if !c.perms.Has(guildhall.PermReadMessageHistory) {
		return nil, guildhall.ErrMissingPerms
	}
	m, err := s.message(ctx, c, messageID)
	if err != nil {
		return nil, err
	}
	ids, err := s.store.ReactionUsers(ctx, c.ID, m.ID, emoji, after, limit)
	if err != nil {
		return nil, internal("reaction users", err)
	}
	out := make([]guildhall.User, 0, len(ids))
	for _, id := range ids {
		ru, err := s.store.User(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, internal("reaction user", err)
		}
		out = append(out, ru)
	}
	return out, nil
}

func (s *Service) publishReaction(ctx context.Context, c *conversation, typ string, by guildhall.Snowflake, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return internal("encode reaction", err)
	}
	return s.publishConversation(ctx, c, c.event(typ, by, data), s.ids.Next().String())
}

// reactionWrite turns a reaction event into the store write the Writer applies.
func reactionWrite(typ string, data []byte, seq uint64) (MessageWrite, error) {
	var d struct {
		UserID    guildhall.Snowflake `json:"user_id"`
		ChannelID guildhall.Snowflake `json:"channel_id"`
		MessageID guildhall.Snowflake `json:"message_id"`
		Emoji     guildhall.Emoji     `json:"emoji"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return MessageWrite{}, err
	}
	w := MessageWrite{Seq: seq, Message: guildhall.Message{ID: d.MessageID, ChannelID: d.ChannelID}, Reaction: &ReactionWrite{Emoji: d.Emoji.Name, UserID: d.UserID}}
	switch typ {
	case guildhall.EventMessageReactionAdd:
		w.Reaction.Op = ReactionAdd
	case guildhall.EventMessageReactionRemove:
		w.Reaction.Op = ReactionRemove
	case guildhall.EventMessageReactionRemoveEmoji:
		w.Reaction.Op, w.Reaction.UserID = ReactionRemoveEmoji, 0
	case guildhall.EventMessageReactionRemoveAll:
		w.Reaction.Op, w.Reaction.Emoji, w.Reaction.UserID = ReactionRemoveAll, "", 0
	}
	if d.MessageID == 0 || d.ChannelID == 0 || (w.Reaction.Op != ReactionRemoveAll && w.Reaction.Emoji == "") ||
		((w.Reaction.Op == ReactionAdd || w.Reaction.Op == ReactionRemove) && d.UserID == 0) {
		return MessageWrite{}, errReactionEmpty
	}
	return w, nil
}
