package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Channels: list those a user may view, read one, create, modify, delete and
// reorder them, permission overwrites. Guilds themselves are in service_guild.go.

// GuildChannels lists the channels of a guild that the user may view.
func (s *Service) GuildChannels(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	chs, err := s.channels(ctx, guildID)
	if err != nil {
		return nil, err
	}
	out := make([]guildhall.Channel, 0, len(chs))
	for _, c := range chs {
		if a.channel(c).Has(guildhall.PermViewChannel) {
			out = append(out, c)
		}
	}
	return out, s.fillLastMessages(ctx, out)
}

// Channel returns a channel the user may view.
func (s *Service) Channel(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (guildhall.Channel, error) {
	_, ch, _, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return ch, err
	}
	chs := []guildhall.Channel{ch}
	if err := s.barrier.Wait(ctx, ch.GuildID); err != nil { // last_message_id reads its writes
		return ch, err
	}
	err = s.fillLastMessages(ctx, chs)
	return chs[0], err
}

// NewChannel is what creating a channel takes. Nil pointers mean "not given".
type NewChannel struct {
	Name                 string
	Type                 int
	Topic                *string
	Position             *int
	ParentID             *guildhall.Snowflake
	PermissionOverwrites []guildhall.PermissionOverwrite
	NSFW                 bool
	RateLimitPerUser     int
	// Reason is the audit log's (X-Audit-Log-Reason).
	Reason string
}

// CreateChannel adds a text channel or a category to a guild (MANAGE_CHANNELS
// needed: the owner and administrators) and publishes CHANNEL_CREATE.
func (s *Service) CreateChannel(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, nc NewChannel) (guildhall.Channel, error) {
	if err := checkReason(nc.Reason); err != nil {
		return guildhall.Channel{}, err
	}
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return guildhall.Channel{}, err
	}
	if !a.Base.Has(guildhall.PermManageChannels) {
		return guildhall.Channel{}, guildhall.ErrMissingPerms
	}
	if err := checkOverwriteChange(a.Base, nil, nc.PermissionOverwrites); err != nil {
		return guildhall.Channel{}, err
	}
	unlock, err := s.capLock(ctx, "channels."+guildID.String())
	if err != nil {
		return guildhall.Channel{}, err
	}
	defer unlock()
	existing, err := s.store.Channels(ctx, guildID)
	if err != nil {
		return guildhall.Channel{}, internal("channels", err)
	}
	if len(existing) >= MaxChannelsPerGuild {
		return guildhall.Channel{}, errMaxChannels
	}
	if err := s.validateChannel(a, existing, &nc); err != nil {
		return guildhall.Channel{}, err
	}
	ch := guildhall.Channel{
		ID:                   s.ids.Next(),
		Type:                 nc.Type,
		GuildID:              guildID,
		Name:                 nc.Name,
		Topic:                nc.Topic,
		ParentID:             nc.ParentID,
		PermissionOverwrites: nc.PermissionOverwrites,
		NSFW:                 nc.NSFW,
		RateLimitPerUser:     nc.RateLimitPerUser,
		Position:             len(existing),
	}
	if nc.Position != nil {
		ch.Position = *nc.Position
	}
	if ch.PermissionOverwrites == nil {
		ch.PermissionOverwrites = []guildhall.PermissionOverwrite{}
	}
	if err := s.store.PutChannel(ctx, ch); err != nil {
		return guildhall.Channel{}, internal("put channel", err)
	}
	unlock()
	data, err := json.Marshal(ch)
	if err != nil {
		return guildhall.Channel{}, internal("encode channel", err)
	}
	ev := guildhall.Event{Type: guildhall.EventChannelCreate, GuildID: guildID, ChannelID: ch.ID, Data: data}
	if _, err := s.publish(ctx, ev, s.ids.Next().String()); err != nil {
		return guildhall.Channel{}, err
	}
	s.audit(ctx, a, nc.Reason, auditEntry{action: guildhall.AuditChannelCreate, target: ch.ID.String(), changes: channelChanges(guildhall.Channel{}, ch)})
	return ch, nil
}

