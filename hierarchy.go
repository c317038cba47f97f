package guildhall

import (
	"cmp"
	"slices"
	"time"
)

// Discord's role hierarchy and timeouts: who may act on whom, and what a member
// who is timed out may still do.
//
// A member's highest role is the role of greatest position among theirs, @everyone
// (position 0) when they have none. Roles of equal position are ordered by id, the
// older (smaller id) above. Nobody but the owner manages a role at or above their
// highest role, nor a member whose highest role is at or above theirs; the owner
// is above everyone and nobody acts on the owner. ADMINISTRATOR grants every
// permission but does not lift the hierarchy.

// Above reports whether role a ranks above role b.
func (a Role) Above(b Role) bool {
	if a.Position != b.Position {
		return a.Position > b.Position
	}
	return a.ID < b.ID
}

// SortRoles orders roles from the lowest (@everyone) to the highest.
func SortRoles(roles []Role) {
	slices.SortFunc(roles, func(a, b Role) int {
		if a.Position != b.Position {
			return cmp.Compare(a.Position, b.Position)
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

// HighestRole is the highest of the member's roles that exist in roles, or the
// @everyone role (id guildID, position 0) when the member has none of them.
func HighestRole(guildID Snowflake, roles []Role, memberRoles []Snowflake) Role {
	top := Role{ID: guildID}
	for _, r := range roles {
		if r.ID == guildID {
			top = r
		}
	}
	for _, id := range memberRoles {
		for _, r := range roles {
			if r.ID == id && r.ID != guildID && r.Above(top) {
				top = r
			}
		}
	}
	return top
}

// ExistingRoles returns the ids of memberRoles that name a role of roles (not
// @everyone), in order: what a membership still means after roles were deleted.
func ExistingRoles(guildID Snowflake, roles []Role, memberRoles []Snowflake) []Snowflake {
	out := make([]Snowflake, 0, len(memberRoles))
	for _, id := range memberRoles {
		if id == guildID {
			continue
		}
		for _, r := range roles {
			if r.ID == id {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// MaxTimeout is the longest timeout Discord allows.
const MaxTimeout = 28 * 24 * time.Hour

// TimedOut reports whether the member's timeout lasts past now.
func (m Member) TimedOut(now time.Time) bool {
	return m.CommunicationDisabledUntil != nil && now.Before(*m.CommunicationDisabledUntil)
}

// TimedOutPermissions is what a timed-out member keeps of permissions p: viewing
// channels and reading history, unless p has ADMINISTRATOR (the owner and
// administrators are exempt, as on Discord).
func TimedOutPermissions(p Permissions) Permissions {
	if p.Has(PermAdministrator) {
		return p
	}
	return p & (PermViewChannel | PermReadMessageHistory)
}
