package guildhall_test

import (
	"encoding/json"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

func ev(t *testing.T, typ string, ch guildhall.Snowflake, v any) guildhall.Event {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return guildhall.Event{Type: typ, GuildID: 1, ChannelID: ch, Data: b}
}

// TestGuildStateApply replays a guild's history of events into a state and
// checks who may view what at each step, as a reader of the stream alone would.
func TestGuildStateApply(t *testing.T) {
	const g, owner, alice = guildhall.Snowflake(1), guildhall.Snowflake(100), guildhall.Snowflake(200)
	everyone := guildhall.Role{ID: g, Name: "@everyone", Permissions: guildhall.DefaultEveryonePermissions}
	st := guildhall.GuildState{
		Guild: guildhall.Guild{ID: g, OwnerID: owner, MemberCount: 2},
		Roles: []guildhall.Role{everyone},
		Channels: []guildhall.Channel{
			{ID: 10, GuildID: g, Name: "general"},
			{ID: 11, GuildID: g, Name: "cat", Type: guildhall.ChannelTypeGuildCategory},
		},
	}
	aliceRoles := []guildhall.Snowflake{}
	views := func(ch guildhall.Snowflake) bool {
		c, ok := st.Channel(ch)
		return ok && st.CanView(c, alice, aliceRoles)
	}
	apply := func(e guildhall.Event) guildhall.StateChange {
		c := st.Apply(e)
		if c.Member != nil && c.Member.User.ID == alice {
			aliceRoles = c.Member.Roles
		}
		return c
	}
	mods := guildhall.Role{ID: 50, Name: "mods", Position: 1, Permissions: guildhall.PermViewChannel}
	secret := guildhall.Channel{ID: 12, GuildID: g, Name: "secret", ParentID: ptr(guildhall.Snowflake(11)), PermissionOverwrites: []guildhall.PermissionOverwrite{
		{ID: g, Type: guildhall.OverwriteRole, Deny: guildhall.PermViewChannel},
		{ID: 50, Type: guildhall.OverwriteRole, Allow: guildhall.PermViewChannel},
	}}

	if c := apply(ev(t, guildhall.EventGuildRoleCreate, 0, guildhall.GuildRoleEvent{GuildID: g, Role: mods})); !c.Access {
		t.Errorf("GUILD_ROLE_CREATE: Access = false")
	}
	if c := apply(ev(t, guildhall.EventChannelCreate, 12, secret)); !c.Access || views(12) {
		t.Errorf("CHANNEL_CREATE of a private channel: Access %v, alice views %v; want true, false", c.Access, views(12))
	}
	c := apply(ev(t, guildhall.EventGuildMemberUpdate, 0, guildhall.Member{GuildID: g, User: guildhall.User{ID: alice}, Roles: []guildhall.Snowflake{50}}))
	if c.Member == nil || !views(12) {
		t.Fatalf("GUILD_MEMBER_UPDATE giving mods: Member %v, views %v", c.Member, views(12))
	}
	// A deleted role takes its overwrites with it: alice still lists its id.
	if c := apply(ev(t, guildhall.EventGuildRoleDelete, 0, guildhall.GuildRoleDelete{GuildID: g, RoleID: 50})); !c.Access || views(12) {
		t.Errorf("GUILD_ROLE_DELETE: Access %v, alice views the channel its overwrite opened: %v", c.Access, views(12))
	}
	if _, ok := st.Role(50); ok {
		t.Errorf("deleted role still in the state")
	}
	sc, _ := st.Channel(12)
	if len(sc.PermissionOverwrites) != 1 {
		t.Errorf("overwrites after the role delete = %v; want only @everyone's", sc.PermissionOverwrites)
	}
	// @everyone loses VIEW_CHANNEL: nothing is visible but to the owner.
	everyone.Permissions = guildhall.PermSendMessages
	apply(ev(t, guildhall.EventGuildRoleUpdate, 0, guildhall.GuildRoleEvent{GuildID: g, Role: everyone}))
	if views(10) {
		t.Errorf("alice views general after @everyone lost VIEW_CHANNEL")
	}
	general, _ := st.Channel(10)
	if !st.CanView(general, owner, nil) {
		t.Errorf("the owner lost general")
	}
	// Ownership moves with GUILD_UPDATE; the member count is the state's own.
	if c := apply(ev(t, guildhall.EventGuildUpdate, 0, guildhall.Guild{ID: g, Name: "new", OwnerID: alice})); !c.Access || st.Guild.OwnerID != alice || st.Guild.MemberCount != 2 {
		t.Errorf("GUILD_UPDATE: %+v", st.Guild)
	}
	// A category's delete leaves its channels without parent.
	apply(ev(t, guildhall.EventChannelDelete, 11, guildhall.Channel{ID: 11, GuildID: g}))
	if sc, _ := st.Channel(12); sc.ParentID != nil {
		t.Errorf("child of a deleted category keeps parent %v", *sc.ParentID)
	}
	if _, ok := st.Channel(11); ok {
		t.Errorf("deleted channel still in the state")
	}
	// Members come and go.
	if c := apply(ev(t, guildhall.EventGuildMemberAdd, 0, guildhall.Member{GuildID: g, User: guildhall.User{ID: 300}})); c.Member == nil || st.Guild.MemberCount != 3 {
		t.Errorf("GUILD_MEMBER_ADD: %+v, count %d", c, st.Guild.MemberCount)
	}
	if c := apply(ev(t, guildhall.EventGuildMemberRemove, 0, guildhall.GuildMemberRemove{GuildID: g, User: guildhall.User{ID: 300}})); c.Removed != 300 || st.Guild.MemberCount != 2 {
		t.Errorf("GUILD_MEMBER_REMOVE: %+v, count %d", c, st.Guild.MemberCount)
	}
	if c := apply(ev(t, guildhall.EventGuildBanAdd, 0, guildhall.GuildBanEvent{GuildID: g, User: guildhall.User{ID: 300}})); c.Banned != 300 || c.Removed != 300 {
		t.Errorf("GUILD_BAN_ADD: %+v", c)
	}
	if c := apply(ev(t, guildhall.EventGuildBanRemove, 0, guildhall.GuildBanEvent{GuildID: g, User: guildhall.User{ID: 300}})); c.Unbanned != 300 {
		t.Errorf("GUILD_BAN_REMOVE: %+v", c)
	}
	// Events that change no state besides a channel's last message id; an
	// unknown channel is reported.
	if c := apply(ev(t, guildhall.EventMessageCreate, 10, guildhall.Message{ID: 5})); c != (guildhall.StateChange{}) {
		t.Errorf("MESSAGE_CREATE changed %+v", c)
	}
	lastOf := func(ch guildhall.Snowflake) guildhall.Snowflake {
		c, _ := st.Channel(ch)
		if c.LastMessageID == nil {
			return 0
		}
		return *c.LastMessageID
	}
	if got := lastOf(10); got != 5 {
		t.Errorf("last_message_id after MESSAGE_CREATE 5 = %d; want 5", got)
	}
	apply(ev(t, guildhall.EventMessageCreate, 10, guildhall.Message{ID: 4})) // an older id (a redelivery)
	if got := lastOf(10); got != 5 {
		t.Errorf("last_message_id after an older MESSAGE_CREATE = %d; want 5", got)
	}
	// The id not first in the payload: decoded the slow way.
	apply(guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: g, ChannelID: 10, Data: []byte(`{"channel_id":"10","id":"42"}`)})
	if got := lastOf(10); got != 42 {
		t.Errorf("last_message_id after MESSAGE_CREATE {channel_id, id: 42} = %d; want 42", got)
	}
	// A channel update (which does not carry it) keeps it.
	apply(ev(t, guildhall.EventChannelUpdate, 10, guildhall.Channel{ID: 10, GuildID: g, Name: "renamed"}))
	if got := lastOf(10); got != 42 {
		t.Errorf("last_message_id after CHANNEL_UPDATE = %d; want 42 kept", got)
	}
	if c := apply(ev(t, guildhall.EventMessageCreate, 99, guildhall.Message{ID: 5})); !c.Unknown {
		t.Errorf("an event of an unknown channel: Unknown = false")
	}
	if c := apply(guildhall.Event{Type: guildhall.EventGuildRoleUpdate, Data: []byte(`{"role":`)}); c != (guildhall.StateChange{}) {
		t.Errorf("an undecodable event changed %+v", c)
	}
	if c := apply(ev(t, guildhall.EventGuildDelete, 0, guildhall.GuildDelete{ID: g})); !c.Deleted {
		t.Errorf("GUILD_DELETE: Deleted = false")
	}
}