func (s *Service) validateChannel(a *guildAccess, existing []guildhall.Channel, nc *NewChannel) error {
	nc.Name = strings.TrimSpace(nc.Name)
	if n := utf8.RuneCountInString(nc.Name); n < 1 || n > MaxChannelName {
		return guildhall.FieldError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
	}
	if nc.Type != guildhall.ChannelTypeGuildText && nc.Type != guildhall.ChannelTypeGuildCategory {
		return guildhall.FieldError("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 4}.")
	}
	if nc.Topic != nil && utf8.RuneCountInString(*nc.Topic) > MaxTopic {
		return guildhall.FieldError("topic", "BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length.")
	}
	if nc.Position != nil && (*nc.Position < 0 || *nc.Position > 10000) {
		return guildhall.FieldError("position", "NUMBER_TYPE_MAX", "Must be between 0 and 10000.")
	}
	if nc.RateLimitPerUser < 0 || nc.RateLimitPerUser > 21600 {
		return guildhall.FieldError("rate_limit_per_user", "NUMBER_TYPE_MAX", "Must be between 0 and 21600.")
	}
	if nc.ParentID != nil && *nc.ParentID != 0 {
		if nc.Type == guildhall.ChannelTypeGuildCategory {
			return guildhall.FieldError("parent_id", "CHANNEL_PARENT_INVALID_TYPE", "A category cannot have a parent.")
		}
		found := false
		for _, c := range existing {
			if c.ID == *nc.ParentID && c.Type == guildhall.ChannelTypeGuildCategory {
				found = true
			}
		}
		if !found {
			return guildhall.FieldError("parent_id", "CHANNEL_PARENT_INVALID", "Not a category of this guild.")
		}
	} else {
		nc.ParentID = nil
	}
	if len(nc.PermissionOverwrites) > MaxOverwrites {
		return errMaxOverwrites
	}
	seen := make(map[guildhall.Snowflake]bool, len(nc.PermissionOverwrites))
	for _, o := range nc.PermissionOverwrites {
		switch o.Type {
		case guildhall.OverwriteRole:
			ok := false
			for _, r := range a.Roles {
				if r.ID == o.ID {
					ok = true
				}
			}
			if !ok {
				return guildhall.FieldError("permission_overwrites", "UNKNOWN_ROLE", "Unknown role "+o.ID.String()+".")
			}
		case guildhall.OverwriteMember:
			if o.ID == 0 {
				return guildhall.FieldError("permission_overwrites", "UNKNOWN_USER", "Unknown member.")
			}
		default:
			return guildhall.FieldError("permission_overwrites", "BASE_TYPE_CHOICES", "Overwrite type must be one of {0, 1}.")
		}
		if seen[o.ID] {
			return guildhall.FieldError("permission_overwrites", "DUPLICATE", "Duplicate overwrite for "+o.ID.String()+".")
		}
		seen[o.ID] = true
		if (o.Allow|o.Deny)&^guildhall.PermAll != 0 {
			return guildhall.FieldError("permission_overwrites", "PERMISSIONS_INVALID", "Unknown permission bits.")
		}
	}
	return nil
}

// ChannelParams is what modifying a channel takes; nil means not given, and the
// Set* fields say whether a nullable field was given.
type ChannelParams struct {
	Name             *string
	Type             *int
	Position         *int
	SetTopic         bool
	Topic            *string
	NSFW             *bool
	RateLimitPerUser *int
	SetOverwrites    bool
	Overwrites       []guildhall.PermissionOverwrite
	SetParent        bool
	ParentID         *guildhall.Snowflake
}

