package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
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
	// Embeds, at most 10 rich embeds (validated against Discord's limits).
	Embeds []guildhall.Embed
	// AllowedMentions decides which mentions of the content ping; nil means all.
	AllowedMentions *AllowedMentions
	// Reference makes the message a reply (only replies are supported).
	Reference *guildhall.MessageReference
	// Attachments are files already stored for this message by
	// UploadAttachments, in the order they were sent.
	Attachments []guildhall.Attachment
	// Flags: SUPPRESS_EMBEDS and SUPPRESS_NOTIFICATIONS may be set.
	Flags int
}

// Message flags a sender may set (Discord's values).
const (
	FlagSuppressEmbeds        = 1 << 2
	FlagSuppressNotifications = 1 << 12
)

// validContent checks message content: 1..2000 characters after trimming spaces.
func validContent(content string) error {
	if strings.TrimSpace(content) == "" {
		return guildhall.ErrEmptyMessage
	}
	return validContentLength(content)
}

// validContentLength checks the length alone (a message with embeds or files
// may have no content).
func validContentLength(content string) error {
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
		m.Attachments = []guildhall.Attachment{}
	}
	if m.Embeds == nil {
		m.Embeds = []guildhall.Embed{}
	}
	if m.Components == nil {
		m.Components = []struct{}{}
	}
}

// dispatchMessage is a message as MESSAGE_CREATE and MESSAGE_UPDATE carry it: with
// guild_id and the author's member (without guild_id, as Discord nests it); in a
// DM (author nil) neither.
func dispatchMessage(m guildhall.Message, guildID guildhall.Snowflake, author *guildhall.Member) ([]byte, error) {
	m.GuildID = guildID
	if author != nil {
		a := *author
		a.GuildID = 0
		if a.Roles == nil {
			a.Roles = []guildhall.Snowflake{}
		}
		m.Member = &a
	}
	fillMessageSlices(&m)
	return json.Marshal(m)
}

