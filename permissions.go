package guildhall

import (
	"errors"
	"strconv"
)

// Permissions is a bit set in Discord's numbering; on the wire a decimal string.
type Permissions uint64

// Permission bits used by Guildhall (Discord's values).
const (
	PermCreateInstantInvite Permissions = 1 << 0
	PermKickMembers         Permissions = 1 << 1
	PermBanMembers          Permissions = 1 << 2
	PermAdministrator       Permissions = 1 << 3
	PermManageChannels      Permissions = 1 << 4
	PermManageGuild         Permissions = 1 << 5
	PermAddReactions        Permissions = 1 << 6
	PermViewAuditLog        Permissions = 1 << 7
	PermViewChannel         Permissions = 1 << 10
	PermSendMessages        Permissions = 1 << 11
	PermManageMessages      Permissions = 1 << 13
	PermEmbedLinks          Permissions = 1 << 14
	PermAttachFiles         Permissions = 1 << 15
	PermReadMessageHistory  Permissions = 1 << 16
	PermMentionEveryone     Permissions = 1 << 17
	PermChangeNickname      Permissions = 1 << 26
	PermManageNicknames     Permissions = 1 << 27
	PermManageRoles         Permissions = 1 << 28
	PermModerateMembers     Permissions = 1 << 40

	// PermAll is every permission; the owner and administrators have it.
	PermAll Permissions = 1<<47 - 1
)

// DefaultEveryonePermissions is what the @everyone role of a new guild allows:
// members see channels, read history, send messages with links and files, react
// and invite others. Creating channels, managing others' messages and mentioning
// everyone stay with the owner.
const DefaultEveryonePermissions = PermViewChannel | PermSendMessages | PermReadMessageHistory |
	PermCreateInstantInvite | PermAddReactions | PermEmbedLinks | PermAttachFiles

// Has reports whether every bit of q is set.
func (p Permissions) Has(q Permissions) bool { return p&q == q }

func (p Permissions) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24)
	b = append(b, '"')
	b = strconv.AppendUint(b, uint64(p), 10)
	return append(b, '"'), nil
}

func (p *Permissions) UnmarshalJSON(b []byte) error {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return errors.New("invalid permissions")
	}
	*p = Permissions(v)
	return nil
}

// BasePermissions computes a member's guild-wide permissions: the owner has all,
// otherwise @everyone (the role whose id is the guild id) plus each role of the
// member; administrators get all.
func BasePermissions(guild Guild, roles []Role, memberRoles []Snowflake, userID Snowflake) Permissions {
	if userID == guild.OwnerID {
		return PermAll
	}
	var p Permissions
	for _, r := range roles {
		if r.ID == guild.ID {
			p |= r.Permissions
		}
	}
	for _, id := range memberRoles {
		for _, r := range roles {
			if r.ID == id {
				p |= r.Permissions
			}
		}
	}
	if p.Has(PermAdministrator) {
		return PermAll
	}
	return p
}

// ChannelPermissions applies a channel's overwrites to base permissions in Discord's
// order: @everyone overwrite, then role overwrites together, then the member's own.
func ChannelPermissions(base Permissions, guildID Snowflake, ch Channel, memberRoles []Snowflake, userID Snowflake) Permissions {
	if base.Has(PermAdministrator) {
		return PermAll
	}
	p := base
	for _, o := range ch.PermissionOverwrites {
		if o.Type == OverwriteRole && o.ID == guildID {
			p = p&^o.Deny | o.Allow
		}
	}
	var allow, deny Permissions
	for _, o := range ch.PermissionOverwrites {
		if o.Type != OverwriteRole || o.ID == guildID {
			continue
		}
		for _, id := range memberRoles {
			if o.ID == id {
				allow |= o.Allow
				deny |= o.Deny
			}
		}
	}
	p = p&^deny | allow
	for _, o := range ch.PermissionOverwrites {
		if o.Type == OverwriteMember && o.ID == userID {
			p = p&^o.Deny | o.Allow
		}
	}
	return p
}
