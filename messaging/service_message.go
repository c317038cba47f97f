package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// errNonTextChannel is Discord's answer to sending into a category.
var errNonTextChannel = &guildhall.Error{Status: 400, Code: 50008, Message: "Cannot send messages in a non-text channel"}

// MaxNonce is Discord's limit on a string nonce.
const MaxNonce = 25

// NewMessage is what posting a message takes.
type NewMessage struct {
	Content string
	// Nonce is echoed in the answer and in MESSAGE_CREATE; a string of at most 25
	// characters or an integer (json.Number), as Discord allows.
	Nonce any
	TTS   bool
}

// validContent checks message content: 1..2000 characters after trimming spaces.
func validContent(content string) error {
	if strings.TrimSpace(content) == "" {
		return guildhall.ErrEmptyMessage
	}
	if utf8.RuneCountInString(content) > guildhall.MaxMessageContent {
		return guildhall.FieldError("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
	}
	return nil
}

func validNonce(n any) error {
	switch v := n.(type) {
	case nil:
	case string:
		if len(v) > MaxNonce {
			return guildhall.FieldError("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
		}
	case json.Number:
		if _, err := v.Int64(); err != nil {
			return guildhall.FieldError("nonce", "NUMBER_TYPE_COERCE", "Value is not a valid integer.")
		}
	default:
		return guildhall.FieldError("nonce", "BASE_TYPE_STRING", "Must be a string or an integer.")
	}
	return nil
}

// restMessage is a message as REST shows it: no guild_id and no member (those are
// extra fields of MESSAGE_CREATE), no nonce unless echoing a post.
func restMessage(m guildhall.Message) guildhall.Message {
	m.GuildID = 0
	m.Member = nil
	m.Nonce = nil
	fillMessageSlices(&m)
	return m
}

func fillMessageSlices(m *guildhall.Message) {
	if m.Mentions == nil {
		m.Mentions = []guildhall.User{}
	}
	if m.MentionRoles == nil {
		m.MentionRoles = []guildhall.Snowflake{}
	}
	if m.Attachments == nil {
		m.Attachments = []struct{}{}
	}
	if m.Embeds == nil {
		m.Embeds = []struct{}{}
	}
	if m.Components == nil {
		m.Components = []struct{}{}
	}
}

// dispatchMessage is a message as MESSAGE_CREATE and MESSAGE_UPDATE carry it: with
// guild_id and the author's member (without guild_id, as Discord nests it).
func dispatchMessage(m guildhall.Message, guildID guildhall.Snowflake, author guildhall.Member) ([]byte, error) {
	m.GuildID = guildID
	author.GuildID = 0
	if author.Roles == nil {
		author.Roles = []guildhall.Snowflake{}
	}
	m.Member = &author
	fillMessageSlices(&m)
	return json.Marshal(m)
}

// PostMessage validates and authorizes a message, gives it a snowflake and
// publishes MESSAGE_CREATE to the stream with Nats-Msg-Id = the message id. It
// returns once the stream has stored the event; the Writer persists it to the
// store, and History waits for that (read your writes).
func (s *Service) PostMessage(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, nm NewMessage) (guildhall.Message, error) {
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Message{}, err
	}
	if ch.Type != guildhall.ChannelTypeGuildText {
		return guildhall.Message{}, errNonTextChannel
	}
	if !p.Has(guildhall.PermSendMessages) {
		return guildhall.Message{}, guildhall.ErrMissingPerms
	}
	if err := validContent(nm.Content); err != nil {
		return guildhall.Message{}, err
	}
	if err := validNonce(nm.Nonce); err != nil {
		return guildhall.Message{}, err
	}
	if err := s.checkSlowmode(ctx, u, ch, p); err != nil {
		return guildhall.Message{}, err
	}
	id := s.ids.Next()
	m := guildhall.Message{
		ID:        id,
		ChannelID: ch.ID,
		Author:    u,
		Content:   nm.Content,
		Timestamp: id.Time(),
		TTS:       nm.TTS,
		Nonce:     nm.Nonce,
	}
	data, err := dispatchMessage(m, ch.GuildID, a.Member)
	if err != nil {
		return guildhall.Message{}, internal("encode message", err)
	}
	ev := guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: ch.GuildID, ChannelID: ch.ID, UserID: u.ID, Data: data}
	if _, err := s.publish(ctx, ev, id.String()); err != nil {
		return guildhall.Message{}, err
	}
	out := restMessage(m)
	out.Nonce = nm.Nonce
	return out, nil
}

