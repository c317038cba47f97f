package main

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	guildhall "github.com/guildhall/guildhall"
)

// pointDiscordgo aims discordgo's endpoints (package variables) at a Guildhall
// server: every REST route discordgo builds derives from these.
func pointDiscordgo(t *testing.T, base string) {
	saved := []*string{&discordgo.EndpointDiscord, &discordgo.EndpointAPI, &discordgo.EndpointGuilds, &discordgo.EndpointChannels,
		&discordgo.EndpointUsers, &discordgo.EndpointGateway, &discordgo.EndpointGatewayBot, &discordgo.EndpointWebhooks}
	old := make([]string, len(saved))
	for i, p := range saved {
		old[i] = *p
	}
	t.Cleanup(func() {
		for i, p := range saved {
			*p = old[i]
		}
	})
	discordgo.EndpointDiscord = base + "/"
	discordgo.EndpointAPI = discordgo.EndpointDiscord + "api/v" + discordgo.APIVersion + "/"
	discordgo.EndpointGuilds = discordgo.EndpointAPI + "guilds/"
	discordgo.EndpointChannels = discordgo.EndpointAPI + "channels/"
	discordgo.EndpointUsers = discordgo.EndpointAPI + "users/"
	discordgo.EndpointGateway = discordgo.EndpointAPI + "gateway"
	discordgo.EndpointGatewayBot = discordgo.EndpointGateway + "/bot"
	discordgo.EndpointWebhooks = discordgo.EndpointAPI + "webhooks/"
}

// createBot mints a bot token with the CLI, as an operator would.
func createBot(t *testing.T, dir, name string) string {
	t.Helper()
	out := captureStdout(t, func() {
		if err := token([]string{"create", "--bot", name, "--data", dir}); err != nil {
			t.Fatal(err)
		}
	})
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			return v
		}
	}
	t.Fatalf("token create printed no token: %q", out)
	return ""
}

