package messaging

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// Invites: create and accept one, the public preview, lists per channel and per
// guild, deletes, and the events. INVITE_CREATE
// and INVITE_DELETE go only to members who may manage the invite's channel
// (Event.Requires), as on Discord.

// NewInvite is what creating an invite takes. MaxAge nil means Discord's default,
// 86400 seconds; 0 means never expires.
type NewInvite struct {
	MaxAge  *int
	MaxUses int
	// Reason is the audit log's (X-Audit-Log-Reason).
	Reason string
}

// InviteInfo is an invite with what its Discord JSON shape shows: the guild, the
// channel and the inviter.
type InviteInfo struct {
	Invite  guildhall.Invite
	Guild   guildhall.Guild
	Channel guildhall.Channel
	Inviter guildhall.User
}

// CreateInvite makes an invite to a channel the user may view and invite to
// (CREATE_INSTANT_INVITE).
func (s *Service) CreateInvite(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, ni NewInvite) (InviteInfo, error) {
	if err := checkReason(ni.Reason); err != nil {
		return InviteInfo{}, err
	}
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return InviteInfo{}, err
	}
	if !p.Has(guildhall.PermCreateInstantInvite) {
		return InviteInfo{}, guildhall.ErrMissingPerms
	}
	age := 86400
	if ni.MaxAge != nil {
		age = *ni.MaxAge
	}
	if age < 0 || age > MaxInviteAge {
		return InviteInfo{}, guildhall.FieldError("max_age", "NUMBER_TYPE_MAX", "Must be between 0 and 604800.")
	}
	if ni.MaxUses < 0 || ni.MaxUses > MaxInviteUses {
		return InviteInfo{}, guildhall.FieldError("max_uses", "NUMBER_TYPE_MAX", "Must be between 0 and 100.")
	}
	now := s.now().UTC()
	inv := guildhall.Invite{
		GuildID: a.Guild.ID, ChannelID: ch.ID, InviterID: u.ID,
		MaxUses: ni.MaxUses, MaxAge: age, CreatedAt: now,
	}
	if age > 0 {
		exp := now.Add(time.Duration(age) * time.Second)
		inv.ExpiresAt = &exp
	}
	for range 5 {
		inv.Code = inviteCode()
		_, err := s.store.Invite(ctx, inv.Code)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return InviteInfo{}, internal("invite", err)
		}
		inv.Code = ""
	}
	if inv.Code == "" {
		return InviteInfo{}, internal("invite", errors.New("no free invite code after 5 tries"))
	}
	unlock, err := s.capLock(ctx, "invites."+a.Guild.ID.String())
	if err != nil {
		return InviteInfo{}, err
	}
	defer unlock()
	if err := s.checkInviteCaps(ctx, a.Guild.ID, ch.ID); err != nil {
		return InviteInfo{}, err
	}
	if err := s.store.PutInvite(ctx, inv); err != nil {
		return InviteInfo{}, internal("put invite", err)
	}
	unlock()
	if err := s.inviteCreated(ctx, a, inv, u, ni.Reason); err != nil {
		return InviteInfo{}, err
	}
	a.Guild.MemberCount = 0
	return InviteInfo{Invite: inv, Guild: a.Guild, Channel: ch, Inviter: u}, nil
}

const inviteAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// inviteCode is 10 random characters of [a-zA-Z0-9] (59 bits), like Discord's.
func inviteCode() string {
	var b [10]byte
	out := make([]byte, 0, len(b))
	for len(out) < len(b) {
		_, _ = rand.Read(b[:])
		for _, c := range b {
			if c < 248 && len(out) < len(b) { // 248 = 4*62: no modulo bias
				out = append(out, inviteAlphabet[int(c)%62])
			}
		}
	}
	return string(out)
}