// PostMessage validates and authorizes a message, gives it a snowflake and
// publishes MESSAGE_CREATE to the stream with Nats-Msg-Id = the message id. It
// returns once the stream has stored the event; the Writer persists it to the
// store, and History waits for that (read your writes).
//
// Mentions in the content are resolved (resolveMentions) and listed on the
// event (Event.Mentions) so that gateways can give mentioned users the content
// whatever their intents. A reply embeds the message it answers.
func (s *Service) PostMessage(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, nm NewMessage) (guildhall.Message, error) {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Message{}, err
	}
	if !c.textual() {
		return guildhall.Message{}, errNonTextChannel
	}
	if !c.perms.Has(guildhall.PermSendMessages) {
		return guildhall.Message{}, guildhall.ErrMissingPerms
	}
	if len(nm.Attachments) > 0 && !c.perms.Has(guildhall.PermAttachFiles) {
		return guildhall.Message{}, guildhall.ErrMissingPerms
	}
	if err := s.dmReachable(ctx, u, c); err != nil {
		return guildhall.Message{}, err
	}
	if strings.TrimSpace(nm.Content) == "" && len(nm.Embeds) == 0 && len(nm.Attachments) == 0 {
		return guildhall.Message{}, guildhall.ErrEmptyMessage
	}
	if err := validContentLength(nm.Content); err != nil {
		return guildhall.Message{}, err
	}
	if err := validNonce(nm.Nonce); err != nil {
		return guildhall.Message{}, err
	}
	if nm.Flags&^(FlagSuppressEmbeds|FlagSuppressNotifications) != 0 {
		return guildhall.Message{}, guildhall.FieldError("flags", "MESSAGE_FLAGS_INVALID", "Only SUPPRESS_EMBEDS and SUPPRESS_NOTIFICATIONS may be set.")
	}
	if len(nm.Attachments) > guildhall.MaxAttachments {
		return guildhall.Message{}, tooLong(guildhall.MaxAttachments, "attachments")
	}
	embeds, err := validEmbeds(nm.Embeds, nm.Attachments)
	if err != nil {
		return guildhall.Message{}, err
	}
	if err := nm.AllowedMentions.validate(); err != nil {
		return guildhall.Message{}, err
	}
	id := s.ids.Next()
	m := guildhall.Message{
		ID:          id,
		ChannelID:   c.ID,
		Author:      u,
		Content:     nm.Content,
		Timestamp:   id.Time(),
		TTS:         nm.TTS,
		Nonce:       nm.Nonce,
		Embeds:      embeds,
		Attachments: nm.Attachments,
		Flags:       nm.Flags,
	}
	var repliedTo *guildhall.User
	if nm.Reference != nil {
		ref, err := s.replyTarget(ctx, c, nm.Reference)
		if err != nil {
			return guildhall.Message{}, err
		}
		if ref != nil {
			m.Type = guildhall.MessageTypeReply
			m.MessageReference = &guildhall.MessageReference{MessageID: ref.ID, ChannelID: c.ID, GuildID: c.GuildID}
			ref.ReferencedMessage, ref.Reactions = nil, nil
			ref = ptr(restMessage(*ref))
			m.ReferencedMessage = ref
			repliedTo = &ref.Author
		}
	}
	ms, err := s.resolveMentions(ctx, c, nm.Content, nm.AllowedMentions, repliedTo)
	if err != nil {
		return guildhall.Message{}, err
	}
	m.Mentions, m.MentionRoles, m.MentionEveryone = ms.users, ms.roles, ms.everyone
	if c.guild != nil { // last, so that a refused post does not count (DMs have none)
		if err := s.checkSlowmode(ctx, u, c.channel, c.perms); err != nil {
			return guildhall.Message{}, err
		}
	}
	data, err := dispatchMessage(m, c.GuildID, c.member())
	if err != nil {
		return guildhall.Message{}, internal("encode message", err)
	}
	ev := c.event(guildhall.EventMessageCreate, u.ID, data)
	ev.Mentions = ms.userIDs()
	if err := s.linkAttachments(ctx, id, m.Attachments); err != nil {
		return guildhall.Message{}, internal("link attachments", err)
	}
	if err := s.publishConversation(ctx, c, ev, id.String()); err != nil {
		return guildhall.Message{}, err
	}
	out := restMessage(m)
	out.Nonce = nm.Nonce
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// replyTarget finds the message a reply answers: in the same channel, the user
// needing READ_MESSAGE_HISTORY. A missing message fails the post unless
// fail_if_not_exists is false, then the post is a plain message (nil, nil).
func (s *Service) replyTarget(ctx context.Context, c *conversation, ref *guildhall.MessageReference) (*guildhall.Message, error) {
	if ref.Type != 0 {
		return nil, pathError("BASE_TYPE_CHOICES", "Only replies (type 0) are supported.", "message_reference", "type")
	}
	if ref.MessageID == 0 {
		return nil, pathError("BASE_TYPE_REQUIRED", "This field is required", "message_reference", "message_id")
	}
	if (ref.ChannelID != 0 && ref.ChannelID != c.ID) || (ref.GuildID != 0 && ref.GuildID != c.GuildID) {
		return nil, pathError("REPLIES_CANNOT_REFERENCE_OTHER_CHANNEL", "Cannot reply to a message in a different channel", "message_reference")
	}
	if !c.perms.Has(guildhall.PermReadMessageHistory) {
		return nil, guildhall.ErrMissingPerms
	}
	// While the store is down, a reply to a recent message still goes out.
	m, err := s.messageToChange(ctx, c, ref.MessageID)
	if errors.Is(err, guildhall.ErrUnknownMessage) {
		if ref.FailIfNotExists != nil && !*ref.FailIfNotExists {
			return nil, nil
		}
		return nil, pathError("REPLIES_UNKNOWN_MESSAGE", "Unknown message", "message_reference")
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
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
// Messages carry their reactions as the user sees them, and replies the current
// state of the message they answer.
func (s *Service) History(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, q HistoryQuery) ([]guildhall.Message, error) {
	if err := validQuery(q); err != nil {
		return nil, err
	}
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return nil, err
	}
	if !c.perms.Has(guildhall.PermReadMessageHistory) {
		return []guildhall.Message{}, nil
	}
	if err := s.wait(ctx, c); err != nil {
		return nil, err
	}
	ms, err := s.store.History(ctx, c.ID, q)
	if err != nil {
		return nil, s.historyErr("history", err)
	}
	if err := s.complete(ctx, c.ID, ms, u.ID); err != nil {
		return nil, err
	}
	out := make([]guildhall.Message, len(ms))
	for i, m := range ms {
		out[i] = restMessage(m)
	}
	return out, nil
}

// readBarrier waits until the store holds every event of the guild (the read
// barrier). While the store is down it answers errHistoryUnavailable: at once
// when a read has found it so already, else once the barrier has waited in
// vain and a probe finds the store unreachable.
func (s *Service) readBarrier(ctx context.Context, guildID guildhall.Snowflake) error {
	if s.storeDown(ctx) {
		return errHistoryUnavailable
	}
	err := s.barrier.Wait(ctx, guildID)
	if errors.Is(err, guildhall.ErrServiceBusy) {
		if _, perr := s.store.Guild(ctx, 0); s.unavailable(perr) {
			return errHistoryUnavailable
		}
	}
	return err
}

// historyErr is storeErr for reads of messages: errHistoryUnavailable while
// the database cannot be reached.
func (s *Service) historyErr(what string, err error) error {
	if s.unavailable(err) {
		return errHistoryUnavailable
	}
	return internal(what, err)
}

// complete fills what the stored messages lack: their reactions as user me
// sees them, and for replies the message answered as it is now (nil once
// deleted). At most MaxReactionsQuery messages.
func (s *Service) complete(ctx context.Context, channelID guildhall.Snowflake, ms []guildhall.Message, me guildhall.Snowflake) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]guildhall.Snowflake, len(ms))
	byID := make(map[guildhall.Snowflake]guildhall.Message, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
		byID[m.ID] = m
	}
	rs, err := s.store.Reactions(ctx, channelID, ids, me)
	if err != nil {
		return s.historyErr("reactions", err)
	}
	for i := range ms {
		ms[i].Reactions = rs[ms[i].ID]
		ref := ms[i].MessageReference
		if ms[i].Type != guildhall.MessageTypeReply || ref == nil {
			continue
		}
		target, ok := byID[ref.MessageID]
		if !ok {
			target, err = s.store.Message(ctx, channelID, ref.MessageID)
			if errors.Is(err, ErrNotFound) {
				ms[i].ReferencedMessage = nil
				continue
			}
			if err != nil {
				return s.historyErr("referenced message", err)
			}
			byID[target.ID] = target
		}
		target.ReferencedMessage, target.Reactions = nil, nil
		target = restMessage(target)
		ms[i].ReferencedMessage = &target
	}
	return nil
}

