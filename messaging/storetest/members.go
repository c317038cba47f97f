package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// ---- members

func testMembers(t *testing.T, e *env) {
	g1, g2, g3 := e.id(), e.id(), e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g1, Name: "one", OwnerID: g1}), "PutGuild")
	joined := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)

	var users []guildhall.User
	for i := range 3 {
		u := guildhall.User{ID: e.id(), Username: fmt.Sprintf("m%d_%d", i, g1), Discriminator: "0", GlobalName: ptr(fmt.Sprint("Member ", i))}
		check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: u, PasswordHash: "h"}), "CreateUser")
		users = append(users, u)
	}
	// Members are put with the user id only: the store fills User from the account.
	put := func(g guildhall.Snowflake, u guildhall.User, nick *string, roles ...guildhall.Snowflake) guildhall.Member {
		t.Helper()
		m := guildhall.Member{GuildID: g, User: guildhall.User{ID: u.ID}, Nick: nick, Roles: roles, JoinedAt: joined, Mute: nick != nil}
		check(t, e.s.PutMember(e.ctx, m), "PutMember(%v, %v)", g, u.ID)
		m.User = u
		return m
	}
	m0 := put(g1, users[0], ptr("zero"), g1+100)
	m1 := put(g1, users[1], nil)
	m2 := put(g1, users[2], nil, g1+100, g1+101)

	got, err := e.s.Member(e.ctx, g1, users[0].ID)
	check(t, err, "Member(%v, %v)", g1, users[0].ID)
	if d := memberDiff(got, m0); len(d) > 0 {
		t.Errorf("Member(%v, %v): %v", g1, users[0].ID, d)
	}

	countIs := func(when string, want int) {
		t.Helper()
		n, err := e.s.MemberCount(e.ctx, g1)
		check(t, err, "MemberCount")
		if n != want {
			t.Errorf("MemberCount(%v) %s = %d; want %d", g1, when, n, want)
		}
		g, err := e.s.Guild(e.ctx, g1)
		check(t, err, "Guild")
		if g.MemberCount != want {
			t.Errorf("Guild(%v).MemberCount %s = %d; want %d", g1, when, g.MemberCount, want)
		}
	}
	countIs("after 3 joins", 3)

	// Replacing a membership changes it but does not count it twice.
	put(g1, users[1], ptr("one"), g1+101)
	m1 = put(g1, users[1], ptr("uno"), g1+101)
	countIs("after replacing a member twice", 3)
	got, err = e.s.Member(e.ctx, g1, users[1].ID)
	check(t, err, "Member")
	if d := memberDiff(got, m1); len(d) > 0 {
		t.Errorf("Member(%v, %v) after replace: %v", g1, users[1].ID, d)
	}

	// Replacing the guild keeps the count.
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g1, Name: "renamed", OwnerID: g1}), "PutGuild(replace)")
	countIs("after PutGuild", 3)

	list, err := e.s.Members(e.ctx, g1, 0, 10)
	check(t, err, "Members(%v, 0, 10)", g1)
	want := []guildhall.Member{m0, m1, m2}
	if len(list) != len(want) {
		t.Fatalf("Members(%v, 0, 10) = %d members; want %d", g1, len(list), len(want))
	}
	for i := range want {
		if d := memberDiff(list[i], want[i]); len(d) > 0 {
			t.Errorf("Members(%v, 0, 10)[%d]: %v", g1, i, d)
		}
	}

	// UserGuilds ascending whatever the join order.
	put(g3, users[0], nil)
	put(g2, users[0], nil)
	gs, err := e.s.UserGuilds(e.ctx, users[0].ID)
	check(t, err, "UserGuilds")
	if fmt.Sprint(gs) != fmt.Sprint([]guildhall.Snowflake{g1, g2, g3}) {
		t.Errorf("UserGuilds(%v) = %v; want %v", users[0].ID, gs, []guildhall.Snowflake{g1, g2, g3})
	}
	gs, err = e.s.UserGuilds(e.ctx, users[1].ID)
	check(t, err, "UserGuilds")
	if fmt.Sprint(gs) != fmt.Sprint([]guildhall.Snowflake{g1}) {
		t.Errorf("UserGuilds(%v) = %v; want [%v]", users[1].ID, gs, g1)
	}
	gs, err = e.s.UserGuilds(e.ctx, e.id())
	check(t, err, "UserGuilds(unknown)")
	if len(gs) != 0 {
		t.Errorf("UserGuilds(unknown) = %v; want none", gs)
	}
	n, err := e.s.MemberCount(e.ctx, g2)
	check(t, err, "MemberCount")
	if n != 1 {
		t.Errorf("MemberCount(%v) = %d; want 1", g2, n)
	}

	_, err = e.s.Member(e.ctx, g1, e.id())
	wantErr(t, err, messaging.ErrNotFound, "Member(guild, unknown user)")
	_, err = e.s.Member(e.ctx, e.id(), users[0].ID)
	wantErr(t, err, messaging.ErrNotFound, "Member(unknown guild, user)")
	n, err = e.s.MemberCount(e.ctx, e.id())
	check(t, err, "MemberCount(unknown)")
	if n != 0 {
		t.Errorf("MemberCount(unknown guild) = %d; want 0", n)
	}
}

