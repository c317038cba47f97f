package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// Moderation: kick, ban, unban, bulk ban, bulk delete, slowmode. Timeouts are
// in the access layer (a timed-out member keeps only VIEW_CHANNEL and
// READ_MESSAGE_HISTORY) and set by ModifyMember.

// Moderation limits (Discord's, and Guildhall's bounds on work per request).
const (
	MaxDeleteMessageSeconds = 7 * 24 * 3600
	MaxBulkBan              = 200
	MinBulkDelete           = 2
	MaxBulkDelete           = 100
	BulkDeleteMaxAge        = 14 * 24 * time.Hour
	// MaxBanDeleteScan bounds the messages a ban reads looking for the banned
	// user's recent ones (delete_message_seconds), over all channels: a ban
	// deletes what it finds among the newest this many in the window.
	MaxBanDeleteScan = 10000
)

// KickMember removes a member the user outranks (KICK_MEMBERS) and publishes
// GUILD_MEMBER_REMOVE; the kicked user may join again with an invite.
func (s *Service) KickMember(ctx context.Context, u guildhall.User, guildID, userID guildhall.Snowflake, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	a, err := s.accessNeeding(ctx, u, guildID, guildhall.PermKickMembers)
	if err != nil {
		return err
	}
	m, err := s.member(ctx, a, userID)
	if err != nil {
		return err
	}
	if !a.outranks(m) {
		return guildhall.ErrMissingPerms
	}
	if err := s.removeMember(ctx, guildID, m.User); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMemberKick, target: userID.String()})
	return nil
}

func checkDeleteSeconds(secs int) error {
	if secs < 0 || secs > MaxDeleteMessageSeconds {
		return guildhall.FieldError("delete_message_seconds", "NUMBER_TYPE_MAX", "Must be between 0 and 604800.")
	}
	return nil
}

// BanMember bans a user (BAN_MEMBERS), a member the user outranks or anyone
// not in the guild, and deletes the messages they posted in the last
// deleteSeconds (0..604800). It publishes GUILD_MEMBER_REMOVE (if they were a
// member), GUILD_BAN_ADD, the user's GUILD_DELETE, and MESSAGE_DELETE_BULK per
// channel for the deletes.
// Banning again replaces the ban.
func (s *Service) BanMember(ctx context.Context, u guildhall.User, guildID, userID guildhall.Snowflake, deleteSeconds int, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	if err := checkDeleteSeconds(deleteSeconds); err != nil {
		return err
	}
	a, err := s.accessNeeding(ctx, u, guildID, guildhall.PermBanMembers)
	if err != nil {
		return err
	}
	return s.ban(ctx, a, userID, deleteSeconds, reason)
}

func (s *Service) ban(ctx context.Context, a *guildAccess, userID guildhall.Snowflake, deleteSeconds int, reason string) error {
	user, err := s.store.User(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return guildhall.ErrUnknownUser
	}
	if err != nil {
		return internal("user", err)
	}
	if userID == a.Guild.OwnerID {
		return guildhall.ErrMissingPerms
	}
	m, err := s.member(ctx, a, userID)
	switch {
	case err == nil:
		if !a.outranks(m) {
			return guildhall.ErrMissingPerms
		}
	case !errors.Is(err, guildhall.ErrUnknownMember):
		return err
	}
	b := guildhall.Ban{GuildID: a.Guild.ID, User: user, CreatedAt: s.now().UTC()}
	if reason != "" {
		b.Reason = &reason
	}
	wasMember, err := s.store.PutBan(ctx, b)
	if err != nil {
		return internal("put ban", err)
	}
	removed, err := memberRemoved(a.Guild.ID, user)
	if err != nil {
		return err
	}
	ban, err := guildEvent(guildhall.EventGuildBanAdd, a.Guild.ID, 0, guildhall.GuildBanEvent{GuildID: a.Guild.ID, User: user})
	if err != nil {
		return err
	}
	ban.UserID = userID
	// GUILD_MEMBER_REMOVE if the ban ended a membership; GUILD_BAN_ADD, which
	// also takes the user out of every room; the user's GUILD_DELETE always: a
	// ban repeated after a publish failed finds no membership to end, and the
	// user's sessions must still be told.
	evs := []guildhall.Event{ban, removed[1]}
	if wasMember {
		evs = []guildhall.Event{removed[0], ban, removed[1]}
	}
	if err := s.publishEvents(ctx, evs...); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMemberBanAdd, target: userID.String()})
	return s.deleteRecent(ctx, a.Guild.ID, []guildhall.Snowflake{userID}, deleteSeconds)
}