// AcceptInvite makes u a member of the invite's guild. An unknown, expired or used
// up invite answers Unknown Invite. Accepting again while a member changes nothing
// (no use counted, no event). A new member is announced with GUILD_MEMBER_ADD to the
// guild and GUILD_CREATE to the joiner's own sessions. joined reports whether u
// became a member now.
//
// The store counts the use together with the membership (Store.JoinGuild), so
// joins by one invite run concurrently here; api processes sharing a CQL store may
// together let an invite be used a few times past max_uses.
func (s *Service) AcceptInvite(ctx context.Context, u guildhall.User, code string) (info InviteInfo, joined bool, err error) {
	if code == "" || len(code) > 32 {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	inv, err := s.store.Invite(ctx, code)
	if errors.Is(err, ErrNotFound) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, false, internal("invite", err)
	}
	st, err := s.GuildState(ctx, inv.GuildID)
	if errors.Is(err, guildhall.ErrUnknownGuild) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, false, err
	}
	ch, ok := st.Channel(inv.ChannelID)
	if !ok {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	inviter, err := s.store.User(ctx, inv.InviterID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return InviteInfo{}, false, internal("inviter", err)
	}
	info = InviteInfo{Invite: inv, Guild: st.Guild, Channel: ch, Inviter: inviter}
	info.Guild.MemberCount = 0
	_, err = s.store.Member(ctx, inv.GuildID, u.ID)
	if err == nil {
		return info, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return InviteInfo{}, false, internal("member", err)
	}
	if inv.Expired(s.now()) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err := s.notBanned(ctx, inv.GuildID, u.ID); err != nil {
		return InviteInfo{}, false, err
	}
	unlock, err := s.capLock(ctx, "guilds."+u.ID.String())
	if err != nil {
		return InviteInfo{}, false, err
	}
	defer unlock()
	if err := s.checkGuildCount(ctx, u); err != nil {
		return InviteInfo{}, false, err
	}
	m := guildhall.Member{GuildID: inv.GuildID, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: s.now().UTC()}
	inv, joined, err = s.store.JoinGuild(ctx, m, code)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInviteUsedUp) {
		return InviteInfo{}, false, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, false, internal("join guild", err)
	}
	unlock()
	if !joined { // a concurrent accept by the same user won
		return info, false, nil
	}
	// A ban that raced the join: whichever of the two wrote last, one of them
	// sees the other (the ban removes the member, or this read finds the ban).
	if err := s.notBanned(ctx, inv.GuildID, u.ID); err != nil {
		if rerr := s.store.RemoveMember(ctx, inv.GuildID, u.ID); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			return InviteInfo{}, false, internal("remove banned joiner", rerr)
		}
		return InviteInfo{}, false, err
	}
	info.Invite = inv
	// Other joins ran concurrently since GuildState: count them too.
	st.Guild.MemberCount++
	if n, err := s.store.MemberCount(ctx, inv.GuildID); err == nil {
		st.Guild.MemberCount = max(n, st.Guild.MemberCount)
	}

	data, err := json.Marshal(m)
	if err != nil {
		return InviteInfo{}, false, internal("encode member", err)
	}
	add := guildhall.Event{Type: guildhall.EventGuildMemberAdd, GuildID: inv.GuildID, UserID: u.ID, Data: data}
	create, err := guildJoinEvent(m)
	if err != nil {
		return InviteInfo{}, false, err
	}
	// In this order: the joiner's sessions enter the room after the add, so they
	// do not receive their own GUILD_MEMBER_ADD.
	if err := s.publishInOrder(ctx, add, create); err != nil {
		return InviteInfo{}, false, err
	}
	return info, true, nil
}

// GetInvite is an invite's public preview (anyone with the code may look): the
// guild, the channel, the inviter, and with counts the guild's member count.
// Unknown, expired and used-up invites, and invites of a channel that is gone,
// answer Unknown Invite.
func (s *Service) GetInvite(ctx context.Context, code string) (InviteInfo, error) {
	if code == "" || len(code) > 32 {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	inv, err := s.store.Invite(ctx, code)
	if errors.Is(err, ErrNotFound) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, internal("invite", err)
	}
	if inv.Expired(s.now()) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	return s.inviteInfo(ctx, inv)
}

// inviteInfo fills an invite's guild (with its member count), channel and
// inviter.
func (s *Service) inviteInfo(ctx context.Context, inv guildhall.Invite) (InviteInfo, error) {
	g, err := s.store.Guild(ctx, inv.GuildID)
	if errors.Is(err, ErrNotFound) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, internal("guild", err)
	}
	ch, err := s.store.Channel(ctx, inv.ChannelID)
	if errors.Is(err, ErrNotFound) || (err == nil && ch.GuildID != inv.GuildID) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, internal("channel", err)
	}
	inviter, err := s.store.User(ctx, inv.InviterID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return InviteInfo{}, internal("inviter", err)
	}
	return InviteInfo{Invite: inv, Guild: g, Channel: ch, Inviter: inviter}, nil
}

// ChannelInvites lists a channel's live invites (MANAGE_CHANNELS there).
func (s *Service) ChannelInvites(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) ([]InviteInfo, error) {
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return nil, err
	}
	if err := need(p, guildhall.PermManageChannels); err != nil {
		return nil, err
	}
	return s.liveInvites(ctx, a, func(inv guildhall.Invite) bool { return inv.ChannelID == ch.ID })
}

// GuildInvites lists a guild's live invites (MANAGE_GUILD).
func (s *Service) GuildInvites(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) ([]InviteInfo, error) {
	a, err := s.accessNeeding(ctx, u, guildID, guildhall.PermManageGuild)
	if err != nil {
		return nil, err
	}
	return s.liveInvites(ctx, a, func(guildhall.Invite) bool { return true })
}

