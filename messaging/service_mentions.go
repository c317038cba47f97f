package messaging

import (
	"context"
	"errors"
	"slices"
	"strings"

	guildhall "github.com/guildhall/guildhall"
)

// AllowedMentions is Discord's allowed_mentions: which mentions found in the
// content ping. Parse lists the kinds parsed wholesale ("users", "roles",
// "everyone"); Users and Roles allow those ids only (each exclusive with its
// Parse kind). RepliedUser mentions the author of the message replied to.
type AllowedMentions struct {
	Parse       []string
	Users       []guildhall.Snowflake
	Roles       []guildhall.Snowflake
	RepliedUser bool
}

// MaxAllowedMentions is Discord's limit on the ids of allowed_mentions.users and
// .roles, and Guildhall's on the distinct user and role mentions parsed from one
// message (2000 characters hold fewer than 90 anyway).
const MaxAllowedMentions = 100

func (am *AllowedMentions) validate() error {
	if am == nil {
		return nil
	}
	for _, p := range am.Parse {
		switch p {
		case "users", "roles", "everyone":
		default:
			return guildhall.FieldError("allowed_mentions", "BASE_TYPE_CHOICES", `Value must be one of ("roles", "users", "everyone").`)
		}
	}
	if len(am.Users) > MaxAllowedMentions || len(am.Roles) > MaxAllowedMentions {
		return guildhall.FieldError("allowed_mentions", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
	}
	if slices.Contains(am.Parse, "users") && len(am.Users) > 0 {
		return guildhall.FieldError("allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE", `parse:["users"] and users: [ids] are mutually exclusive.`)
	}
	if slices.Contains(am.Parse, "roles") && len(am.Roles) > 0 {
		return guildhall.FieldError("allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE", `parse:["roles"] and roles: [ids] are mutually exclusive.`)
	}
	return nil
}

// allowsUser, allowsRole and allowsEveryone apply allowed_mentions; without it
// (nil) every mention in the content counts, as Discord's default is for
// messages.
func (am *AllowedMentions) allowsUser(id guildhall.Snowflake) bool {
	return am == nil || slices.Contains(am.Parse, "users") || slices.Contains(am.Users, id)
}

func (am *AllowedMentions) allowsRole(id guildhall.Snowflake) bool {
	return am == nil || slices.Contains(am.Parse, "roles") || slices.Contains(am.Roles, id)
}

func (am *AllowedMentions) allowsEveryone() bool {
	return am == nil || slices.Contains(am.Parse, "everyone")
}

// allowsRepliedUser: a reply pings its target's author unless allowed_mentions
// says otherwise (replied_user defaults to false once the object is given).
func (am *AllowedMentions) allowsRepliedUser() bool { return am == nil || am.RepliedUser }

// contentMentions is what the content of a message mentions, before
// allowed_mentions and permissions: user ids (<@id>, <@!id>), role ids (<@&id>),
// and whether it says @everyone or @here; ids distinct, in order of appearance, at
// most MaxAllowedMentions of each.
type contentMentions struct {
	users, roles []guildhall.Snowflake
	everyone     bool
}

func parseMentions(content string) contentMentions {
	var cm contentMentions
	cm.everyone = strings.Contains(content, "@everyone") || strings.Contains(content, "@here")
	for rest := content; ; {
		i := strings.Index(rest, "<@")
		if i < 0 {
			break
		}
		rest = rest[i+2:]
		role := false
		switch {
		case strings.HasPrefix(rest, "&"):
			role, rest = true, rest[1:]
		case strings.HasPrefix(rest, "!"):
			rest = rest[1:]
		}
		end := strings.IndexByte(rest, '>')
		if end < 1 || end > 20 {
			continue
		}
		id, err := guildhall.ParseSnowflake(rest[:end])
		if err != nil || id == 0 {
			continue
		}
		rest = rest[end+1:]
		list := &cm.users
		if role {
			list = &cm.roles
		}
		if !slices.Contains(*list, id) && len(*list) < MaxAllowedMentions {
			*list = append(*list, id)
		}
	}
	return cm
}

// mentions is what a message ends up mentioning.
type mentions struct {
	users    []guildhall.User
	roles    []guildhall.Snowflake
	everyone bool
}

// userIDs lists the mentioned users' ids.
func (m mentions) userIDs() []guildhall.Snowflake {
	ids := make([]guildhall.Snowflake, len(m.users))
	for i, u := range m.users {
		ids[i] = u.ID
	}
	return ids
}

// resolveMentions turns the content's mentions into the message's, as Discord
// does: a user counts if allowed and a member of the guild (a participant of the
// DM); a role if allowed, of the guild, and mentionable or the author has
// MENTION_EVERYONE; @everyone and @here if allowed and the author has
// MENTION_EVERYONE. repliedTo, when not nil, is the author of the message
// replied to, mentioned if allowed.
func (s *Service) resolveMentions(ctx context.Context, c *conversation, content string, am *AllowedMentions, repliedTo *guildhall.User) (mentions, error) {
	cm := parseMentions(content)
	var out mentions
	ids := slices.DeleteFunc(slices.Clone(cm.users), func(id guildhall.Snowflake) bool { return !am.allowsUser(id) })
	if repliedTo != nil && am.allowsRepliedUser() && !slices.Contains(ids, repliedTo.ID) {
		ids = append(ids, repliedTo.ID)
	}
	for _, id := range ids {
		u, ok, err := s.mentionable(ctx, c, id)
		if err != nil {
			return mentions{}, err
		}
		if ok {
			out.users = append(out.users, u)
		}
	}
	if c.guild == nil { // a DM has no roles and no @everyone
		return out, nil
	}
	everyonePerm := c.perms.Has(guildhall.PermMentionEveryone)
	for _, id := range cm.roles {
		if !am.allowsRole(id) || id == c.GuildID {
			continue
		}
		for _, r := range c.guild.Roles {
			if r.ID == id && (r.Mentionable || everyonePerm) {
				out.roles = append(out.roles, id)
			}
		}
	}
	out.everyone = cm.everyone && am.allowsEveryone() && everyonePerm
	return out, nil
}

// mentionable finds user id where c is: a member of its guild, or a participant
// of the DM. ok is false for anyone else (the mention stays plain text).
func (s *Service) mentionable(ctx context.Context, c *conversation, id guildhall.Snowflake) (guildhall.User, bool, error) {
	if c.dm != nil {
		for _, u := range c.dm.Recipients {
			if u.ID == id {
				return u, true, nil
			}
		}
		return guildhall.User{}, false, nil
	}
	m, err := s.store.Member(ctx, c.GuildID, id)
	if errors.Is(err, ErrNotFound) {
		return guildhall.User{}, false, nil
	}
	if err != nil {
		return guildhall.User{}, false, internal("mentioned member", err)
	}
	if m.User.ID == 0 {
		if m.User, err = s.store.User(ctx, id); err != nil {
			return guildhall.User{}, false, internal("mentioned user", err)
		}
	}
	return m.User, true, nil
}

// MentionsUser reports whether message m pings user u, a member with roles
// (nil in a DM): named in mentions, one of its roles mentioned, or @everyone.
// Every message of a DM pings the other participants, as Discord counts them.
func MentionsUser(m *guildhall.Message, u guildhall.Snowflake, roles []guildhall.Snowflake, dm bool) bool {
	if m.Author.ID == u {
		return false
	}
	if dm || m.MentionEveryone {
		return true
	}
	for _, x := range m.Mentions {
		if x.ID == u {
			return true
		}
	}
	for _, r := range m.MentionRoles {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}
