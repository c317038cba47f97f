package messaging

import (
	"context"
	"errors"
	"slices"
	"strings"

	guildhall "github.com/guildhall/guildhall"
)

// Invites beyond creating and accepting them (service_guild.go): the public
// preview, lists per channel and per guild, deletes, and the events. INVITE_CREATE
// and INVITE_DELETE go only to members who may manage the invite's channel
// (Event.Requires), as on Discord.

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
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	if err := need(a.Base, guildhall.PermManageGuild); err != nil {
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