// liveInvites lists the guild's invites that keep passes and that can still be
// used (not expired, not used up, their channel there), oldest first.
func (s *Service) liveInvites(ctx context.Context, a *guildAccess, keep func(guildhall.Invite) bool) ([]InviteInfo, error) {
	invs, err := s.store.GuildInvites(ctx, a.Guild.ID)
	if err != nil {
		return nil, internal("guild invites", err)
	}
	chs, err := s.store.Channels(ctx, a.Guild.ID)
	if err != nil {
		return nil, internal("channels", err)
	}
	slices.SortFunc(invs, func(x, y guildhall.Invite) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.Code, y.Code)
	})
	users := map[guildhall.Snowflake]guildhall.User{}
	now := s.now()
	out := []InviteInfo{}
	for _, inv := range invs {
		if !keep(inv) {
			continue
		}
		ch, live := inviteLive(inv, chs, now)
		if !live {
			continue
		}
		inviter, ok := users[inv.InviterID]
		if !ok {
			inviter, err = s.store.User(ctx, inv.InviterID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, internal("inviter", err)
			}
			users[inv.InviterID] = inviter
		}
		g := a.Guild
		g.MemberCount = 0
		out = append(out, InviteInfo{Invite: inv, Guild: g, Channel: ch, Inviter: inviter})
	}
	return out, nil
}

// DeleteInvite deletes an invite: MANAGE_CHANNELS on its channel or
// MANAGE_GUILD. It publishes INVITE_DELETE and returns the invite.
func (s *Service) DeleteInvite(ctx context.Context, u guildhall.User, code, reason string) (InviteInfo, error) {
	if err := checkReason(reason); err != nil {
		return InviteInfo{}, err
	}
	if code == "" || len(code) > 32 {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	inv, err := s.store.Invite(ctx, code)
	if errors.Is(err, ErrNotFound) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, internal("invite", err)
	}
	a, err := s.access(ctx, u, inv.GuildID)
	if errors.Is(err, guildhall.ErrUnknownGuild) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, err
	}
	if !a.Base.Has(guildhall.PermManageGuild) {
		_, _, p, err := s.channelAccess(ctx, u, inv.ChannelID)
		if err != nil || !p.Has(guildhall.PermManageChannels) {
			var ge *guildhall.Error
			if err != nil && !errors.As(err, &ge) {
				return InviteInfo{}, err
			}
			return InviteInfo{}, guildhall.ErrMissingPerms
		}
	}
	info, err := s.inviteInfo(ctx, inv)
	if err != nil && !errors.Is(err, guildhall.ErrUnknownInvite) {
		return InviteInfo{}, err
	}
	if err := s.store.DeleteInvite(ctx, code); err != nil {
		if errors.Is(err, ErrNotFound) {
			return InviteInfo{}, guildhall.ErrUnknownInvite
		}
		return InviteInfo{}, internal("delete invite", err)
	}
	ev, err := guildEvent(guildhall.EventInviteDelete, inv.GuildID, inv.ChannelID, guildhall.InviteDelete{ChannelID: inv.ChannelID, GuildID: inv.GuildID, Code: code})
	if err != nil {
		return InviteInfo{}, err
	}
	ev.Requires = guildhall.PermManageChannels
	if err := s.publishEvents(ctx, ev); err != nil {
		return InviteInfo{}, err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditInviteDelete, target: code, changes: inviteChanges(inv, false)})
	info.Invite, info.Guild.MemberCount = inv, 0
	return info, nil
}

func inviteChanges(inv guildhall.Invite, created bool) []guildhall.AuditLogChange {
	vals := []struct {
		key string
		v   any
	}{{"code", inv.Code}, {"channel_id", inv.ChannelID}, {"inviter_id", inv.InviterID}, {"uses", inv.Uses}, {"max_uses", inv.MaxUses}, {"max_age", inv.MaxAge}, {"temporary", false}}
	out := make([]guildhall.AuditLogChange, 0, len(vals))
	for _, kv := range vals {
		if created {
			out = append(out, guildhall.Change(kv.key, nil, kv.v))
		} else {
			out = append(out, guildhall.Change(kv.key, kv.v, nil))
		}
	}
	return out
}

// inviteCreated publishes INVITE_CREATE and records it, after CreateInvite
// stored the invite.
func (s *Service) inviteCreated(ctx context.Context, a *guildAccess, inv guildhall.Invite, inviter guildhall.User, reason string) error {
	ev, err := guildEvent(guildhall.EventInviteCreate, inv.GuildID, inv.ChannelID, guildhall.InviteCreate{
		ChannelID: inv.ChannelID, Code: inv.Code, CreatedAt: inv.CreatedAt, GuildID: inv.GuildID, Inviter: &inviter,
		MaxAge: inv.MaxAge, MaxUses: inv.MaxUses, Uses: inv.Uses,
	})
	if err != nil {
		return err
	}
	ev.Requires = guildhall.PermManageChannels
	if err := s.publishEvents(ctx, ev); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditInviteCreate, target: inv.Code, changes: inviteChanges(inv, true)})
	return nil
}
