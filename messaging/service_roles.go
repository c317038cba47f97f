package messaging

import (
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Roles: list, create, modify, reorder, delete, and a member's roles. Managing
// roles needs MANAGE_ROLES and obeys the hierarchy (service_access.go): nobody
// but the owner touches a role at or above their highest, moves a role to or
// above it, or grants a permission they do not have.

// Role limits (Discord's).
const (
	MaxRoles        = 250
	MaxRoleName     = 100
	MaxRolePosition = 10000
)

// RoleParams is what creating or modifying a role takes; nil means not given.
type RoleParams struct {
	Name        *string
	Permissions *guildhall.Permissions
	Color       *int
	Hoist       *bool
	Mentionable *bool
}

func (p RoleParams) validate() error {
	if p.Name != nil {
		if n := utf8.RuneCountInString(strings.TrimSpace(*p.Name)); n < 1 || n > MaxRoleName {
			return guildhall.FieldError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
		}
	}
	if p.Color != nil && (*p.Color < 0 || *p.Color > 0xFFFFFF) {
		return guildhall.FieldError("color", "NUMBER_TYPE_MAX", "Must be between 0 and 16777215.")
	}
	if p.Permissions != nil && *p.Permissions&^guildhall.PermAll != 0 {
		return guildhall.FieldError("permissions", "PERMISSIONS_INVALID", "Unknown permission bits.")
	}
	return nil
}

// apply sets the given fields of r.
func (p RoleParams) apply(r *guildhall.Role) {
	if p.Name != nil {
		r.Name = strings.TrimSpace(*p.Name)
	}
	if p.Permissions != nil {
		r.Permissions = *p.Permissions
	}
	if p.Color != nil {
		r.Color = *p.Color
	}
	if p.Hoist != nil {
		r.Hoist = *p.Hoist
	}
	if p.Mentionable != nil {
		r.Mentionable = *p.Mentionable
	}
}

// roleChanges lists what differs between two versions of a role, for the audit log.
func roleChanges(old, new guildhall.Role, created bool) []guildhall.AuditLogChange {
	var out []guildhall.AuditLogChange
	add := func(key string, o, n any, same bool) {
		if created {
			out = append(out, guildhall.Change(key, nil, n))
		} else if !same {
			out = append(out, guildhall.Change(key, o, n))
		}
	}
	add("name", old.Name, new.Name, old.Name == new.Name)
	add("permissions", old.Permissions, new.Permissions, old.Permissions == new.Permissions)
	add("color", old.Color, new.Color, old.Color == new.Color)
	add("hoist", old.Hoist, new.Hoist, old.Hoist == new.Hoist)
	add("mentionable", old.Mentionable, new.Mentionable, old.Mentionable == new.Mentionable)
	if !created && old.Position != new.Position {
		out = append(out, guildhall.Change("position", old.Position, new.Position))
	}
	return out
}

// manageRoles loads the user's access and checks MANAGE_ROLES and the reason.
func (s *Service) manageRoles(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, reason string) (*guildAccess, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	return a, need(a.Base, guildhall.PermManageRoles)
}

// GuildRoles lists a guild's roles from the lowest to the highest (members only).
func (s *Service) GuildRoles(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) ([]guildhall.Role, error) {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	return sortedRoles(a.Roles), nil
}

// GuildRole returns one role of a guild (members only).
func (s *Service) GuildRole(ctx context.Context, u guildhall.User, guildID, roleID guildhall.Snowflake) (guildhall.Role, error) {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return guildhall.Role{}, err
	}
	return a.role(roleID)
}

// CreateRole adds a role at position 1 (the bottom, above @everyone; a newer
// role ranks below older ones of the same position). Its permissions default to
// @everyone's, and may not include any the user lacks.
func (s *Service) CreateRole(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, p RoleParams, reason string) (guildhall.Role, error) {
	if err := p.validate(); err != nil {
		return guildhall.Role{}, err
	}
	a, err := s.manageRoles(ctx, u, guildID, reason)
	if err != nil {
		return guildhall.Role{}, err
	}
	// A count cap like the channels' (caps.go): counted and written under
	// the guild's roles lock, so parallel creations cannot pass it.
	unlock, err := s.capLock(ctx, "roles."+guildID.String())
	if err != nil {
		return guildhall.Role{}, err
	}
	defer unlock()
	existing, err := s.store.Roles(ctx, guildID)
	if err != nil {
		return guildhall.Role{}, internal("roles", err)
	}
	if len(existing) >= MaxRoles {
		return guildhall.Role{}, guildhall.ErrMaxRoles
	}
	r := guildhall.Role{ID: s.ids.Next(), Name: "new role", Position: 1}
	if everyone, err := a.role(guildID); err == nil {
		r.Permissions = everyone.Permissions
	}
	p.apply(&r)
	if r.Permissions&^a.Base != 0 {
		return guildhall.Role{}, guildhall.ErrMissingPerms
	}
	if err := s.store.PutRole(ctx, guildID, r); err != nil {
		return guildhall.Role{}, internal("put role", err)
	}
	unlock()
	ev, err := guildEvent(guildhall.EventGuildRoleCreate, guildID, 0, guildhall.GuildRoleEvent{GuildID: guildID, Role: r})
	if err != nil {
		return guildhall.Role{}, err
	}
	if err := s.publishEvents(ctx, ev); err != nil {
		return guildhall.Role{}, err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditRoleCreate, target: r.ID.String(), changes: roleChanges(guildhall.Role{}, r, true)})
	return r, nil
}

