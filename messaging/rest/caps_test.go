package rest_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

func sf(t *testing.T, s string) guildhall.Snowflake {
	t.Helper()
	id, err := guildhall.ParseSnowflake(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// parallel sends n requests at once and counts the answers by status.
func (e *env) parallel(t *testing.T, n int, do func(i int) int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := do(i)
			mu.Lock()
			got[st]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return got
}

// Count caps hold under 50 parallel requests: channels and roles per guild,
// guilds per user (created and joined), invites per channel.
func TestCountCapsUnderParallelRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	f := e.fixture()
	guild := sf(t, f.guild)

	// Channels: 495 exist (the fixture's general and 494 more, put straight
	// into the store); 50 parallel creations may add 5.
	for i := range messaging.MaxChannelsPerGuild - 5 - 1 {
		ch := guildhall.Channel{ID: guildhall.Snowflake(1<<50 + i), GuildID: guild, Name: "c" + strconv.Itoa(i), Position: i + 1,
			PermissionOverwrites: []guildhall.PermissionOverwrite{}}
		if err := e.store.PutChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	got := e.parallel(t, 50, func(i int) int {
		st, _ := e.api.Do(t, "POST", "/guilds/"+f.guild+"/channels", f.owner.token, map[string]string{"name": fmt.Sprint("p", i)}, nil)
		return st
	})
	chs, err := e.store.Channels(ctx, guild)
	if err != nil {
		t.Fatal(err)
	}
	if got[http.StatusCreated] != 5 || got[400] != 45 || len(chs) != messaging.MaxChannelsPerGuild {
		t.Fatalf("50 parallel channel creations: %v, %d channels; want 5×201, 45×400 and %d", got, len(chs), messaging.MaxChannelsPerGuild)
	}

	// Roles: 245 exist (@everyone and 244 more, put straight into the store);
	// 50 parallel creations may add 5.
	for i := range messaging.MaxRoles - 5 - 1 {
		r := guildhall.Role{ID: guildhall.Snowflake(1<<49 + i), Name: "r" + strconv.Itoa(i), Position: i + 1}
		if err := e.store.PutRole(ctx, guild, r); err != nil {
			t.Fatal(err)
		}
	}
	got = e.parallel(t, 50, func(i int) int {
		st, _ := e.api.Do(t, "POST", "/guilds/"+f.guild+"/roles", f.owner.token, map[string]string{"name": fmt.Sprint("p", i)}, nil)
		return st
	})
	roles, err := e.store.Roles(ctx, guild)
	if err != nil {
		t.Fatal(err)
	}
	if got[http.StatusOK] != 5 || got[400] != 45 || len(roles) != messaging.MaxRoles {
		t.Fatalf("50 parallel role creations: %v, %d roles; want 5×200, 45×400 and %d", got, len(roles), messaging.MaxRoles)
	}

	// Guilds per user: a user in 97 guilds creates 50 at once; 3 may be made.
	u := e.register("collector")
	uid := sf(t, u.id)
	for i := range messaging.MaxGuildsPerUser - 3 {
		g := guildhall.Guild{ID: guildhall.Snowflake(1<<51 + i), Name: "g", OwnerID: 1}
		if err := e.store.PutGuild(ctx, g); err != nil {
			t.Fatal(err)
		}
		if err := e.store.PutMember(ctx, guildhall.Member{GuildID: g.ID, User: guildhall.User{ID: uid}, Roles: []guildhall.Snowflake{}, JoinedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	got = e.parallel(t, 50, func(i int) int {
		st, _ := e.api.Do(t, "POST", "/guilds", u.token, map[string]string{"name": fmt.Sprint("guild ", i)}, nil)
		return st
	})
	mine, _ := e.store.UserGuilds(ctx, uid)
	if got[http.StatusCreated] != 3 || got[400] != 47 || len(mine) != messaging.MaxGuildsPerUser {
		t.Fatalf("50 parallel guild creations: %v, in %d guilds; want 3×201, 47×400 and %d", got, len(mine), messaging.MaxGuildsPerUser)
	}

	// Joins count too: a user one guild short of the cap accepts 50 invites
	// to 50 guilds at once; one join may happen.
	j := e.register("joiner")
	jid := sf(t, j.id)
	for i := range messaging.MaxGuildsPerUser - 1 {
		g := guildhall.Snowflake(1<<52 + i)
		if err := e.store.PutMember(ctx, guildhall.Member{GuildID: g, User: guildhall.User{ID: jid}, Roles: []guildhall.Snowflake{}, JoinedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var codes []string
	for i := range 50 {
		var g guildJSON
		e.api.Must(t, http.StatusCreated, "POST", "/guilds", f.member.token, map[string]string{"name": fmt.Sprint("open ", i)}, &g)
		var chs []channelJSON
		e.api.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", f.member.token, nil, &chs)
		var inv inviteJSON
		e.api.Must(t, http.StatusOK, "POST", "/channels/"+chs[0].ID+"/invites", f.member.token, map[string]any{}, &inv)
		codes = append(codes, inv.Code)
	}
	got = e.parallel(t, 50, func(i int) int {
		st, _ := e.api.Do(t, "POST", "/invites/"+codes[i], j.token, nil, nil)
		return st
	})
	in, _ := e.store.UserGuilds(ctx, jid)
	if got[200] != 1 || got[400] != 49 || len(in) != messaging.MaxGuildsPerUser {
		t.Fatalf("50 parallel joins: %v, in %d guilds; want 1×200, 49×400 and %d", got, len(in), messaging.MaxGuildsPerUser)
	}

	// Invites per channel: 98 exist; 50 at once may add 2.
	for i := range messaging.MaxInvitesPerChannel - 2 {
		inv := guildhall.Invite{Code: fmt.Sprint("seed", i, f.channel), GuildID: guild, ChannelID: sf(t, f.channel) /* general */, CreatedAt: time.Now().UTC()}
		if i == 0 {
			continue // the fixture's own invite is the 98th
		}
		if err := e.store.PutInvite(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	// An expired invite counts for nothing (and is cleared away), nor does
	// one of a channel that was deleted.
	past := time.Now().Add(-time.Hour)
	if err := e.store.PutInvite(ctx, guildhall.Invite{Code: "expired" + f.channel, GuildID: guild, ChannelID: sf(t, f.channel), CreatedAt: past, ExpiresAt: &past}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutInvite(ctx, guildhall.Invite{Code: "gone" + f.channel, GuildID: guild, ChannelID: 1<<50 - 1, CreatedAt: past}); err != nil {
		t.Fatal(err)
	}
	got = e.parallel(t, 50, func(i int) int {
		st, _ := e.api.Do(t, "POST", "/channels/"+f.channel+"/invites", f.owner.token, map[string]any{"max_age": 0}, nil)
		return st
	})
	invs, _ := e.store.GuildInvites(ctx, guild)
	if got[200] != 2 || got[400] != 48 || len(invs) != messaging.MaxInvitesPerChannel {
		t.Fatalf("50 parallel invites: %v, %d invites; want 2×200, 48×400 and %d", got, len(invs), messaging.MaxInvitesPerChannel)
	}
}