// TestDiscordgoModeration is a moderation bot written with discordgo v0.29.0,
// unchanged but for its base URL, against a running Guildhall: it connects to
// the gateway, creates a role, gives it to a member, times one out, kicks one,
// bans and unbans another, and reads the audit log, and its session sees the
// events of each.
func TestDiscordgoModeration(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	pointDiscordgo(t, "http://"+s.addr)

	f := newGuildFixture(t, s)
	kickMe, _ := s.rest.Register(t, "kickme"+randName())
	banMe, _ := s.rest.Register(t, "banme"+randName())
	var inv struct {
		Code string `json:"code"`
	}
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/invites", f.ownerToken, map[string]any{"max_age": 0}, &inv)

	// The bot: a bot account that joins, and a moderator role from the owner.
	botToken := createBot(t, dir, "modbot"+randName())
	var ids []string
	for _, tok := range []string{botToken, kickMe, banMe} {
		s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, tok, nil, nil)
		var me struct{ ID string }
		s.rest.Must(t, http.StatusOK, "GET", "/users/@me", tok, nil, &me)
		ids = append(ids, me.ID)
	}
	botID, kickID, banID := ids[0], ids[1], ids[2]
	var mod struct{ ID string }
	s.rest.Must(t, http.StatusOK, "POST", "/guilds/"+f.guildID+"/roles", f.ownerToken,
		map[string]any{"name": "moderators", "permissions": guildhall.PermKickMembers | guildhall.PermBanMembers | guildhall.PermManageRoles |
			guildhall.PermViewAuditLog | guildhall.PermModerateMembers}, &mod)
	s.rest.Must(t, http.StatusOK, "PATCH", "/guilds/"+f.guildID+"/roles", f.ownerToken, []map[string]any{{"id": mod.ID, "position": 5}}, nil)
	s.rest.Must(t, http.StatusNoContent, "PUT", "/guilds/"+f.guildID+"/members/"+botID+"/roles/"+mod.ID, f.ownerToken, nil, nil)

	dg, err := discordgo.New("Bot " + botToken)
	if err != nil {
		t.Fatal(err)
	}
	dg.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMembers | discordgo.IntentsGuildBans
	// Handlers in the reading goroutine, no state cache: discordgo's own cache
	// writes the events' structs while asynchronous handlers read them.
	dg.SyncEvents, dg.StateEnabled = true, false
	var mu sync.Mutex
	seen := map[string]int{}
	note := func(name string) {
		mu.Lock()
		seen[name]++
		mu.Unlock()
	}
	ready := make(chan struct{}, 1)
	dg.AddHandler(func(_ *discordgo.Session, r *discordgo.Ready) { ready <- struct{}{} })
	dg.AddHandler(func(_ *discordgo.Session, e *discordgo.GuildRoleCreate) { note("GUILD_ROLE_CREATE " + e.Role.Name) })
	dg.AddHandler(func(_ *discordgo.Session, e *discordgo.GuildMemberUpdate) { note("GUILD_MEMBER_UPDATE " + e.User.ID) })
	dg.AddHandler(func(_ *discordgo.Session, e *discordgo.GuildMemberRemove) { note("GUILD_MEMBER_REMOVE " + e.User.ID) })
	dg.AddHandler(func(_ *discordgo.Session, e *discordgo.GuildBanAdd) { note("GUILD_BAN_ADD " + e.User.ID) })
	dg.AddHandler(func(_ *discordgo.Session, e *discordgo.GuildBanRemove) { note("GUILD_BAN_REMOVE " + e.User.ID) })
	if err := dg.Open(); err != nil {
		t.Fatalf("discordgo Open: %v", err)
	}
	t.Cleanup(func() { dg.Close() })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no READY")
	}

	// Create a role and give it.
	color, hoist, perms := 0x3498db, true, int64(0)
	role, err := dg.GuildRoleCreate(f.guildID, &discordgo.RoleParams{Name: "helpers", Color: &color, Hoist: &hoist, Permissions: &perms})
	if err != nil {
		t.Fatalf("GuildRoleCreate: %v", err)
	}
	if role.Name != "helpers" || role.Color != color || !role.Hoist || role.Position != 1 {
		t.Errorf("role = %+v", role)
	}
	if err := dg.GuildMemberRoleAdd(f.guildID, f.memberID, role.ID, discordgo.WithAuditLogReason("promoted")); err != nil {
		t.Fatalf("GuildMemberRoleAdd: %v", err)
	}
	m, err := dg.GuildMember(f.guildID, f.memberID)
	if err != nil || len(m.Roles) != 1 || m.Roles[0] != role.ID {
		t.Fatalf("GuildMember = %+v, %v; want the role", m, err)
	}
	// Time out, kick, ban, unban.
	until := time.Now().Add(10 * time.Minute)
	if err := dg.GuildMemberTimeout(f.guildID, f.memberID, &until); err != nil {
		t.Fatalf("GuildMemberTimeout: %v", err)
	}
	if m, err := dg.GuildMember(f.guildID, f.memberID); err != nil || m.CommunicationDisabledUntil == nil || m.CommunicationDisabledUntil.Sub(until).Abs() > time.Second {
		t.Fatalf("timed-out member = %+v, %v", m, err)
	}
	if err := dg.GuildMemberDeleteWithReason(f.guildID, kickID, "rule 3"); err != nil {
		t.Fatalf("kick: %v", err)
	}
	if err := dg.GuildBanCreateWithReason(f.guildID, banID, "spam", 1); err != nil {
		t.Fatalf("ban: %v", err)
	}
	bans, err := dg.GuildBans(f.guildID, 100, "", "")
	if err != nil || len(bans) != 1 || bans[0].User.ID != banID || bans[0].Reason != "spam" {
		t.Fatalf("GuildBans = %+v, %v", bans, err)
	}
	if err := dg.GuildBanDelete(f.guildID, banID); err != nil {
		t.Fatalf("unban: %v", err)
	}
	// Discord's errors come back as discordgo's RESTError with the JSON code.
	err = dg.GuildBanDelete(f.guildID, banID)
	var rest *discordgo.RESTError
	if !errors.As(err, &rest) || rest.Message == nil || rest.Message.Code != discordgo.ErrCodeUnknownBan || rest.Response.StatusCode != 404 {
		t.Fatalf("second unban: %v; want 404 Unknown Ban (10026)", err)
	}
	err = dg.GuildBanCreateWithReason(f.guildID, f.ownerID, "", 0)
	if !errors.As(err, &rest) || rest.Message == nil || rest.Message.Code != discordgo.ErrCodeMissingPermissions {
		t.Fatalf("banning the owner: %v; want Missing Permissions (50013)", err)
	}
	// The audit log has it all, with reasons.
	log, err := dg.GuildAuditLog(f.guildID, botID, "", 0, 50)
	if err != nil {
		t.Fatalf("GuildAuditLog: %v", err)
	}
	got := map[discordgo.AuditLogAction]string{}
	for _, e := range log.AuditLogEntries {
		got[*e.ActionType] = e.Reason
	}
	for action, reason := range map[discordgo.AuditLogAction]string{
		discordgo.AuditLogActionRoleCreate:       "",
		discordgo.AuditLogActionMemberRoleUpdate: "promoted",
		discordgo.AuditLogActionMemberUpdate:     "",
		discordgo.AuditLogActionMemberKick:       "rule 3",
		discordgo.AuditLogActionMemberBanAdd:     "spam",
		discordgo.AuditLogActionMemberBanRemove:  "",
	} {
		if r, ok := got[action]; !ok || r != reason {
			t.Errorf("audit log action %d: reason %q (present %v); want %q", action, r, ok, reason)
		}
	}
	// And the bot's gateway session saw each change.
	want := []string{"GUILD_ROLE_CREATE helpers", "GUILD_MEMBER_UPDATE " + f.memberID, "GUILD_MEMBER_REMOVE " + kickID,
		"GUILD_MEMBER_REMOVE " + banID, "GUILD_BAN_ADD " + banID, "GUILD_BAN_REMOVE " + banID}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		var missing []string
		for _, w := range want {
			if seen[w] == 0 {
				missing = append(missing, w)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot's session never saw %v (saw %v)", missing, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