// message reads one message of a conversation after the read barrier.
func (s *Service) message(ctx context.Context, c *conversation, id guildhall.Snowflake) (guildhall.Message, error) {
	if err := s.wait(ctx, c); err != nil {
		return guildhall.Message{}, err
	}
	m, err := s.store.Message(ctx, c.ID, id)
	if errors.Is(err, ErrNotFound) {
		return guildhall.Message{}, guildhall.ErrUnknownMessage
	}
	if err != nil {
		return guildhall.Message{}, s.historyErr("message", err)
	}
	return m, nil
}

// messageToChange is message for an edit or a delete: when the store cannot
// answer (down, or the writer too far behind), the projection's recent
// messages can (projection_messages.go).
func (s *Service) messageToChange(ctx context.Context, c *conversation, id guildhall.Snowflake) (guildhall.Message, error) {
	m, err := s.message(ctx, c, id)
	if isUnavailable(err) && c.dm == nil {
		return s.proj.recentMessage(ctx, c.GuildID, c.ID, id)
	}
	return m, err
}

// GetMessage returns one message (READ_MESSAGE_HISTORY needed).
func (s *Service) GetMessage(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake) (guildhall.Message, error) {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Message{}, err
	}
	if !c.perms.Has(guildhall.PermReadMessageHistory) {
		return guildhall.Message{}, guildhall.ErrMissingPerms
	}
	m, err := s.message(ctx, c, id)
	if err != nil {
		return guildhall.Message{}, err
	}
	page := []guildhall.Message{m}
	if err := s.complete(ctx, c.ID, page, u.ID); err != nil {
		return guildhall.Message{}, err
	}
	return restMessage(page[0]), nil
}

