package natsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/natsapi"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"golang.org/x/crypto/bcrypt"
)

func newTestService(t *testing.T) (*messaging.Service, *testenv.NATS) {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	store, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := messaging.NewService(context.Background(), messaging.Config{
		Store: store, Conn: n.Conn, JS: n.JS, IDs: guildhall.NewSnowflakeGeneratorForNode(5), BcryptCost: bcrypt.MinCost,
		Logger: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, n
}

// testLog is the logger of the code under test: its lines go with the test's
// output (shown when it fails, or with -v). Whatever logs must be stopped by the
// test's cleanups.
func testLog(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func request[Rep any](t *testing.T, n *testenv.NATS, subject string, req any) Rep {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	m, err := n.Conn.Request(subject, b, 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	var rep Rep
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		t.Fatalf("reply %s: %v", m.Data, err)
	}
	return rep
}

// TestResponder asks the api over NATS what gateways and the CLI ask.
func TestResponder(t *testing.T) {
	t.Parallel()
	svc, n := newTestService(t)
	ctx := context.Background()
	r, err := natsapi.NewResponder(svc, n.Conn, natsapi.Config{Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)

	owner, err := svc.Register(ctx, messaging.Credentials{Username: "owner", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	ownerUser, err := svc.Authenticate(ctx, owner.Token)
	if err != nil {
		t.Fatal(err)
	}
	st, err := svc.CreateGuild(ctx, ownerUser, "Responders")
	if err != nil {
		t.Fatal(err)
	}

	id := request[guildhall.IdentifyReply](t, n, ghnats.SubjectAPIIdentify, guildhall.IdentifyRequest{TokenHash: guildhall.TokenHash(owner.Token)})
	if id.Error != nil || id.User.ID != owner.UserID || len(id.Guilds) != 1 || len(id.Members) != 1 {
		t.Fatalf("identify = %+v", id)
	}
	g := id.Guilds[0]
	if g.Guild.ID != st.Guild.ID || g.Guild.MemberCount != 1 || len(g.Channels) != 1 || len(g.Roles) != 1 || id.Members[0].User.ID != owner.UserID {
		t.Errorf("identify guild = %+v member %+v", g, id.Members[0])
	}

	bad := request[guildhall.IdentifyReply](t, n, ghnats.SubjectAPIIdentify, guildhall.IdentifyRequest{TokenHash: guildhall.TokenHash("nope")})
	if bad.Error == nil || !errors.Is(bad.Error, guildhall.ErrUnauthorized) {
		t.Errorf("identify with a bad token = %+v; want 401 Unauthorized", bad.Error)
	}
	// Only the hash is accepted on the bus, and the hash is no REST credential.
	raw := request[guildhall.IdentifyReply](t, n, ghnats.SubjectAPIIdentify, guildhall.IdentifyRequest{TokenHash: owner.Token})
	if raw.Error == nil || !errors.Is(raw.Error, guildhall.ErrUnauthorized) {
		t.Errorf("identify with the raw token = %+v; want 401 Unauthorized", raw.Error)
	}
	if u, err := svc.Authenticate(ctx, guildhall.TokenHash(owner.Token)); err == nil {
		t.Errorf("the token's hash authenticated as %v", u.ID)
	}
	garbled := request[guildhall.IdentifyReply](t, n, ghnats.SubjectAPIIdentify, "not an object")
	if garbled.Error == nil || garbled.Error.Code != guildhall.ErrInvalidJSON.Code {
		t.Errorf("identify with bad JSON = %+v", garbled.Error)
	}

	gr := request[guildhall.GuildReply](t, n, ghnats.SubjectAPIGuild, guildhall.GuildRequest{GuildID: st.Guild.ID, UserID: owner.UserID})
	if gr.Error != nil || gr.State.Guild.ID != st.Guild.ID || gr.Member == nil || gr.Member.User.ID != owner.UserID || gr.Member.User.Username != "owner" {
		t.Errorf("guild snapshot = %+v", gr)
	}
	gr = request[guildhall.GuildReply](t, n, ghnats.SubjectAPIGuild, guildhall.GuildRequest{GuildID: st.Guild.ID, UserID: 12345})
	if gr.Error != nil || gr.Member != nil {
		t.Errorf("guild snapshot for a non-member = %+v; want the state without member", gr)
	}
	gr = request[guildhall.GuildReply](t, n, ghnats.SubjectAPIGuild, guildhall.GuildRequest{GuildID: 999})
	if gr.Error == nil || gr.Error.Code != guildhall.ErrUnknownGuild.Code {
		t.Errorf("unknown guild snapshot = %+v", gr.Error)
	}

	bot := request[natsapi.BotReply](t, n, ghnats.SubjectAPIBot, natsapi.BotRequest{Name: "helper"})
	if bot.Error != nil || bot.Token == "" || bot.UserID == 0 {
		t.Fatalf("bot = %+v", bot)
	}
	u, err := svc.Authenticate(ctx, bot.Token)
	if err != nil || !u.Bot || u.Username != "helper" || u.ID != bot.UserID {
		t.Errorf("bot token authenticates as %+v (%v)", u, err)
	}
	again := request[natsapi.BotReply](t, n, ghnats.SubjectAPIBot, natsapi.BotRequest{Name: "helper"})
	if again.Error == nil || again.Error.Code != 50035 {
		t.Errorf("second bot with the same name = %+v; want username taken", again)
	}
	// A bot has no password: login refuses it.
	if _, err := svc.Login(ctx, messaging.Credentials{Username: "helper", Password: ""}); !errors.Is(err, guildhall.ErrInvalidLogin) {
		t.Errorf("login as a bot = %v; want ErrInvalidLogin", err)
	}
}
