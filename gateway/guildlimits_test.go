package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/testenv"
)

// A guild at every one of Discord's documented limits that Guildhall has: 500
// channels, 250 roles, 1000 permission overwrites on every channel, 1024-char
// topics. Its state is tens of MB, far past NATS's max payload: every member
// still identifies (one GUILD_CREATE each, the state read from the api in parts),
// a new member's join succeeds and reaches the joiner's live session, and the api
// refuses to go past each limit.
func TestGuildAtDiscordLimits(t *testing.T) {
	testenv.SkipShort(t, "a guild of tens of MB")
	users := newSeedUsers(3_400_000, "lim", 4)
	owner, alice, bob, carol := users[0], users[1], users[2], users[3]
	const (
		roles      = 250
		channels   = 500
		overwrites = 1000
	)
	topic := strings.Repeat("t", messaging.MaxTopic)
	st := startPresenceStack(t, stackOptions{presence: fastPresence, seed: func(path string) {
		seedBolt(t, path,
			seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: []seedUser{owner, alice, bob}},
			seedGuild{ID: otherGuild, ChannelID: otherChannel, Users: []seedUser{owner, carol}})
	}})
	url := st.gws[0].url
	ctx := context.Background()
	ownerUser := guildhall.User{ID: owner.ID, Username: owner.Name}

	// 249 roles and @everyone, through the api, which refuses the 251st.
	roleIDs := []guildhall.Snowflake{smallGuild}
	for range roles - 1 {
		name := "role"
		r, err := st.svc.CreateRole(ctx, ownerUser, smallGuild, messaging.RoleParams{Name: &name}, "")
		if err != nil {
			t.Fatalf("role %d: %v", len(roleIDs)+1, err)
		}
		roleIDs = append(roleIDs, r.ID)
	}
	if _, err := st.svc.CreateRole(ctx, ownerUser, smallGuild, messaging.RoleParams{}, ""); !hasCode(err, 30005) {
		t.Fatalf("role 251: %v; want 30005", err)
	}
	// 500 channels of 1000 overwrites (one per role, the rest for members) and
	// a topic of 1024 characters, written as the api writes them: creating them
	// through it would read every channel of the guild for each (tens of MB), and
	// 1000 overwrites are past the REST body limit (64 KiB) in one request.
	for i := range channels {
		ch := guildhall.Channel{ID: smallChannel + guildhall.Snowflake(i), GuildID: smallGuild, Type: guildhall.ChannelTypeGuildText,
			Name: "channel", Position: i, Topic: &topic}
		for k := range overwrites {
			o := guildhall.PermissionOverwrite{ID: guildhall.Snowflake(9_000_000 + k), Type: guildhall.OverwriteMember, Allow: guildhall.PermSendMessages}
			if k < len(roleIDs) {
				o = guildhall.PermissionOverwrite{ID: roleIDs[k], Type: guildhall.OverwriteRole}
			}
			ch.PermissionOverwrites = append(ch.PermissionOverwrites, o)
		}
		if err := st.store.PutChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}

	// The api goes no further: the 501st channel, a channel with 1001
	// overwrites, a topic of 1025 characters (the last two in a guild with room).
	if _, err := st.svc.CreateChannel(ctx, ownerUser, smallGuild, messaging.NewChannel{Name: "one too many"}); !hasCode(err, 30013) {
		t.Errorf("channel 501: %v; want 30013", err)
	}
	many := make([]guildhall.PermissionOverwrite, messaging.MaxOverwrites+1)
	for i := range many {
		many[i] = guildhall.PermissionOverwrite{ID: guildhall.Snowflake(8_000_000 + i), Type: guildhall.OverwriteMember}
	}
	if _, err := st.svc.CreateChannel(ctx, ownerUser, otherGuild, messaging.NewChannel{Name: "crowded", PermissionOverwrites: many}); !hasCode(err, 30060) {
		t.Errorf("a channel with %d overwrites: %v; want 30060", len(many), err)
	}
	if _, err := st.svc.CreateChannel(ctx, ownerUser, otherGuild, messaging.NewChannel{Name: "at the limit", PermissionOverwrites: many[:messaging.MaxOverwrites]}); err != nil {
		t.Errorf("a channel with %d overwrites: %v", messaging.MaxOverwrites, err)
	}
	status, body := st.api.Do(t, "POST", "/guilds/"+otherGuild.String()+"/channels", owner.Token, map[string]any{"name": "long", "topic": topic + "t"}, nil)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "topic") {
		t.Errorf("a topic of %d characters: %d %s; want 400 naming topic", len(topic)+1, status, body)
	}

	// Every member identifies, carol (not a member yet) too.
	sessions := map[string]*testenv.GatewayClient{}
	for _, u := range []seedUser{owner, alice, bob, carol} {
		c, err := connect(t, url, u.Token, nil)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		sessions[u.Name] = c
	}
	for _, u := range []seedUser{owner, alice, bob} {
		checkGuildCreate(t, u.Name, sessions[u.Name], channels, roles, overwrites)
	}

	// carol joins: 200, not 503 after committing the membership, and her live
	// session gets the guild.
	var inv struct{ Code string }
	st.api.Must(t, http.StatusOK, "POST", "/channels/"+smallChannel.String()+"/invites", owner.Token, map[string]any{}, &inv)
	st.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, carol.Token, nil, nil)
	testenv.Eventually(t, 60*time.Second, func() error {
		if len(guildCreates(sessions[carol.Name], smallGuild)) == 0 {
			return errors.New("no GUILD_CREATE of the joined guild on carol's live session")
		}
		return nil
	})
	checkGuildCreate(t, carol.Name, sessions[carol.Name], channels, roles, overwrites)
	sessions[alice.Name].WaitFor(t, guildhall.EventGuildMemberAdd, 30*time.Second)
	again, err := connect(t, url, carol.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkGuildCreate(t, carol.Name+" again", again, channels, roles, overwrites)
}