// ModifyChannel changes a channel (MANAGE_CHANNELS in it). Changing its
// permission overwrites also needs MANAGE_ROLES there, and may allow or deny
// only permissions the user has there. The type cannot change. It publishes
// CHANNEL_UPDATE.
func (s *Service) ModifyChannel(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, p ChannelParams, reason string) (guildhall.Channel, error) {
	if err := checkReason(reason); err != nil {
		return guildhall.Channel{}, err
	}
	unlock, err := s.channelLock(ctx, channelID)
	if err != nil {
		return guildhall.Channel{}, err
	}
	defer unlock()
	a, old, perms, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Channel{}, err
	}
	if err := need(perms, guildhall.PermManageChannels); err != nil {
		return guildhall.Channel{}, err
	}
	if p.Type != nil && *p.Type != old.Type {
		return guildhall.Channel{}, guildhall.FieldError("type", "CHANNEL_TYPE_INVALID", "The type of a channel cannot change.")
	}
	nc := NewChannel{Name: old.Name, Type: old.Type, Topic: old.Topic, Position: &old.Position, ParentID: old.ParentID,
		PermissionOverwrites: old.PermissionOverwrites, NSFW: old.NSFW, RateLimitPerUser: old.RateLimitPerUser}
	if p.Name != nil {
		nc.Name = *p.Name
	}
	if p.Position != nil {
		nc.Position = p.Position
	}
	if p.SetTopic {
		nc.Topic = p.Topic
	}
	if p.NSFW != nil {
		nc.NSFW = *p.NSFW
	}
	if p.RateLimitPerUser != nil {
		nc.RateLimitPerUser = *p.RateLimitPerUser
	}
	if p.SetOverwrites {
		nc.PermissionOverwrites = p.Overwrites
		if nc.PermissionOverwrites == nil {
			nc.PermissionOverwrites = []guildhall.PermissionOverwrite{}
		}
	}
	if p.SetParent {
		nc.ParentID = p.ParentID
		if nc.ParentID != nil && *nc.ParentID == channelID {
			return guildhall.Channel{}, guildhall.FieldError("parent_id", "CHANNEL_PARENT_INVALID", "A channel cannot be its own parent.")
		}
	}
	existing, err := s.channels(ctx, a.Guild.ID)
	if err != nil {
		return guildhall.Channel{}, err
	}
	if err := s.validateChannel(a, existing, &nc); err != nil {
		return guildhall.Channel{}, err
	}
	if err := checkOverwriteChange(perms, old.PermissionOverwrites, nc.PermissionOverwrites); err != nil {
		return guildhall.Channel{}, err
	}
	ch := old
	ch.Name, ch.Topic, ch.Position, ch.ParentID = nc.Name, nc.Topic, *nc.Position, nc.ParentID
	ch.PermissionOverwrites, ch.NSFW, ch.RateLimitPerUser = nc.PermissionOverwrites, nc.NSFW, nc.RateLimitPerUser
	changes := channelChanges(old, ch)
	if len(changes) == 0 {
		return ch, nil
	}
	if err := s.putChannels(ctx, a.Guild.ID, ch); err != nil {
		return guildhall.Channel{}, err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditChannelUpdate, target: ch.ID.String(), changes: changes})
	return ch, nil
}

// checkOverwriteChange: changing overwrites needs MANAGE_ROLES in the channel,
// and each overwrite added or changed may allow or deny only permissions the
// user has there.
func checkOverwriteChange(perms guildhall.Permissions, old, new []guildhall.PermissionOverwrite) error {
	changed := len(old) != len(new)
	for _, o := range new {
		if !slices.Contains(old, o) {
			changed = true
			if (o.Allow|o.Deny)&^perms != 0 {
				return guildhall.ErrMissingPerms
			}
		}
	}
	if changed && !perms.Has(guildhall.PermManageRoles) {
		return guildhall.ErrMissingPerms
	}
	return nil
}

// channelChanges lists the fields that differ, for the audit log.
func channelChanges(old, new guildhall.Channel) []guildhall.AuditLogChange {
	var out []guildhall.AuditLogChange
	if old.Name != new.Name {
		out = append(out, guildhall.Change("name", old.Name, new.Name))
	}
	if strp(old.Topic) != strp(new.Topic) {
		out = append(out, guildhall.Change("topic", old.Topic, new.Topic))
	}
	if old.Position != new.Position {
		out = append(out, guildhall.Change("position", old.Position, new.Position))
	}
	if idp(old.ParentID) != idp(new.ParentID) {
		out = append(out, guildhall.Change("parent_id", old.ParentID, new.ParentID))
	}
	if old.NSFW != new.NSFW {
		out = append(out, guildhall.Change("nsfw", old.NSFW, new.NSFW))
	}
	if old.RateLimitPerUser != new.RateLimitPerUser {
		out = append(out, guildhall.Change("rate_limit_per_user", old.RateLimitPerUser, new.RateLimitPerUser))
	}
	if fmt.Sprint(old.PermissionOverwrites) != fmt.Sprint(new.PermissionOverwrites) {
		out = append(out, guildhall.Change("permission_overwrites", old.PermissionOverwrites, new.PermissionOverwrites))
	}
	return out
}

func idp(p *guildhall.Snowflake) guildhall.Snowflake {
	if p == nil {
		return 0
	}
	return *p
}

