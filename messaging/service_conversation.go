package messaging

import (
	"context"
	"errors"

	guildhall "github.com/guildhall/guildhall"
)

// conversation is a channel messages are posted to and read from, as the user
// asking sees it: a guild text channel the user may view (guild set), or a DM or
// group DM the user takes part in (dm set). perms are the user's permissions in
// it. Every message, reaction and ack operation starts here, so that guild
// channels and DMs share one path.
type conversation struct {
	ID      guildhall.Snowflake
	GuildID guildhall.Snowflake // zero for a DM
	Type    int
	perms   guildhall.Permissions

	guild   *guildAccess // nil for a DM
	channel guildhall.Channel
	dm      *guildhall.PrivateChannel
}

// dmPermissions is what a participant may do in a DM: Discord's implicit
// permissions there (no @everyone, no managing others' messages).
const dmPermissions = guildhall.PermViewChannel | guildhall.PermSendMessages | guildhall.PermReadMessageHistory |
	guildhall.PermAddReactions | guildhall.PermEmbedLinks | guildhall.PermAttachFiles

// conversationAccess loads the channel channelID as the user may use it:
// ErrUnknownChannel when there is no such channel, ErrMissingAccess when the user
// may not view it (not a member of its guild, no VIEW_CHANNEL, not a participant
// of the DM). Both lookups go through the access layer (channelAccess, dmAccess).
func (s *Service) conversationAccess(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (*conversation, error) {
	a, ch, p, err := s.channelAccess(ctx, u, channelID)
	if err == nil {
		return guildConversation(a, ch, p), nil
	}
	if !errors.Is(err, guildhall.ErrUnknownChannel) {
		return nil, err
	}
	dm, err := s.dmAccess(ctx, u, channelID)
	if err != nil {
		return nil, err
	}
	return &conversation{ID: dm.ID, Type: dm.Type, perms: dmPermissions, dm: dm}, nil
}

// conversations is the access layer for many channels of one user at once
// (READY's read states): each guild's access is loaded once, not per channel.
type conversations struct {
	s      *Service
	u      guildhall.User
	guilds map[guildhall.Snowflake]*guildAccess
}

func (s *Service) conversations(u guildhall.User) *conversations {
	return &conversations{s: s, u: u, guilds: map[guildhall.Snowflake]*guildAccess{}}
}

// get is conversationAccess with the guild's access loaded at most once.
func (cs *conversations) get(ctx context.Context, channelID guildhall.Snowflake) (*conversation, error) {
	ch, err := cs.s.store.Channel(ctx, channelID)
	if errors.Is(err, ErrNotFound) {
		dm, err := cs.s.dmAccess(ctx, cs.u, channelID)
		if err != nil {
			return nil, err
		}
		return &conversation{ID: dm.ID, Type: dm.Type, perms: dmPermissions, dm: dm}, nil
	}
	if err != nil {
		return nil, internal("channel", err)
	}
	a, ok := cs.guilds[ch.GuildID]
	if !ok {
		a, err = cs.s.access(ctx, cs.u, ch.GuildID)
		if errors.Is(err, guildhall.ErrUnknownGuild) || errors.Is(err, guildhall.ErrMissingAccess) {
			a, err = nil, nil // remembered: not a member
		}
		if err != nil {
			return nil, err
		}
		cs.guilds[ch.GuildID] = a
	}
	if a == nil {
		return nil, guildhall.ErrMissingAccess
	}
	p := a.channel(ch)
	if !p.Has(guildhall.PermViewChannel) {
		return nil, guildhall.ErrMissingAccess
	}
	return guildConversation(a, ch, p), nil
}

// guildConversation is a guild channel as channelAccess loaded it.
func guildConversation(a *guildAccess, ch guildhall.Channel, p guildhall.Permissions) *conversation {
	return &conversation{ID: ch.ID, GuildID: ch.GuildID, Type: ch.Type, perms: p, guild: a, channel: ch}
}

// textual reports whether messages can be posted to the conversation.
func (c *conversation) textual() bool {
	switch c.Type {
	case guildhall.ChannelTypeGuildText, guildhall.ChannelTypeDM, guildhall.ChannelTypeGroupDM:
		return true
	}
	return false
}

// member is the user's membership in the conversation's guild, for the member
// field of dispatches; nil in a DM.
func (c *conversation) member() *guildhall.Member {
	if c.guild == nil {
		return nil
	}
	m := c.guild.Member
	return &m
}

// event is an event of the conversation caused by user.
func (c *conversation) event(typ string, user guildhall.Snowflake, data []byte) guildhall.Event {
	return guildhall.Event{Type: typ, GuildID: c.GuildID, ChannelID: c.ID, UserID: user, Data: data}
}

// wait is the read barrier of the conversation: it returns once the store holds
// every event of it that the stream held when called.
func (s *Service) wait(ctx context.Context, c *conversation) error {
	if c.dm != nil {
		return s.waitDM(ctx, c.ID)
	}
	return s.barrier.Wait(ctx, c.GuildID)
}

// publishConversation publishes an event of a conversation: to its guild's
// subject, or, for a DM, to the DM's log and each participant (publishDM).
func (s *Service) publishConversation(ctx context.Context, c *conversation, ev guildhall.Event, id string) error {
	if c.dm != nil {
		return s.publishDM(ctx, c.dm, ev, id)
	}
	_, err := s.publish(ctx, ev, id)
	return err
}