// MessageEdit is what editing a message changes; nil fields stay as they are.
// Changing the content re-reads its mentions under AllowedMentions (nil: all),
// as Discord does.
type MessageEdit struct {
	Content         *string
	Embeds          *[]guildhall.Embed
	AllowedMentions *AllowedMentions
}

// EditMessage changes the content of the user's own message; see
// EditMessageWith.
func (s *Service) EditMessage(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake, content *string) (guildhall.Message, error) {
	return s.EditMessageWith(ctx, u, channelID, id, MessageEdit{Content: content})
}

// EditMessageWith changes the content or embeds of the user's own message
// (anyone else's answers ErrCannotEditOthers) and publishes MESSAGE_UPDATE with
// the whole message. An edit that changes nothing publishes nothing.
func (s *Service) EditMessageWith(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake, e MessageEdit) (guildhall.Message, error) {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Message{}, err
	}
	if e.Content != nil {
		if err := validContentLength(*e.Content); err != nil {
			return guildhall.Message{}, err
		}
	}
	if err := e.AllowedMentions.validate(); err != nil {
		return guildhall.Message{}, err
	}
	m, err := s.messageToChange(ctx, c, id)
	if err != nil {
		return guildhall.Message{}, err
	}
	if m.Author.ID != u.ID {
		return guildhall.Message{}, guildhall.ErrCannotEditOthers
	}
	if e.Content == nil && e.Embeds == nil {
		return restMessage(m), nil
	}
	if e.Embeds != nil {
		if m.Embeds, err = validEmbeds(*e.Embeds, m.Attachments); err != nil {
			return guildhall.Message{}, err
		}
	}
	if e.Content != nil {
		m.Content = *e.Content
		var repliedTo *guildhall.User
		if r := m.ReferencedMessage; r != nil && slices.ContainsFunc(m.Mentions, func(x guildhall.User) bool { return x.ID == r.Author.ID }) {
			repliedTo = &r.Author // the reply's ping stays
		}
		ms, err := s.resolveMentions(ctx, c, m.Content, e.AllowedMentions, repliedTo)
		if err != nil {
			return guildhall.Message{}, err
		}
		m.Mentions, m.MentionRoles, m.MentionEveryone = ms.users, ms.roles, ms.everyone
	}
	if strings.TrimSpace(m.Content) == "" && len(m.Embeds) == 0 && len(m.Attachments) == 0 {
		return guildhall.Message{}, guildhall.ErrEmptyMessage
	}
	now := s.now().UTC()
	m.EditedTimestamp = &now
	m.Reactions = nil
	// Its reactions for the answer, and for a reply the message it answers as
	// it is now: the stored reply quotes it as it was when posted, and an
	// answered message deleted or edited since must not come back in the
	// MESSAGE_UPDATE. While the store is down the edit goes out as it is,
	// without its reactions.
	page := []guildhall.Message{m}
	if err := s.complete(ctx, c.ID, page, u.ID); err != nil {
		if !isUnavailable(err) {
			return guildhall.Message{}, err
		}
		page[0] = m
	}
	edited := page[0]
	edited.Reactions = nil
	data, err := dispatchMessage(restMessage(edited), c.GuildID, c.member())
	if err != nil {
		return guildhall.Message{}, internal("encode message", err)
	}
	ev := c.event(guildhall.EventMessageUpdate, u.ID, data)
	for _, x := range m.Mentions {
		ev.Mentions = append(ev.Mentions, x.ID)
	}
	if err := s.publishConversation(ctx, c, ev, s.ids.Next().String()); err != nil {
		return guildhall.Message{}, err
	}
	return restMessage(page[0]), nil
}