// ModifyRole changes a role below the user's highest. Permissions it adds must
// be ones the user has. @everyone's name cannot change.
func (s *Service) ModifyRole(ctx context.Context, u guildhall.User, guildID, roleID guildhall.Snowflake, p RoleParams, reason string) (guildhall.Role, error) {
	if err := p.validate(); err != nil {
		return guildhall.Role{}, err
	}
	a, err := s.manageRoles(ctx, u, guildID, reason)
	if err != nil {
		return guildhall.Role{}, err
	}
	old, err := a.role(roleID)
	if err != nil {
		return guildhall.Role{}, err
	}
	if !a.managesRole(old) {
		return guildhall.Role{}, guildhall.ErrMissingPerms
	}
	r := old
	p.apply(&r)
	if roleID == guildID && r.Name != old.Name {
		return guildhall.Role{}, guildhall.ErrInvalidRole
	}
	if added := r.Permissions &^ old.Permissions; added&^a.Base != 0 {
		return guildhall.Role{}, guildhall.ErrMissingPerms
	}
	if r == old {
		return r, nil
	}
	if err := s.store.PutRole(ctx, guildID, r); err != nil {
		return guildhall.Role{}, internal("put role", err)
	}
	ev, err := guildEvent(guildhall.EventGuildRoleUpdate, guildID, 0, guildhall.GuildRoleEvent{GuildID: guildID, Role: r})
	if err != nil {
		return guildhall.Role{}, err
	}
	if err := s.publishEvents(ctx, ev); err != nil {
		return guildhall.Role{}, err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditRoleUpdate, target: r.ID.String(), changes: roleChanges(old, r, false)})
	return r, nil
}

// RolePosition is one entry of a reorder.
type RolePosition struct {
	ID       guildhall.Snowflake
	Position *int
}

// ReorderRoles sets the positions given (roles of equal position rank by id,
// the older above, as on Discord) and returns every role from the lowest to the
// highest. @everyone stays at 0; anyone but the owner may move only roles below
// their highest, and only to below it.
func (s *Service) ReorderRoles(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, moves []RolePosition, reason string) ([]guildhall.Role, error) {
	if len(moves) > MaxRoles {
		return nil, guildhall.FieldError("roles", "BASE_TYPE_MAX_LENGTH", "Must be 250 or fewer in length.")
	}
	a, err := s.manageRoles(ctx, u, guildID, reason)
	if err != nil {
		return nil, err
	}
	top := a.highest()
	var changed []guildhall.Role
	seen := map[guildhall.Snowflake]bool{}
	for _, mv := range moves {
		r, err := a.role(mv.ID)
		if err != nil {
			return nil, err
		}
		if seen[mv.ID] {
			return nil, guildhall.FieldError("roles", "DUPLICATE", "Role "+mv.ID.String()+" appears twice.")
		}
		seen[mv.ID] = true
		if mv.Position == nil || *mv.Position == r.Position {
			continue
		}
		if mv.ID == guildID {
			return nil, guildhall.ErrInvalidRole
		}
		if *mv.Position < 1 || *mv.Position > MaxRolePosition {
			return nil, guildhall.FieldError("position", "NUMBER_TYPE_MAX", "Must be between 1 and 10000.")
		}
		moved := r
		moved.Position = *mv.Position
		if !a.owner() && !(top.Above(r) && top.Above(moved)) {
			return nil, guildhall.ErrMissingPerms
		}
		changed = append(changed, moved)
	}
	evs := make([]guildhall.Event, 0, len(changed))
	for _, r := range changed {
		if err := s.store.PutRole(ctx, guildID, r); err != nil {
			return nil, internal("put role", err)
		}
		ev, err := guildEvent(guildhall.EventGuildRoleUpdate, guildID, 0, guildhall.GuildRoleEvent{GuildID: guildID, Role: r})
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	if err := s.publishEvents(ctx, evs...); err != nil {
		return nil, err
	}
	all := slices.Clone(a.Roles)
	for _, r := range changed {
		for i := range all {
			if all[i].ID == r.ID {
				s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditRoleUpdate, target: r.ID.String(), changes: roleChanges(all[i], r, false)})
				all[i] = r
			}
		}
	}
	return sortedRoles(all), nil
}

