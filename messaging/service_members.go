package messaging

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Members: read one, search, modify (nick, roles, timeout), one's own nick, and
// leaving a guild.

// Member limits.
const (
	MaxNick = 32
	// MaxMembersSearchScan bounds how many members one search reads: there is no
	// username index, the guild is paged through in id order.
	MaxMembersSearchScan = 10000
	membersSearchPage    = 1000
)

// GuildMember returns a member of a guild the user is a member of.
func (s *Service) GuildMember(ctx context.Context, u guildhall.User, guildID, userID guildhall.Snowflake) (guildhall.Member, error) {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return guildhall.Member{}, err
	}
	m, err := s.member(ctx, a, userID)
	return memberObject(m), err
}

// SearchMembers returns up to limit (1..1000) members whose username or nick
// starts with query (ignoring case), in user id order, reading at most
// MaxMembersSearchScan members.
func (s *Service) SearchMembers(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, query string, limit int) ([]guildhall.Member, error) {
	if n := utf8.RuneCountInString(query); n < 1 || n > 100 {
		return nil, guildhall.FieldError("query", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
	}
	if limit < 1 || limit > 1000 {
		return nil, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 1000.")
	}
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(query)
	out := []guildhall.Member{}
	var after guildhall.Snowflake
	for scanned := 0; scanned < MaxMembersSearchScan && len(out) < limit; {
		page, err := s.store.Members(ctx, guildID, after, membersSearchPage)
		if err != nil {
			return nil, internal("members", err)
		}
		for _, m := range page {
			if strings.HasPrefix(strings.ToLower(m.User.Username), q) || (m.Nick != nil && strings.HasPrefix(strings.ToLower(*m.Nick), q)) {
				m.Roles = guildhall.ExistingRoles(a.Guild.ID, a.Roles, m.Roles)
				out = append(out, memberObject(m))
				if len(out) == limit {
					break
				}
			}
		}
		scanned += len(page)
		if len(page) < membersSearchPage {
			break
		}
		after = page[len(page)-1].User.ID
	}
	return out, nil
}

// MemberParams is what modifying a member takes; each Set* says whether its
// field was given (a nil value then clears it).
type MemberParams struct {
	SetNick    bool
	Nick       *string
	SetRoles   bool
	Roles      []guildhall.Snowflake
	SetTimeout bool
	Timeout    *time.Time
	// Voice fields are refused: Guildhall has no voice, so no member is ever
	// in a voice channel (Discord answers 400 then too).
	Voice bool
}

// ModifyMember changes another member (or oneself): a nick needs
// MANAGE_NICKNAMES (CHANGE_NICKNAME for one's own), roles MANAGE_ROLES with every
// role added or removed below the user's highest, a timeout
// (communication_disabled_until, at most 28 days ahead; null or a past time
// ends it) MODERATE_MEMBERS and never applies to the owner or an
// administrator. Acting on another member's nick or timeout needs to outrank
// them. It publishes GUILD_MEMBER_UPDATE when anything changed.
func (s *Service) ModifyMember(ctx context.Context, u guildhall.User, guildID, userID guildhall.Snowflake, p MemberParams, reason string) (guildhall.Member, error) {
	if err := checkReason(reason); err != nil {
		return guildhall.Member{}, err
	}
	if p.Voice {
		return guildhall.Member{}, guildhall.FieldError("channel_id", "VOICE_NOT_CONNECTED", "Target user is not connected to voice.")
	}
	if p.SetNick {
		if err := validNick(p.Nick); err != nil {
			return guildhall.Member{}, err
		}
	}
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		return guildhall.Member{}, err
	}
	m, err := s.member(ctx, a, userID)
	if err != nil {
		return guildhall.Member{}, err
	}
	self := userID == u.ID
	var roleLog, otherLog []guildhall.AuditLogChange
	changed := m
	if p.SetNick {
		nick := normNick(p.Nick)
		if self {
			if !a.Base.Has(guildhall.PermChangeNickname) && !a.Base.Has(guildhall.PermManageNicknames) {
				return guildhall.Member{}, guildhall.ErrMissingPerms
			}
		} else if !a.Base.Has(guildhall.PermManageNicknames) || !a.outranks(m) {
			return guildhall.Member{}, guildhall.ErrMissingPerms
		}
		if strp(nick) != strp(m.Nick) {
			otherLog = append(otherLog, guildhall.Change("nick", m.Nick, nick))
			changed.Nick = nick
		}
	}
	if p.SetRoles {
		if err := need(a.Base, guildhall.PermManageRoles); err != nil {
			return guildhall.Member{}, err
		}
		want, err := s.checkRoleSet(a, m.Roles, p.Roles)
		if err != nil {
			return guildhall.Member{}, err
		}
		for _, id := range want {
			if !slices.Contains(m.Roles, id) {
				r, _ := a.role(id)
				roleLog = append(roleLog, roleChange(r, true))
			}
		}
		for _, id := range m.Roles {
			if !slices.Contains(want, id) {
				r, _ := a.role(id)
				roleLog = append(roleLog, roleChange(r, false))
			}
		}
		changed.Roles = want
	}
	if p.SetTimeout {
		if err := need(a.Base, guildhall.PermModerateMembers); err != nil {
			return guildhall.Member{}, err
		}
		if !a.outranks(m) || a.basePerms(m).Has(guildhall.PermAdministrator) {
			return guildhall.Member{}, guildhall.ErrMissingPerms
		}
		until := p.Timeout
		now := s.now()
		if until != nil && !until.After(now) {
			until = nil // a time in the past ends the timeout
		}
		if until != nil && until.Sub(now) > guildhall.MaxTimeout {
			return guildhall.Member{}, guildhall.FieldError("communication_disabled_until", "COMMUNICATION_DISABLED_MAX",
				"Timeouts can last at most 28 days.")
		}
		if until != nil {
			t := until.UTC()
			until = &t
		}
		if timep(until) != timep(m.CommunicationDisabledUntil) {
			otherLog = append(otherLog, guildhall.Change("communication_disabled_until", m.CommunicationDisabledUntil, until))
			changed.CommunicationDisabledUntil = until
		}
	}
	if len(roleLog) == 0 && len(otherLog) == 0 {
		return memberObject(m), nil
	}
	if err := s.putMember(ctx, a, changed, reason, roleLog, otherLog); err != nil {
		return guildhall.Member{}, err
	}
	return memberObject(changed), nil
}