// DeleteMessage deletes a message; its author, the owner and members with
// MANAGE_MESSAGES in the channel may (in a DM, the author only). It publishes
// MESSAGE_DELETE, naming the message's attachments (Event.Attachments); the
// Writer stores the tombstone and then deletes the attachments' files.
// Deleting another's message is recorded in the audit log with reason (see
// DeleteMessageReason).
func (s *Service) DeleteMessage(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake) error {
	return s.DeleteMessageReason(ctx, u, channelID, id, "")
}

// DeleteMessageReason is DeleteMessage with an X-Audit-Log-Reason.
func (s *Service) DeleteMessageReason(ctx context.Context, u guildhall.User, channelID, id guildhall.Snowflake, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	m, err := s.messageToChange(ctx, c, id)
	if err != nil {
		return err
	}
	if m.Author.ID != u.ID && !c.perms.Has(guildhall.PermManageMessages) {
		return guildhall.ErrMissingPerms
	}
	data, err := json.Marshal(guildhall.MessageDelete{ID: id, ChannelID: c.ID, GuildID: c.GuildID})
	if err != nil {
		return internal("encode delete", err)
	}
	ev := c.event(guildhall.EventMessageDelete, u.ID, data)
	ev.Attachments = attachmentIDs(m)
	if err := s.publishConversation(ctx, c, ev, s.ids.Next().String()); err != nil {
		return err
	}
	if m.Author.ID != u.ID && c.guild != nil { // a moderator's delete is an administrative action
		s.audit(ctx, c.guild, reason, auditEntry{action: guildhall.AuditMessageDelete, target: m.Author.ID.String(),
			options: &guildhall.AuditLogOptions{ChannelID: c.ID.String(), Count: "1"}})
	}
	return nil
}

// attachmentIDs lists the attachments of messages being deleted
// (Event.Attachments).
func attachmentIDs(ms ...guildhall.Message) []guildhall.Snowflake {
	var ids []guildhall.Snowflake
	for _, m := range ms {
		for _, a := range m.Attachments {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// Typing publishes TYPING_START on the guild's ephemeral subject, or in a DM on
// each other participant's ephemeral subject (core NATS, never the stream, never
// on disk). A user's repeated typing in one channel within
// Config.TypingInterval is accepted and not re-published.
func (s *Service) Typing(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) error {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	if !c.textual() {
		return errNonTextChannel
	}
	if !c.perms.Has(guildhall.PermSendMessages) {
		return guildhall.ErrMissingPerms
	}
	if err := s.dmReachable(ctx, u, c); err != nil {
		return err
	}
	now := s.now()
	if !s.typing.allow(u.ID, c.ID, now) {
		return nil
	}
	ts := guildhall.TypingStart{ChannelID: c.ID, GuildID: c.GuildID, UserID: u.ID, Timestamp: now.Unix()}
	if m := c.member(); m != nil {
		m.GuildID = 0
		ts.Member = m
	}
	data, err := json.Marshal(ts)
	if err != nil {
		return internal("encode typing", err)
	}
	ev := c.event(guildhall.EventTypingStart, u.ID, data)
	msgs := []*natsgo.Msg{}
	if c.dm == nil {
		msgs = append(msgs, ghnats.EphemeralMsg(ev))
	} else {
		for _, p := range c.dm.Recipients {
			if p.ID != u.ID {
				msgs = append(msgs, ghnats.EphemeralUserMsg(ev, uint64(p.ID)))
			}
		}
	}
	for _, m := range msgs {
		if err := s.nc.PublishMsg(m); err != nil {
			s.log.Warn("publish typing", "channel", c.ID, "err", err)
			return guildhall.ErrServiceBusy
		}
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