// validQuery checks a history query: at most one of Before, After, Around and a
// limit of 1..100.
func validQuery(q HistoryQuery) error {
	n := 0
	for _, v := range []guildhall.Snowflake{q.Before, q.After, q.Around} {
		if v != 0 {
			n++
		}
	}
	if n > 1 {
		return guildhall.FieldError("around", "BASE_TYPE_INVALID", "Only one of before, after and around may be given.")
	}
	if q.Limit < 1 || q.Limit > 100 {
		return guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
	}
	return nil
}

// History pages a channel's messages, newest first (see HistoryQuery). It first
// waits for the Writer to have persisted every event of the guild that the stream
// holds (the read barrier), so a message whose post has returned is always in the
// page; when the Writer is too far behind it answers ErrServiceBusy rather than a
// stale page. Without READ_MESSAGE_HISTORY the page is empty, as on Discord.
func (s *Service) History(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, q HistoryQuery) ([]guildhall.Message, error) {
	if err := validQuery(q); err != nil {
		return nil, err
	}
	_, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return nil, err
	}
	if !p.Has(guildhall.PermReadMessageHistory) {
		return []guildhall.Message{}, nil
	}
	if err := s.barrier.Wait(ctx, ch.GuildID); err != nil {
		return nil, err
	}
	ms, err := s.store.History(ctx, ch.ID, q)
	if err != nil {
		return nil, internal("history", err)
	}
	out := make([]guildhall.Message, len(ms))
	for i, m := range ms {
		out[i] = restMessage(m)
	}
	return out, nil
}

// message reads one message after the read barrier.
func (s *Service) message(ctx context.Context, guildID, channelID, id guildhall.Snowflake) (guildhall.Message, error) {
	if err := s.barrier.Wait(ctx, guildID); err != nil {
		return guildhall.Message{}, err
	}
	m, err := s.store.Message(ctx, channelID, id)
	if errors.Is(err, ErrNotFound) {
		return guildhall.Message{}, guildhall.ErrUnknownMessage
	}
	if err != nil {
		return guildhall.Message{}, internal("message", err)
	}
	return m, nil
}

// GetMessage returns one message (READ_MESSAGE_HISTORY needed).
func (s *Service) GetMessage(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake) (guildhall.Message, error) {
	_, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Message{}, err
	}
	if !p.Has(guildhall.PermReadMessageHistory) {
		return guildhall.Message{}, guildhall.ErrMissingPerms
	}
	m, err := s.message(ctx, ch.GuildID, ch.ID, id)
	if err != nil {
		return guildhall.Message{}, err
	}
	return restMessage(m), nil
}

// EditMessage changes the content of the user's own message (anyone else's answers
// ErrCannotEditOthers) and publishes MESSAGE_UPDATE with the whole message. A nil
// content changes nothing and publishes nothing.
func (s *Service) EditMessage(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake, content *string) (guildhall.Message, error) {
	a, ch, _, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Message{}, err
	}
	if content != nil {
		if err := validContent(*content); err != nil {
			return guildhall.Message{}, err
		}
	}
	m, err := s.message(ctx, ch.GuildID, ch.ID, id)
	if err != nil {
		return guildhall.Message{}, err
	}
	if m.Author.ID != u.ID {
		return guildhall.Message{}, guildhall.ErrCannotEditOthers
	}
	if content == nil {
		return restMessage(m), nil
	}
	m.Content = *content
	now := s.now().UTC()
	m.EditedTimestamp = &now
	data, err := dispatchMessage(restMessage(m), ch.GuildID, a.Member)
	if err != nil {
		return guildhall.Message{}, internal("encode message", err)
	}
	ev := guildhall.Event{Type: guildhall.EventMessageUpdate, GuildID: ch.GuildID, ChannelID: ch.ID, UserID: u.ID, Data: data}
	if _, err := s.publish(ctx, ev, s.ids.Next().String()); err != nil {
		return guildhall.Message{}, err
	}
	return restMessage(m), nil
}