// deleteRecent deletes the users' messages of the last seconds in every text
// channel of the guild through the stream (MESSAGE_DELETE_BULK, which the
// Writer applies as deletes), reading at most MaxBanDeleteScan messages.
func (s *Service) deleteRecent(ctx context.Context, guildID guildhall.Snowflake, users []guildhall.Snowflake, seconds int) error {
	if seconds <= 0 {
		return nil
	}
	if err := s.barrier.Wait(ctx, guildID); err != nil {
		return err
	}
	chs, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return internal("channels", err)
	}
	cutoff := guildhall.SnowflakeAt(s.now().Add(-time.Duration(seconds) * time.Second))
	scanned := 0
	var evs []guildhall.Event
	for _, ch := range chs {
		if ch.Type != guildhall.ChannelTypeGuildText {
			continue
		}
		var found []guildhall.Message
		after := cutoff
		for scanned < MaxBanDeleteScan {
			page, err := s.store.History(ctx, ch.ID, HistoryQuery{After: after, Limit: 100})
			if err != nil {
				return internal("history", err)
			}
			for _, m := range page {
				if slices.Contains(users, m.Author.ID) {
					found = append(found, m)
				}
			}
			scanned += len(page)
			if len(page) < 100 {
				break
			}
			after = page[0].ID // the newest of the page
		}
		for chunk := range slices.Chunk(found, MaxBulkDelete) {
			ids := make([]guildhall.Snowflake, len(chunk))
			for i, m := range chunk {
				ids[i] = m.ID
			}
			ev, err := guildEvent(guildhall.EventMessageDeleteBulk, guildID, ch.ID, guildhall.MessageDeleteBulk{IDs: ids, ChannelID: ch.ID, GuildID: guildID})
			if err != nil {
				return err
			}
			ev.Attachments = attachmentIDs(chunk...)
			evs = append(evs, ev)
		}
	}
	return s.publishEvents(ctx, evs...)
}

// existingMessages lists those of the messages ids of channel ch that exist
// (after the read barrier), and their attachments, for a bulk delete to name
// (Event.Attachments). A bulk delete names only these: the store keeps a
// delete for good, so a delete of an id no message has yet would delete the
// message posted with it later (snowflakes can be predicted).
func (s *Service) existingMessages(ctx context.Context, ch guildhall.Channel, ids []guildhall.Snowflake) (existing, files []guildhall.Snowflake, err error) {
	if err := s.barrier.Wait(ctx, ch.GuildID); err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		m, err := s.store.Message(ctx, ch.ID, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, internal("message", err)
		}
		existing = append(existing, id)
		files = append(files, attachmentIDs(m)...)
	}
	return existing, files, nil
}

// UnbanMember lifts a ban (BAN_MEMBERS): Unknown Ban if there is none. It
// publishes GUILD_BAN_REMOVE.
func (s *Service) UnbanMember(ctx context.Context, u guildhall.User, guildID, userID guildhall.Snowflake, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	a, err := s.accessNeeding(ctx, u, guildID, guildhall.PermBanMembers)
	if err != nil {
		return err
	}
	b, err := s.store.Ban(ctx, guildID, userID)
	if errors.Is(err, ErrNotFound) {
		return guildhall.ErrUnknownBan
	}
	if err != nil {
		return internal("ban", err)
	}
	if err := s.store.DeleteBan(ctx, guildID, userID); err != nil && !errors.Is(err, ErrNotFound) {
		return internal("delete ban", err)
	}
	ev, err := guildEvent(guildhall.EventGuildBanRemove, guildID, 0, guildhall.GuildBanEvent{GuildID: guildID, User: b.User})
	if err != nil {
		return err
	}
	ev.UserID = userID
	if err := s.publishEvents(ctx, ev); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMemberBanRemove, target: userID.String()})
	return nil
}