// putChannels stores channels and publishes CHANNEL_UPDATE for each, in order.
func (s *Service) putChannels(ctx context.Context, guildID guildhall.Snowflake, chs ...guildhall.Channel) error {
	evs := make([]guildhall.Event, 0, len(chs))
	for _, ch := range chs {
		if err := s.store.PutChannel(ctx, ch); err != nil {
			return internal("put channel", err)
		}
		ev, err := guildEvent(guildhall.EventChannelUpdate, guildID, ch.ID, ch)
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	return s.publishEvents(ctx, evs...)
}

// DeleteChannel deletes a channel (MANAGE_CHANNELS in it) and returns it. It
// publishes CHANNEL_DELETE, then, for a category, CHANNEL_UPDATE for each of its
// channels, which lose their parent (Discord does not delete them).
func (s *Service) DeleteChannel(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, reason string) (guildhall.Channel, error) {
	if err := checkReason(reason); err != nil {
		return guildhall.Channel{}, err
	}
	a, ch, perms, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Channel{}, err
	}
	if err := need(perms, guildhall.PermManageChannels); err != nil {
		return guildhall.Channel{}, err
	}
	var children []guildhall.Channel
	if ch.Type == guildhall.ChannelTypeGuildCategory {
		all, err := s.channels(ctx, a.Guild.ID)
		if err != nil {
			return guildhall.Channel{}, err
		}
		for _, c := range all {
			if c.ParentID != nil && *c.ParentID == ch.ID {
				c.ParentID = nil
				children = append(children, c)
			}
		}
	}
	if err := s.store.DeleteChannel(ctx, ch.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return guildhall.Channel{}, internal("delete channel", err)
	}
	ev, err := guildEvent(guildhall.EventChannelDelete, a.Guild.ID, ch.ID, ch)
	if err != nil {
		return guildhall.Channel{}, err
	}
	if err := s.publishEvents(ctx, ev); err != nil {
		return guildhall.Channel{}, err
	}
	if err := s.putChannels(ctx, a.Guild.ID, children...); err != nil {
		return guildhall.Channel{}, err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditChannelDelete, target: ch.ID.String(),
		changes: []guildhall.AuditLogChange{guildhall.Change("name", ch.Name, nil), guildhall.Change("type", ch.Type, nil)}})
	return ch, nil
}

// ChannelPosition is one entry of a channel reorder.
type ChannelPosition struct {
	ID              guildhall.Snowflake
	Position        *int
	SetParent       bool
	ParentID        *guildhall.Snowflake
	LockPermissions bool
}

// ReorderChannels moves channels (MANAGE_CHANNELS): new positions, new parent
// categories, and with LockPermissions the parent's overwrites. It publishes
// CHANNEL_UPDATE for each channel that changed.
func (s *Service) ReorderChannels(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, moves []ChannelPosition, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	if len(moves) > MaxChannelsPerGuild {
		return guildhall.FieldError("channels", "BASE_TYPE_MAX_LENGTH", "Must be 500 or fewer in length.")
	}
	a, err := s.accessNeeding(ctx, u, guildID, guildhall.PermManageChannels)
	if err != nil {
		return err
	}
	all, err := s.channels(ctx, guildID)
	if err != nil {
		return err
	}
	byID := make(map[guildhall.Snowflake]guildhall.Channel, len(all))
	for _, c := range all {
		byID[c.ID] = c
	}
	var changed []guildhall.Channel
	seen := map[guildhall.Snowflake]bool{}
	for i, mv := range moves {
		field := "channels." + strconv.Itoa(i)
		c, ok := byID[mv.ID]
		if !ok {
			return guildhall.FieldError(field+".id", "CHANNEL_INVALID", "Unknown channel "+mv.ID.String()+".")
		}
		if seen[mv.ID] {
			return guildhall.FieldError(field+".id", "DUPLICATE", "Channel "+mv.ID.String()+" appears twice.")
		}
		seen[mv.ID] = true
		old := c
		if mv.Position != nil {
			if *mv.Position < 0 || *mv.Position > 10000 {
				return guildhall.FieldError(field+".position", "NUMBER_TYPE_MAX", "Must be between 0 and 10000.")
			}
			c.Position = *mv.Position
		}
		if mv.SetParent {
			c.ParentID = nil
			if mv.ParentID != nil && *mv.ParentID != 0 {
				parent, ok := byID[*mv.ParentID]
				if !ok || parent.Type != guildhall.ChannelTypeGuildCategory || c.Type == guildhall.ChannelTypeGuildCategory {
					return guildhall.FieldError(field+".parent_id", "CHANNEL_PARENT_INVALID", "Not a category of this guild, or a category.")
				}
				c.ParentID = &parent.ID
				if mv.LockPermissions {
					c.PermissionOverwrites = slices.Clone(parent.PermissionOverwrites)
				}
			}
		}
		if err := checkOverwriteChange(a.channel(old), old.PermissionOverwrites, c.PermissionOverwrites); err != nil {
			return err
		}
		if len(channelChanges(old, c)) > 0 {
			changed = append(changed, c)
		}
	}
	if err := s.putChannels(ctx, guildID, changed...); err != nil {
		return err
	}
	for _, c := range changed {
		s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditChannelUpdate, target: c.ID.String(), changes: channelChanges(byID[c.ID], c)})
	}
	return nil
}