// DeleteMessage deletes a message; its author, the owner and members with
// MANAGE_MESSAGES in the channel may. It publishes MESSAGE_DELETE; the Writer
// stores the tombstone. Deleting another's message is recorded in the audit log
// with reason (see DeleteMessageReason).
func (s *Service) DeleteMessage(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake) error {
	return s.DeleteMessageReason(ctx, u, channelID, id, "")
}

// DeleteMessageReason is DeleteMessage with an X-Audit-Log-Reason.
func (s *Service) DeleteMessageReason(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	m, err := s.message(ctx, ch.GuildID, ch.ID, id)
	if err != nil {
		return err
	}
	if m.Author.ID != u.ID && !p.Has(guildhall.PermManageMessages) {
		return guildhall.ErrMissingPerms
	}
	data, err := json.Marshal(guildhall.MessageDelete{ID: id, ChannelID: ch.ID, GuildID: ch.GuildID})
	if err != nil {
		return internal("encode delete", err)
	}
	ev := guildhall.Event{Type: guildhall.EventMessageDelete, GuildID: ch.GuildID, ChannelID: ch.ID, UserID: u.ID, Data: data}
	if _, err = s.publish(ctx, ev, s.ids.Next().String()); err != nil {
		return err
	}
	if m.Author.ID != u.ID { // a moderator's delete is an administrative action
		s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMessageDelete, target: m.Author.ID.String(),
			options: &guildhall.AuditLogOptions{ChannelID: ch.ID.String(), Count: "1"}})
	}
	return nil
}

// Typing publishes TYPING_START on the guild's ephemeral subject (core NATS, never
// the stream, never on disk). A user's repeated typing in one channel within
// Config.TypingInterval is accepted and not re-published.
func (s *Service) Typing(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) error {
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	if ch.Type != guildhall.ChannelTypeGuildText {
		return errNonTextChannel
	}
	if !p.Has(guildhall.PermSendMessages) {
		return guildhall.ErrMissingPerms
	}
	now := s.now()
	if !s.typing.allow(u.ID, ch.ID, now) {
		return nil
	}
	member := a.Member
	member.GuildID = 0
	data, err := json.Marshal(guildhall.TypingStart{
		ChannelID: ch.ID, GuildID: ch.GuildID, UserID: u.ID, Timestamp: now.Unix(), Member: &member,
	})
	if err != nil {
		return internal("encode typing", err)
	}
	ev := guildhall.Event{Type: guildhall.EventTypingStart, GuildID: ch.GuildID, ChannelID: ch.ID, UserID: u.ID, Data: data}
	if err := s.nc.PublishMsg(ghnats.EphemeralMsg(ev)); err != nil {
		s.log.Warn("publish typing", "channel", ch.ID, "err", err)
		return guildhall.ErrServiceBusy
	}
	return nil
}

// typingLimiter remembers when each (user, channel) last published typing, in a
// table bounded by max entries.
type typingLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	max      int
	last     map[[2]guildhall.Snowflake]time.Time
}

func newTypingLimiter(interval time.Duration, max int) *typingLimiter {
	return &typingLimiter{interval: interval, max: max, last: make(map[[2]guildhall.Snowflake]time.Time)}
}

func (l *typingLimiter) allow(user, channel guildhall.Snowflake, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := [2]guildhall.Snowflake{user, channel}
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		return false
	}
	if len(l.last) >= l.max {
		for k, t := range l.last {
			if now.Sub(t) >= l.interval {
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.max { // all fresh: forgetting them only allows extra typing
			clear(l.last)
		}
	}
	l.last[key] = now
	return true
}