// GuildBan returns one ban (BAN_MEMBERS): Unknown Ban if there is none.
func (s *Service) GuildBan(ctx context.Context, u guildhall.User, guildID, userID guildhall.Snowflake) (guildhall.Ban, error) {
	if _, err := s.accessNeeding(ctx, u, guildID, guildhall.PermBanMembers); err != nil {
		return guildhall.Ban{}, err
	}
	b, err := s.store.Ban(ctx, guildID, userID)
	if errors.Is(err, ErrNotFound) {
		return guildhall.Ban{}, guildhall.ErrUnknownBan
	}
	if err != nil {
		return guildhall.Ban{}, internal("ban", err)
	}
	return b, nil
}

// GuildBans pages a guild's bans by user id (BAN_MEMBERS); see BanQuery.
func (s *Service) GuildBans(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, q BanQuery) ([]guildhall.Ban, error) {
	if err := q.Validate(); err != nil {
		return nil, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 1000.")
	}
	if _, err := s.accessNeeding(ctx, u, guildID, guildhall.PermBanMembers); err != nil {
		return nil, err
	}
	bs, err := s.store.Bans(ctx, guildID, q)
	if err != nil {
		return nil, internal("bans", err)
	}
	return bs, nil
}

// BulkBan bans up to 200 users (BAN_MEMBERS and MANAGE_GUILD) one by one as
// BanMember would, and reports who was banned and who not (already banned, the
// owner, not outranked, no such user). If nobody was, it answers Failed to ban
// users (500000).
func (s *Service) BulkBan(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, userIDs []guildhall.Snowflake, deleteSeconds int, reason string) (banned, failed []guildhall.Snowflake, err error) {
	if err := checkReason(reason); err != nil {
		return nil, nil, err
	}
	if len(userIDs) < 1 || len(userIDs) > MaxBulkBan {
		return nil, nil, guildhall.FieldError("user_ids", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 200 in length.")
	}
	if err := checkDeleteSeconds(deleteSeconds); err != nil {
		return nil, nil, err
	}
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, nil, err
	}
	if err := need(a.Base, guildhall.PermBanMembers|guildhall.PermManageGuild); err != nil {
		return nil, nil, err
	}
	banned, failed = []guildhall.Snowflake{}, []guildhall.Snowflake{}
	for _, id := range userIDs {
		if slices.Contains(banned, id) || slices.Contains(failed, id) {
			continue
		}
		already, err := s.banned(ctx, guildID, id)
		if err != nil {
			return nil, nil, err
		}
		if already {
			failed = append(failed, id)
			continue
		}
		err = s.ban(ctx, a, id, 0, reason) // the deletes: once for all, below
		var ge *guildhall.Error
		switch {
		case err == nil:
			banned = append(banned, id)
		case errors.As(err, &ge) && ge.Status < 500:
			failed = append(failed, id)
		default:
			return nil, nil, err
		}
	}
	if len(banned) == 0 {
		return nil, nil, guildhall.ErrFailedToBan
	}
	if err := s.deleteRecent(ctx, guildID, banned, deleteSeconds); err != nil {
		return nil, nil, err
	}
	return banned, failed, nil
}