// guildCreates is c's GUILD_CREATEs of guild.
func guildCreates(c *testenv.GatewayClient, guild guildhall.Snowflake) []guildhall.GuildCreate {
	var out []guildhall.GuildCreate
	for _, p := range c.Dispatches(guildhall.EventGuildCreate) {
		var gc guildhall.GuildCreate
		if json.Unmarshal(p.D, &gc) == nil && gc.ID == guild {
			out = append(out, gc)
		}
	}
	return out
}

// checkGuildCreate: c got one GUILD_CREATE of smallGuild with every channel,
// role and overwrite.
func checkGuildCreate(t *testing.T, who string, c *testenv.GatewayClient, channels, roles, overwrites int) {
	t.Helper()
	// It follows READY: tens of MB take a moment to arrive.
	testenv.Eventually(t, 60*time.Second, func() error {
		if len(guildCreates(c, smallGuild)) == 0 {
			return fmt.Errorf("%s: no GUILD_CREATE of the guild at the limits yet", who)
		}
		return nil
	})
	gcs := guildCreates(c, smallGuild)
	if len(gcs) != 1 {
		var sizes []string
		for _, p := range c.Dispatches(guildhall.EventGuildCreate) {
			var gc guildhall.GuildCreate
			err := json.Unmarshal(p.D, &gc)
			sizes = append(sizes, fmt.Sprintf("%d bytes (%v, id %d)", len(p.D), err, gc.ID))
		}
		t.Fatalf("%s got %d GUILD_CREATEs of the guild at the limits; want 1 (payloads %s; GUILD_CREATEs %v)", who, len(gcs), describe(c.All()), sizes)
	}
	gc := gcs[0]
	if len(gc.Channels) != channels || len(gc.Roles) != roles {
		t.Fatalf("%s: GUILD_CREATE with %d channels and %d roles; want %d and %d", who, len(gc.Channels), len(gc.Roles), channels, roles)
	}
	for _, ch := range gc.Channels {
		if len(ch.PermissionOverwrites) != overwrites || ch.Topic == nil || len(*ch.Topic) != messaging.MaxTopic {
			t.Fatalf("%s: channel %d with %d overwrites; want %d", who, ch.ID, len(ch.PermissionOverwrites), overwrites)
		}
	}
}

func hasCode(err error, code int) bool {
	var ge *guildhall.Error
	return errors.As(err, &ge) && ge.Code == code
}