// ModifyCurrentMember changes the user's own nick (CHANGE_NICKNAME).
func (s *Service) ModifyCurrentMember(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake, setNick bool, nick *string, reason string) (guildhall.Member, error) {
	return s.ModifyMember(ctx, u, guildID, u.ID, MemberParams{SetNick: setNick, Nick: nick}, reason)
}

// checkRoleSet validates a member's new role list: roles of the guild (not
// @everyone), each one added or removed below the user's highest. It returns
// the list without repeats.
func (s *Service) checkRoleSet(a *guildAccess, old, want []guildhall.Snowflake) ([]guildhall.Snowflake, error) {
	if len(want) > MaxRoles {
		return nil, guildhall.FieldError("roles", "BASE_TYPE_MAX_LENGTH", "Must be 250 or fewer in length.")
	}
	out := make([]guildhall.Snowflake, 0, len(want))
	for _, id := range want {
		if slices.Contains(out, id) {
			continue
		}
		r, err := a.role(id)
		if err != nil || id == a.Guild.ID {
			return nil, guildhall.FieldError("roles", "UNKNOWN_ROLE", "Unknown role "+id.String()+".")
		}
		if !slices.Contains(old, id) && !a.managesRole(r) {
			return nil, guildhall.ErrMissingPerms
		}
		out = append(out, id)
	}
	for _, id := range old {
		if !slices.Contains(out, id) {
			if r, err := a.role(id); err == nil && !a.managesRole(r) {
				return nil, guildhall.ErrMissingPerms
			}
		}
	}
	return out, nil
}

func validNick(nick *string) error {
	if nick != nil && utf8.RuneCountInString(*nick) > MaxNick {
		return guildhall.FieldError("nick", "BASE_TYPE_MAX_LENGTH", "Must be 32 or fewer in length.")
	}
	return nil
}

// normNick makes an empty nick no nick.
func normNick(nick *string) *string {
	if nick == nil || strings.TrimSpace(*nick) == "" {
		return nil
	}
	n := strings.TrimSpace(*nick)
	return &n
}

func strp(p *string) string {
	if p == nil {
		return "\x00nil"
	}
	return *p
}

func timep(p *time.Time) string {
	if p == nil {
		return ""
	}
	return p.UTC().Format(time.RFC3339Nano)
}

// LeaveGuild ends the user's membership (DELETE /users/@me/guilds/{id}): the
// owner cannot leave (Invalid Guild; transfer the guild or delete it). It
// publishes GUILD_MEMBER_REMOVE, after which gateways send the user's sessions
// nothing more of the guild, and GUILD_DELETE to the user.
func (s *Service) LeaveGuild(ctx context.Context, u guildhall.User, guildID guildhall.Snowflake) error {
	a, err := s.access(ctx, u, guildID)
	if err != nil {
		if errors.Is(err, guildhall.ErrMissingAccess) {
			return guildhall.ErrUnknownGuild // not in it: nothing to leave
		}
		return err
	}
	if a.owner() {
		return guildhall.ErrInvalidGuild
	}
	return s.removeMember(ctx, guildID, a.Member.User)
}

// removeMember ends a membership and publishes GUILD_MEMBER_REMOVE and the
// user's GUILD_DELETE (memberRemoved). A membership already gone is not an
// error (a concurrent removal published them).
func (s *Service) removeMember(ctx context.Context, guildID guildhall.Snowflake, user guildhall.User) error {
	if err := s.store.RemoveMember(ctx, guildID, user.ID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return internal("remove member", err)
	}
	evs, err := memberRemoved(guildID, user)
	if err != nil {
		return err
	}
	return s.publishEvents(ctx, evs...)
}

// Members pages a guild's members by user id, after the given id, at most limit
// (1..1000) of them. Only members may list.
func (s *Service) Members(ctx context.Context, u guildhall.User, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error) {
	if limit < 1 || limit > 1000 {
		return nil, guildhall.FieldError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 1000.")
	}
	if _, err := s.access(ctx, u, guildID); err != nil {
		return nil, err
	}
	ms, err := s.store.Members(ctx, guildID, after, limit)
	if err != nil {
		return nil, internal("members", err)
	}
	if ms == nil {
		ms = []guildhall.Member{}
	}
	return ms, nil
}
