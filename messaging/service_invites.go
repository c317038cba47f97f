package messaging

import (
	"context"
	"errors"

	guildhall "github.com/guildhall/guildhall"
)

// GetInvite is an invite as its code shows it to anyone who has the code (GET
// /invites/{code}): the guild with its member count, the channel, the inviter.
// Unknown, expired and used-up invites, and those whose guild or channel is
// gone, answer Unknown Invite. Nothing changes: no use is counted.
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

// inviteInfo reads what an invite shows: its guild (with the member count), its
// channel, its inviter (zero if the account is gone).
func (s *Service) inviteInfo(ctx context.Context, inv guildhall.Invite) (InviteInfo, error) {
	g, err := s.store.Guild(ctx, inv.GuildID)
	if errors.Is(err, ErrNotFound) {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, internal("guild", err)
	}
	ch, err := s.store.Channel(ctx, inv.ChannelID)
	if errors.Is(err, ErrNotFound) || err == nil && ch.GuildID != inv.GuildID {
		return InviteInfo{}, guildhall.ErrUnknownInvite
	}
	if err != nil {
		return InviteInfo{}, internal("channel", err)
	}
	inviter, err := s.store.User(ctx, inv.InviterID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return InviteInfo{}, internal("inviter", err)
	}
	if n, err := s.store.MemberCount(ctx, inv.GuildID); err == nil {
		g.MemberCount = max(g.MemberCount, n)
	}
	return InviteInfo{Invite: inv, Guild: g, Channel: ch, Inviter: inviter}, nil
}
