package guildhall

import (
	"testing"
)

// FuzzPermissions checks the rules of Discord's permission computation that
// every answer must obey, whatever the roles and overwrites:
//   - the owner and administrators have every permission, overwrites or not;
//   - base permissions are @everyone's plus the member's roles' (so a role more
//     never takes a permission away), and nothing a role outside the member's
//     list grants;
//   - with no overwrites a channel allows what the guild does;
//   - the member's own overwrite is applied last: what it allows is allowed,
//     what it denies (and does not allow) is denied;
//   - the result never holds bits beyond PermAll.
func FuzzPermissions(f *testing.F) {
	f.Add(uint64(DefaultEveryonePermissions), uint64(PermManageChannels), uint64(PermSendMessages), uint64(0),
		uint64(PermViewChannel), uint64(PermSendMessages), uint64(PermSendMessages), uint64(0), uint8(0b011), false)
	f.Add(uint64(0), uint64(PermAdministrator), uint64(0), uint64(PermViewChannel), uint64(0), uint64(PermViewChannel),
		uint64(0), uint64(PermViewChannel), uint8(0b010), false)
	f.Add(uint64(1<<63), uint64(1<<62), uint64(0), uint64(1<<61), uint64(0), uint64(0), uint64(0), uint64(0), uint8(0xff), true)
	f.Fuzz(func(t *testing.T, everyone, role1, role2, evDeny, evAllow, roleDeny, memberAllow, memberDeny uint64, has uint8, owner bool) {
		const guildID, userID, otherUser, r1, r2 = Snowflake(100), Snowflake(200), Snowflake(300), Snowflake(101), Snowflake(102)
		g := Guild{ID: guildID, OwnerID: otherUser}
		if owner {
			g.OwnerID = userID
		}
		roles := []Role{
			{ID: guildID, Permissions: Permissions(everyone)},
			{ID: r1, Permissions: Permissions(role1)},
			{ID: r2, Permissions: Permissions(role2)},
		}
		var memberRoles []Snowflake
		if has&1 != 0 {
			memberRoles = append(memberRoles, r1)
		}
		if has&2 != 0 {
			memberRoles = append(memberRoles, r2)
		}
		base := BasePermissions(g, roles, memberRoles, userID)

		admin := Permissions(everyone).Has(PermAdministrator) ||
			(has&1 != 0 && Permissions(role1).Has(PermAdministrator)) ||
			(has&2 != 0 && Permissions(role2).Has(PermAdministrator))
		if owner || admin {
			if base != PermAll {
				t.Fatalf("owner %v admin %v: base = %x; want PermAll", owner, admin, base)
			}
		} else {
			want := Permissions(everyone)
			if has&1 != 0 {
				want |= Permissions(role1)
			}
			if has&2 != 0 {
				want |= Permissions(role2)
			}
			if base != want {
				t.Fatalf("base = %x; want everyone|member roles = %x", base, want)
			}
			withMore := BasePermissions(g, roles, []Snowflake{r1, r2}, userID)
			if !withMore.Has(base & PermAll) { // an administrator's PermAll drops unknown bits

				t.Fatalf("a role more took permissions away: %x → %x", base, withMore)
			}
		}

		bare := Channel{ID: 9, GuildID: guildID}
		if p := ChannelPermissions(base, guildID, bare, memberRoles, userID); p != base {
			t.Fatalf("no overwrites: channel = %x; want base %x", p, base)
		}
		ch := Channel{ID: 9, GuildID: guildID, PermissionOverwrites: []PermissionOverwrite{
			{ID: guildID, Type: OverwriteRole, Allow: Permissions(evAllow), Deny: Permissions(evDeny)},
			{ID: r1, Type: OverwriteRole, Deny: Permissions(roleDeny)},
			{ID: userID, Type: OverwriteMember, Allow: Permissions(memberAllow), Deny: Permissions(memberDeny)},
			{ID: otherUser, Type: OverwriteMember, Deny: PermAll},
		}}
		p := ChannelPermissions(base, guildID, ch, memberRoles, userID)
		if base.Has(PermAdministrator) {
			if p != PermAll {
				t.Fatalf("administrator in a channel = %x; want PermAll", p)
			}
			return
		}
		if !p.Has(Permissions(memberAllow)) {
			t.Fatalf("member overwrite allows %x; channel = %x", memberAllow, p)
		}
		if denied := Permissions(memberDeny) &^ Permissions(memberAllow); p&denied != 0 {
			t.Fatalf("member overwrite denies %x; channel = %x", denied, p)
		}
		if base&^PermAll == 0 && evAllow&^uint64(PermAll) == 0 && memberAllow&^uint64(PermAll) == 0 && p&^PermAll != 0 {
			t.Fatalf("channel = %x has bits beyond PermAll from in-range inputs", p)
		}
	})
}