func ptr[T any](v T) *T { return &v }

func TestRoleHierarchy(t *testing.T) {
	const g = guildhall.Snowflake(1)
	roles := []guildhall.Role{
		{ID: g, Position: 0},
		{ID: 10, Position: 3},
		{ID: 11, Position: 3}, // same position, newer: below 10
		{ID: 12, Position: 1},
	}
	for _, c := range []struct {
		member []guildhall.Snowflake
		want   guildhall.Snowflake
	}{
		{nil, g},
		{[]guildhall.Snowflake{12}, 12},
		{[]guildhall.Snowflake{12, 11}, 11},
		{[]guildhall.Snowflake{11, 10, 12}, 10},
		{[]guildhall.Snowflake{99, 12}, 12}, // a deleted role counts for nothing
	} {
		if got := guildhall.HighestRole(g, roles, c.member); got.ID != c.want {
			t.Errorf("HighestRole(%v) = %v; want %v", c.member, got.ID, c.want)
		}
	}
	if !roles[1].Above(roles[2]) || roles[2].Above(roles[1]) || roles[0].Above(roles[0]) {
		t.Errorf("Above: an older role of equal position must rank above, and no role above itself")
	}
	sorted := append([]guildhall.Role{}, roles...)
	guildhall.SortRoles(sorted)
	want := []guildhall.Snowflake{g, 12, 11, 10}
	for i := range want {
		if sorted[i].ID != want[i] {
			t.Fatalf("SortRoles = %v; want ids %v", sorted, want)
		}
	}
	if got := guildhall.ExistingRoles(g, roles, []guildhall.Snowflake{g, 99, 10}); len(got) != 1 || got[0] != 10 {
		t.Errorf("ExistingRoles = %v; want [10]", got)
	}
}

func TestTimeouts(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Minute), now.Add(-time.Minute)
	for _, c := range []struct {
		until *time.Time
		want  bool
	}{{nil, false}, {&earlier, false}, {&now, false}, {&later, true}} {
		if got := (guildhall.Member{CommunicationDisabledUntil: c.until}).TimedOut(now); got != c.want {
			t.Errorf("TimedOut(until %v) = %v; want %v", c.until, got, c.want)
		}
	}
	all := guildhall.PermViewChannel | guildhall.PermSendMessages | guildhall.PermReadMessageHistory | guildhall.PermAddReactions
	if got := guildhall.TimedOutPermissions(all); got != guildhall.PermViewChannel|guildhall.PermReadMessageHistory {
		t.Errorf("TimedOutPermissions = %v; want view and history only", got)
	}
	if got := guildhall.TimedOutPermissions(guildhall.PermAll); got != guildhall.PermAll {
		t.Errorf("an administrator's permissions were cut by a timeout")
	}
}