// DeleteRole deletes a role below the user's highest (not @everyone). Channel
// overwrites for it are removed too, each with CHANNEL_UPDATE after the
// GUILD_ROLE_DELETE: members still list the role's id, and an overwrite left
// behind would still apply to them.
func (s *Service) DeleteRole(ctx context.Context, u guildhall.User, guildID, roleID guildhall.Snowflake, reason string) error {
	a, err := s.manageRoles(ctx, u, guildID, reason)
	if err != nil {
		return err
	}
	r, err := a.role(roleID)
	if err != nil {
		return err
	}
	if roleID == guildID {
		return guildhall.ErrInvalidRole
	}
	if !a.managesRole(r) {
		return guildhall.ErrMissingPerms
	}
	chs, err := s.channels(ctx, guildID)
	if err != nil {
		return err
	}
	if err := s.store.DeleteRole(ctx, guildID, roleID); err != nil {
		return internal("delete role", err)
	}
	del, err := guildEvent(guildhall.EventGuildRoleDelete, guildID, 0, guildhall.GuildRoleDelete{GuildID: guildID, RoleID: roleID})
	if err != nil {
		return err
	}
	evs := []guildhall.Event{del}
	for _, ch := range chs {
		kept := slices.DeleteFunc(slices.Clone(ch.PermissionOverwrites), func(o guildhall.PermissionOverwrite) bool {
			return o.Type == guildhall.OverwriteRole && o.ID == roleID
		})
		if len(kept) == len(ch.PermissionOverwrites) {
			continue
		}
		ch.PermissionOverwrites = kept
		if err := s.store.PutChannel(ctx, ch); err != nil {
			return internal("put channel", err)
		}
		ev, err := guildEvent(guildhall.EventChannelUpdate, guildID, ch.ID, ch)
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	if err := s.publishEvents(ctx, evs...); err != nil {
		return err
	}
	s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditRoleDelete, target: roleID.String(), changes: roleChanges(guildhall.Role{}, r, true)})
	return nil
}

// AddMemberRole gives a member a role below the user's highest; a member who
// has it already changes nothing.
func (s *Service) AddMemberRole(ctx context.Context, u guildhall.User, guildID, userID, roleID guildhall.Snowflake, reason string) error {
	return s.changeMemberRole(ctx, u, guildID, userID, roleID, true, reason)
}

// RemoveMemberRole takes a role below the user's highest from a member; a
// member without it changes nothing.
func (s *Service) RemoveMemberRole(ctx context.Context, u guildhall.User, guildID, userID, roleID guildhall.Snowflake, reason string) error {
	return s.changeMemberRole(ctx, u, guildID, userID, roleID, false, reason)
}

func (s *Service) changeMemberRole(ctx context.Context, u guildhall.User, guildID, userID, roleID guildhall.Snowflake, add bool, reason string) error {
	a, err := s.manageRoles(ctx, u, guildID, reason)
	if err != nil {
		return err
	}
	r, err := a.role(roleID)
	if err != nil {
		return err
	}
	if roleID == guildID {
		return guildhall.ErrInvalidRole
	}
	if !a.managesRole(r) {
		return guildhall.ErrMissingPerms
	}
	m, err := s.member(ctx, a, userID)
	if err != nil {
		return err
	}
	has := slices.Contains(m.Roles, roleID)
	if has == add {
		return nil
	}
	if add {
		m.Roles = append(slices.Clone(m.Roles), roleID)
	} else {
		m.Roles = slices.DeleteFunc(slices.Clone(m.Roles), func(id guildhall.Snowflake) bool { return id == roleID })
	}
	return s.putMember(ctx, a, m, reason, []guildhall.AuditLogChange{roleChange(r, add)}, nil)
}

// roleChange is the audit log's $add or $remove of one role.
func roleChange(r guildhall.Role, add bool) guildhall.AuditLogChange {
	key := "$remove"
	if add {
		key = "$add"
	}
	return guildhall.Change(key, nil, []map[string]string{{"id": r.ID.String(), "name": r.Name}})
}

// putMember stores a changed membership, publishes GUILD_MEMBER_UPDATE and
// records it: MEMBER_ROLE_UPDATE for role changes, MEMBER_UPDATE for the rest.
// The membership was read, changed and written back: two changes of one member
// at the same instant may lose one (the last write wins).
func (s *Service) putMember(ctx context.Context, a *guildAccess, m guildhall.Member, reason string, roleChanges, otherChanges []guildhall.AuditLogChange) error {
	m.GuildID = a.Guild.ID
	if err := s.store.PutMember(ctx, m); err != nil {
		return internal("put member", err)
	}
	ev, err := memberUpdate(m)
	if err != nil {
		return err
	}
	if err := s.publishEvents(ctx, ev); err != nil {
		return err
	}
	target := m.User.ID.String()
	if len(roleChanges) > 0 {
		s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMemberRoleUpdate, target: target, changes: roleChanges})
	}
	if len(otherChanges) > 0 {
		s.audit(ctx, a, reason, auditEntry{action: guildhall.AuditMemberUpdate, target: target, changes: otherChanges})
	}
	return nil
}
