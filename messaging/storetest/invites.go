package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// ---- invites

func testInvites(t *testing.T, e *env) {
	g := e.id()
	created := time.Date(2024, 2, 3, 4, 5, 6, 7e6, time.UTC)
	forever := guildhall.Invite{Code: fmt.Sprint("f", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), CreatedAt: created}
	limited := guildhall.Invite{Code: fmt.Sprint("L", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(),
		MaxUses: 5, Uses: 1, MaxAge: 3600, CreatedAt: created, ExpiresAt: ptr(created.Add(time.Hour))}
	for _, inv := range []guildhall.Invite{forever, limited} {
		check(t, e.s.PutInvite(e.ctx, inv), "PutInvite(%s)", inv.Code)
	}
	limited.Uses = 2
	check(t, e.s.PutInvite(e.ctx, limited), "PutInvite(replace)")
	for _, want := range []guildhall.Invite{forever, limited} {
		got, err := e.s.Invite(e.ctx, want.Code)
		check(t, err, "Invite(%s)", want.Code)
		if d := inviteDiff(got, want); len(d) > 0 {
			t.Errorf("Invite(%s): %v", want.Code, d)
		}
	}
	// Codes are case-sensitive, as Discord's are.
	_, err := e.s.Invite(e.ctx, strings.ToLower(limited.Code))
	wantErr(t, err, messaging.ErrNotFound, "Invite(%s)", strings.ToLower(limited.Code))
	_, err = e.s.Invite(e.ctx, fmt.Sprint("none", g))
	wantErr(t, err, messaging.ErrNotFound, "Invite(unknown)")
}

func testJoinGuild(t *testing.T, e *env) {
	g := e.id()
	check(t, e.s.PutGuild(e.ctx, guildhall.Guild{ID: g, Name: "joined", OwnerID: g}), "PutGuild")
	created := time.Date(2024, 2, 3, 4, 5, 6, 7e6, time.UTC)
	joinedAt := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	forever := guildhall.Invite{Code: fmt.Sprint("jf", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), CreatedAt: created}
	limited := guildhall.Invite{Code: fmt.Sprint("jL", g), GuildID: g, ChannelID: e.id(), InviterID: e.id(), MaxUses: 3, CreatedAt: created}
	for _, inv := range []guildhall.Invite{forever, limited} {
		check(t, e.s.PutInvite(e.ctx, inv), "PutInvite(%s)", inv.Code)
	}
	member := func() guildhall.Member {
		u := guildhall.User{ID: e.id(), Username: fmt.Sprint("j", e.next), Discriminator: "0"}
		check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: u}), "CreateUser")
		return guildhall.Member{GuildID: g, User: u, Roles: []guildhall.Snowflake{}, JoinedAt: joinedAt}
	}
	usesAre := func(code string, want int) {
		t.Helper()
		inv, err := e.s.Invite(e.ctx, code)
		check(t, err, "Invite(%s)", code)
		if inv.Uses != want {
			t.Errorf("Invite(%s).Uses = %d; want %d", code, inv.Uses, want)
		}
	}

	first := member()
	inv, joined, err := e.s.JoinGuild(e.ctx, first, forever.Code)
	check(t, err, "JoinGuild")
	if !joined || inv.Uses != 1 || inv.Code != forever.Code || inv.GuildID != g {
		t.Errorf("JoinGuild = %+v, %v; want the invite with 1 use, joined", inv, joined)
	}
	got, err := e.s.Member(e.ctx, g, first.User.ID)
	check(t, err, "Member after JoinGuild")
	if d := memberDiff(got, first); len(d) > 0 {
		t.Errorf("Member after JoinGuild: %v", d)
	}
	if gs, _ := e.s.UserGuilds(e.ctx, first.User.ID); !slices.Equal(gs, []guildhall.Snowflake{g}) {
		t.Errorf("UserGuilds after JoinGuild = %v; want [%v]", gs, g)
	}
	// Joining again, by either invite, is no join: no use, no count.
	for _, code := range []string{forever.Code, limited.Code} {
		_, joined, err = e.s.JoinGuild(e.ctx, first, code)
		check(t, err, "JoinGuild(again, %s)", code)
		if joined {
			t.Errorf("JoinGuild(again, %s) joined", code)
		}
	}
	usesAre(forever.Code, 1)
	usesAre(limited.Code, 0)

	_, _, err = e.s.JoinGuild(e.ctx, member(), fmt.Sprint("none", g))
	wantErr(t, err, messaging.ErrNotFound, "JoinGuild(unknown invite)")

	// Concurrent joins never count past MaxUses.
	var others []guildhall.Member
	for range 8 {
		others = append(others, member())
	}
	errs := make([]error, len(others))
	oks := make([]bool, len(others))
	var wg sync.WaitGroup
	for i, m := range others {
		wg.Go(func() { _, oks[i], errs[i] = e.s.JoinGuild(e.ctx, m, limited.Code) })
	}
	wg.Wait()
	n := 0
	for i := range others {
		switch {
		case errs[i] == nil && oks[i]:
			n++
		case !errors.Is(errs[i], messaging.ErrInviteUsedUp):
			t.Errorf("JoinGuild(limited) = %v, %v; want joined or ErrInviteUsedUp", oks[i], errs[i])
		}
		if _, err := e.s.Member(e.ctx, g, others[i].User.ID); (err == nil) != (errs[i] == nil) {
			t.Errorf("member %d: Member err = %v after JoinGuild err = %v", i, err, errs[i])
		}
	}
	if n != 3 {
		t.Errorf("%d of %d concurrent joins of a 3-use invite joined; want 3", n, len(others))
	}
	usesAre(limited.Code, 3)
	count, err := e.s.MemberCount(e.ctx, g)
	check(t, err, "MemberCount")
	if count != 4 {
		t.Errorf("MemberCount = %d; want 4", count)
	}
}