// EditOverwrite sets a channel's overwrite for a role or a member (MANAGE_ROLES
// in the channel; only permissions the user has there) and publishes
// CHANNEL_UPDATE.
func (s *Service) EditOverwrite(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, o guildhall.PermissionOverwrite, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	if o.Type != guildhall.OverwriteRole && o.Type != guildhall.OverwriteMember {
		return guildhall.FieldError("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 1}.")
	}
	if (o.Allow|o.Deny)&^guildhall.PermAll != 0 {
		return guildhall.FieldError("allow", "PERMISSIONS_INVALID", "Unknown permission bits.")
	}
	unlock, err := s.channelLock(ctx, channelID)
	if err != nil {
		return err
	}
	defer unlock()
	a, ch, perms, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	if err := need(perms, guildhall.PermManageRoles); err != nil {
		return err
	}
	opts := &guildhall.AuditLogOptions{ID: o.ID.String(), Type: strconv.Itoa(o.Type)}
	if o.Type == guildhall.OverwriteRole {
		r, err := a.role(o.ID)
		if err != nil {
			return err
		}
		opts.RoleName = r.Name
	} else if _, err := s.member(ctx, a, o.ID); err != nil {
		return err
	}
	next := slices.Clone(ch.PermissionOverwrites)
	action := guildhall.AuditChannelOverwriteCreate
	var before *guildhall.PermissionOverwrite
	if i := slices.IndexFunc(next, func(x guildhall.PermissionOverwrite) bool { return x.ID == o.ID }); i >= 0 {
		if next[i] == o {
			return nil
		}
		prev := next[i]
		before, action = &prev, guildhall.AuditChannelOverwriteUpdate
		next[i] = o
	} else {
		if len(next) >= MaxOverwrites {
			return errMaxOverwrites
		}
		next = append(next, o)
	}
	if err := checkOverwriteChange(perms, ch.PermissionOverwrites, next); err != nil {
		return err
	}
	ch.PermissionOverwrites = next
	if err := s.putChannels(ctx, a.Guild.ID, ch); err != nil {
		return err
	}
	changes := []guildhall.AuditLogChange{guildhall.Change("allow", nil, o.Allow), guildhall.Change("deny", nil, o.Deny)}
	if before != nil {
		changes = []guildhall.AuditLogChange{guildhall.Change("allow", before.Allow, o.Allow), guildhall.Change("deny", before.Deny, o.Deny)}
	}
	s.audit(ctx, a, reason, auditEntry{action: action, target: ch.ID.String(), changes: changes, options: opts})
	return nil
}

// channelLock serializes the changes of one channel across api processes: a
// channel is read, changed and written whole (its overwrites, its topic), so two
// changes at once would lose one, and the last could pass MaxOverwrites.
func (s *Service) channelLock(ctx context.Context, channelID guildhall.Snowflake) (func(), error) {
	return s.capLock(ctx, "channel."+channelID.String())
}

// DeleteOverwrite removes a channel's overwrite (MANAGE_ROLES in the channel)
// and publishes CHANNEL_UPDATE; removing one that is not there changes nothing.
func (s *Service) DeleteOverwrite(ctx context.Context, u guildhall.User, channelID, overwriteID guildhall.Snowflake, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	unlock, err := s.channelLock(ctx, channelID)
	if err != nil {
		return err
	}
	defer unlock()
	a, ch, perms, err := s.channelAccess(ctx, u, channelID)
	if err != nil {
		return err
	}
	if err := need(perms, guildhall.PermManageRoles); err != nil {
		return err
	}
	i := slices.IndexFunc(ch.PermissionOverwrites, func(x guildhall.PermissionOverwrite) bool { return x.ID == overwriteID })
	if i < 0 {
		return nil
	}
	gone := ch.PermissionOverwrites[i]
	ch.PermissionOverwrites = slices.Delete(slices.Clone(ch.PermissionOverwrites), i, i+1)
	if err := s.putChannels(ctx, a.Guild.ID, ch); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditChannelOverwriteDelete, target: ch.ID.String(),
		changes: []guildhall.AuditLogChange{guildhall.Change("allow", gone.Allow, nil), guildhall.Change("deny", gone.Deny, nil)},
		options: &guildhall.AuditLogOptions{ID: gone.ID.String(), Type: strconv.Itoa(gone.Type)}})
	return nil
}