func testMemberPaging(t *testing.T, e *env) {
	// Neighbouring guild ids on both sides catch pages that run past their guild.
	before, g, after := e.id(), e.id(), e.id()
	const n = 2500
	ids := make([]guildhall.Snowflake, n)
	for i := range ids {
		ids[i] = e.id()
	}
	order := slices.Clone(ids)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	joined := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range order {
		m := guildhall.Member{GuildID: g, User: guildhall.User{ID: id, Username: fmt.Sprint("u", id)}, JoinedAt: joined}
		check(t, e.s.PutMember(e.ctx, m), "PutMember(%v)", id)
	}
	for _, other := range []guildhall.Snowflake{before, after} {
		for _, id := range []guildhall.Snowflake{ids[0], ids[n/2], ids[n-1], e.id()} {
			check(t, e.s.PutMember(e.ctx, guildhall.Member{GuildID: other, User: guildhall.User{ID: id}, JoinedAt: joined}), "PutMember(other guild)")
		}
	}
	if c, err := e.s.MemberCount(e.ctx, g); err != nil || c != n {
		t.Errorf("MemberCount(%v) = %d, %v; want %d", g, c, err, n)
	}

	for _, limit := range []int{1000, 7} {
		var all []guildhall.Snowflake
		cursor := guildhall.Snowflake(0)
		for page := 0; ; page++ {
			list, err := e.s.Members(e.ctx, g, cursor, limit)
			check(t, err, "Members(after=%v, limit=%d)", cursor, limit)
			if wantLen := min(limit, n-len(all)); len(list) != wantLen {
				t.Fatalf("Members(after=%v, limit=%d) page %d = %d members; want %d", cursor, limit, page, len(list), wantLen)
			}
			if len(list) == 0 {
				break
			}
			for _, m := range list {
				if m.GuildID != g {
					t.Fatalf("Members(%v, after=%v) returned a member of guild %v", g, cursor, m.GuildID)
				}
				if m.User.Username != fmt.Sprint("u", m.User.ID) {
					t.Fatalf("Members(after=%v): member %v has username %q; want %q", cursor, m.User.ID, m.User.Username, fmt.Sprint("u", m.User.ID))
				}
				all = append(all, m.User.ID)
			}
			cursor = list[len(list)-1].User.ID
		}
		if !slices.Equal(all, ids) {
			t.Errorf("Members paged by %d: got %d ids, want %d, ascending (first mismatch at %d)", limit, len(all), n, mismatch(all, ids))
		}
	}

	// A cursor in the middle, the last member, and a cursor below every member.
	mid := ids[1234]
	list, err := e.s.Members(e.ctx, g, mid, 3)
	check(t, err, "Members(after=%v)", mid)
	if got := memberIDs(list); fmt.Sprint(got) != fmt.Sprint(ids[1235:1238]) {
		t.Errorf("Members(after=%v, limit=3) = %v; want %v", mid, got, ids[1235:1238])
	}
	list, err = e.s.Members(e.ctx, g, ids[n-1], 10)
	check(t, err, "Members(after=last)")
	if len(list) != 0 {
		t.Errorf("Members(after=last, limit=10) = %v; want none", memberIDs(list))
	}
	list, err = e.s.Members(e.ctx, g, before, 2)
	check(t, err, "Members(after=%v)", before)
	if got := memberIDs(list); fmt.Sprint(got) != fmt.Sprint(ids[:2]) {
		t.Errorf("Members(after=%v, limit=2) = %v; want %v", before, got, ids[:2])
	}
}

func memberIDs(ms []guildhall.Member) []guildhall.Snowflake {
	out := make([]guildhall.Snowflake, len(ms))
	for i, m := range ms {
		out[i] = m.User.ID
	}
	return out
}

func mismatch(a, b []guildhall.Snowflake) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