// BulkDelete deletes 2..100 messages of a channel (MANAGE_MESSAGES there), none
// older than 14 days and none twice, through the stream: it publishes one
// MESSAGE_DELETE_BULK, which the Writer applies as deletes. Ids of messages that
// do not exist (deleted, of another channel, or not posted yet) count towards
// the 2..100 and delete nothing: the event names only the others.
func (s *Service) BulkDelete(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, ids []guildhall.Snowflake, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	if len(ids) < MinBulkDelete || len(ids) > MaxBulkDelete {
		return guildhall.ErrBulkDeleteCount
	}
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	if err := need(p, guildhall.PermManageMessages); err != nil {
		return err
	}
	oldest := s.now().Add(-BulkDeleteMaxAge)
	seen := make(map[guildhall.Snowflake]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return guildhall.FieldError("messages", "DUPLICATE_MESSAGE", "Message "+id.String()+" appears twice.")
		}
		seen[id] = true
		if id.Time().Before(oldest) {
			return guildhall.ErrBulkDeleteTooOld
		}
	}
	ids, files, err := s.existingMessages(ctx, ch, ids)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil // nothing to delete
	}
	ev, err := guildEvent(guildhall.EventMessageDeleteBulk, ch.GuildID, ch.ID, guildhall.MessageDeleteBulk{IDs: ids, ChannelID: ch.ID, GuildID: ch.GuildID})
	if err != nil {
		return err
	}
	ev.Attachments = files
	if err := s.publishEvents(ctx, ev); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMessageBulkDelete, target: ch.ID.String(),
		options: &guildhall.AuditLogOptions{Count: strconv.Itoa(len(ids))}})
	return nil
}

// checkSlowmode enforces a channel's rate_limit_per_user on a post: one post
// per user per interval, across every api process (a key per channel and user
// in the slowmode bucket, living the interval). Bots and members who may manage
// the channel's messages or the channel are exempt, as on Discord.
func (s *Service) checkSlowmode(ctx context.Context, u guildhall.User, ch guildhall.Channel, p guildhall.Permissions) error {
	if ch.RateLimitPerUser <= 0 || u.Bot || p.Has(guildhall.PermManageMessages) || p.Has(guildhall.PermManageChannels) {
		return nil
	}
	wait, err := s.slowmode.take(ctx, ch.ID, u.ID, time.Duration(ch.RateLimitPerUser)*time.Second, s.now())
	if err != nil {
		return nil // logged; see slowmode.take
	}
	if wait > 0 {
		return guildhall.Slowmode(math.Max(0.001, math.Ceil(wait.Seconds()*1000)/1000))
	}
	return nil
}

// slowmode is the api's view of the slowmode bucket.
type slowmode struct {
	js  jetstream.JetStream
	log *slog.Logger

	mu sync.Mutex
	kv jetstream.KeyValue
}

// take records a post by user in channel at now, unless one was recorded less
// than interval ago: then it returns how long to wait. When the bucket cannot
// be reached it lets the post through (and logs): refusing every post of a
// slowmode channel for a NATS hiccup would hurt more than a few extra posts.
func (l *slowmode) take(ctx context.Context, channel, user guildhall.Snowflake, interval time.Duration, now time.Time) (time.Duration, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		l.log.Warn("slowmode: bucket", "err", err)
		return 0, err
	}
	key := channel.String() + "." + user.String()
	val := []byte(strconv.FormatInt(now.UnixMilli(), 10))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for range 2 {
		_, err := kv.Create(ctx, key, val, jetstream.KeyTTL(max(interval, time.Second)))
		if err == nil {
			return 0, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			l.log.Warn("slowmode: record post", "key", key, "err", err)
			return 0, err
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // expired in between
		}
		if err != nil {
			l.log.Warn("slowmode: last post", "key", key, "err", err)
			return 0, err
		}
		last, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			last = e.Created().UnixMilli()
		}
		if wait := time.UnixMilli(last).Add(interval).Sub(now); wait > 0 {
			return wait, nil
		}
		// Past its interval but not expired yet (an interval made shorter):
		// this post starts a new one.
		if _, err := kv.Update(ctx, key, val, e.Revision()); err == nil {
			return 0, nil
		}
	}
	return 0, fmt.Errorf("slowmode: key %s contended", key)
}

func (l *slowmode) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kv, err := l.js.KeyValue(ctx, ghnats.BucketSlowmode)
	if err != nil {
		return nil, err
	}
	l.kv = kv
	return kv, nil
}
