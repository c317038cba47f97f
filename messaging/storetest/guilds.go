package storetest

import (
	"fmt"
	"slices"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// ---- guilds, channels, roles

func testGuilds(t *testing.T, e *env) {
	g := guildhall.Guild{ID: e.id(), Name: "Tavern", Icon: ptr("icon1"), OwnerID: e.id()}
	check(t, e.s.PutGuild(e.ctx, g), "PutGuild")
	got, err := e.s.Guild(e.ctx, g.ID)
	check(t, err, "Guild(%v)", g.ID)
	if got.ID != g.ID || got.Name != g.Name || strp(got.Icon) != strp(g.Icon) || got.OwnerID != g.OwnerID || got.MemberCount != 0 {
		t.Errorf("Guild(%v) = %+v; want %+v", g.ID, got, g)
	}

	g.Name, g.Icon = "Great Hall", nil
	check(t, e.s.PutGuild(e.ctx, g), "PutGuild(replace)")
	got, err = e.s.Guild(e.ctx, g.ID)
	check(t, err, "Guild(%v)", g.ID)
	if got.Name != "Great Hall" || got.Icon != nil {
		t.Errorf("Guild(%v) after replace = %+v; want name %q and no icon", g.ID, got, "Great Hall")
	}

	_, err = e.s.Guild(e.ctx, e.id())
	wantErr(t, err, messaging.ErrNotFound, "Guild(unknown)")
}

func testChannels(t *testing.T, e *env) {
	g, other := e.id(), e.id()
	cat := guildhall.Channel{ID: e.id(), Type: guildhall.ChannelTypeGuildCategory, GuildID: g, Name: "Text", Position: 3}
	full := guildhall.Channel{
		ID: e.id(), Type: guildhall.ChannelTypeGuildText, GuildID: g, Name: "general", Position: 2,
		Topic: ptr("say hi"), ParentID: ptr(cat.ID), NSFW: true, RateLimitPerUser: 5,
		PermissionOverwrites: []guildhall.PermissionOverwrite{
			{ID: g, Type: guildhall.OverwriteRole, Allow: 1 << 10, Deny: 1 << 11},
			{ID: e.id(), Type: guildhall.OverwriteMember, Allow: 1 << 40},
		},
	}
	a := guildhall.Channel{ID: e.id(), GuildID: g, Name: "a", Position: 0}
	b := guildhall.Channel{ID: e.id(), GuildID: g, Name: "b", Position: 1}
	c := guildhall.Channel{ID: e.id(), GuildID: g, Name: "c", Position: 0} // ties with a: id decides
	elsewhere := guildhall.Channel{ID: e.id(), GuildID: other, Name: "elsewhere"}
	for _, ch := range []guildhall.Channel{c, full, elsewhere, b, cat, a} {
		check(t, e.s.PutChannel(e.ctx, ch), "PutChannel(%s)", ch.Name)
	}

	got, err := e.s.Channel(e.ctx, full.ID)
	check(t, err, "Channel(%v)", full.ID)
	if d := channelDiff(got, full); len(d) > 0 {
		t.Errorf("Channel(%v): %v", full.ID, d)
	}

	checkList := func(when string, want ...guildhall.Channel) {
		t.Helper()
		list, err := e.s.Channels(e.ctx, g)
		check(t, err, "Channels(%v)", g)
		names := func(cs []guildhall.Channel) (s []string) {
			for _, c := range cs {
				s = append(s, fmt.Sprintf("%s(pos %d)", c.Name, c.Position))
			}
			return s
		}
		if fmt.Sprint(names(list)) != fmt.Sprint(names(want)) {
			t.Fatalf("Channels(%v) %s = %v; want %v", g, when, names(list), names(want))
		}
		for i := range list {
			if d := channelDiff(list[i], want[i]); len(d) > 0 {
				t.Errorf("Channels(%v) %s [%d]: %v", g, when, i, d)
			}
		}
	}
	checkList("", a, c, b, full, cat)

	// Replace: a reorder and a rename.
	full.Position, full.Name, full.Topic = 0, "lobby", nil
	check(t, e.s.PutChannel(e.ctx, full), "PutChannel(replace)")
	checkList("after replace", full, a, c, b, cat) // full has the smallest id of the three

	list, err := e.s.Channels(e.ctx, other)
	check(t, err, "Channels(%v)", other)
	if len(list) != 1 || list[0].ID != elsewhere.ID {
		t.Errorf("Channels(other guild) = %v; want only %v", list, elsewhere.ID)
	}
	list, err = e.s.Channels(e.ctx, e.id())
	check(t, err, "Channels(empty guild)")
	if len(list) != 0 {
		t.Errorf("Channels(empty guild) = %v; want none", list)
	}
	_, err = e.s.Channel(e.ctx, e.id())
	wantErr(t, err, messaging.ErrNotFound, "Channel(unknown)")
}

func testRoles(t *testing.T, e *env) {
	g, other := e.id(), e.id()
	everyone := guildhall.Role{ID: g, Name: "@everyone", Permissions: 1<<10 | 1<<11}
	mod := guildhall.Role{ID: e.id(), Name: "mod", Color: 0x3498db, Hoist: true, Position: 2, Permissions: 1 << 13, Mentionable: true}
	bot := guildhall.Role{ID: e.id(), Name: "bot", Position: 1, Managed: true}
	for _, r := range []guildhall.Role{mod, everyone, bot} {
		check(t, e.s.PutRole(e.ctx, g, r), "PutRole(%s)", r.Name)
	}
	check(t, e.s.PutRole(e.ctx, other, guildhall.Role{ID: other, Name: "@everyone"}), "PutRole(other)")
	mod.Name, mod.Permissions = "moderator", 1<<13|1<<2
	check(t, e.s.PutRole(e.ctx, g, mod), "PutRole(replace)")

	got, err := e.s.Roles(e.ctx, g)
	check(t, err, "Roles(%v)", g)
	slices.SortFunc(got, func(a, b guildhall.Role) int { return cmpID(a.ID, b.ID) })
	want := []guildhall.Role{everyone, mod, bot}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("Roles(%v) = %+v; want %+v", g, got, want)
	}
	got, err = e.s.Roles(e.ctx, e.id())
	check(t, err, "Roles(empty guild)")
	if len(got) != 0 {
		t.Errorf("Roles(empty guild) = %+v; want none", got)
	}
}

func cmpID(a, b guildhall.Snowflake) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
