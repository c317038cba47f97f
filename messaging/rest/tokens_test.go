package rest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/rest"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"golang.org/x/crypto/bcrypt"
)

// secondAPI is another api process on the same NATS and store: its own
// connection, service (and so its own token cache) and REST handler. watch
// false leaves it deaf to revocations, as a process that lost them would be.
func (e *env) secondAPI(t *testing.T, cacheTTL time.Duration, watch bool) (*testenv.REST, *messaging.Service) {
	t.Helper()
	nc, js := e.nats.ConnectAs(t, ghnats.RoleAPI)
	svc, err := messaging.NewService(context.Background(), messaging.Config{
		Store: e.store, Conn: nc, JS: js, IDs: guildhall.NewSnowflakeGeneratorForNode(2),
		Barrier: noBarrier{}, Logger: e.log, BcryptCost: bcrypt.MinCost, TokenCacheTTL: cacheTTL,
	})
	if err != nil {
		t.Fatal(err)
	}
	if watch {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.WatchRevocations(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	srv := httptest.NewServer(rest.NewHandler(svc, rest.Config{GatewayURL: "ws://gateway.test",
		GlobalLimit: unlimited(), RouteLimit: unlimited(), MessageLimit: unlimited(), AuthLimit: unlimited()}))
	t.Cleanup(srv.Close)
	return testenv.NewREST(srv.URL + "/api/v10"), svc
}

type noBarrier struct{}

func (noBarrier) Wait(context.Context, guildhall.Snowflake) error { return nil }

// status is GET /users/@me's status with token on api.
func status(t *testing.T, api *testenv.REST, token string) int {
	t.Helper()
	st, _ := api.Do(t, "GET", "/users/@me", token, nil, nil)
	return st
}

// eventually401 waits until token is refused on api.
func eventually401(t *testing.T, api *testenv.REST, token, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for status(t, api, token) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("%s: token still accepted after 15 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type sessionJSON struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
}

func login(t *testing.T, api *testenv.REST, name, password string) string {
	t.Helper()
	var s sessionJSON
	api.Must(t, http.StatusOK, "POST", "/auth/login", "", map[string]string{"username": name, "password": password}, &s)
	return s.Token
}

// Logout, password change and token reset reach every api process's token
// cache through the stream: the second process caches for 10 minutes, so only
// the revocation can make it refuse.
func TestTokenRevocationReachesEveryAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b, _ := e.secondAPI(t, 10*time.Minute, true)
	const name, pw = "carol.tokens", "correct horse battery"
	e.api.Must(t, http.StatusCreated, "POST", "/auth/register", "", map[string]string{"username": name, "password": pw}, nil)
	t1, t2, t3 := login(t, e.api, name, pw), login(t, e.api, name, pw), login(t, e.api, name, pw)
	for _, tok := range []string{t1, t2, t3} {
		if st := status(t, b, tok); st != 200 {
			t.Fatalf("token on the second api = %d; want 200", st)
		}
	}

	// Logout: t1 only, at once on the api that logged out, soon on the other.
	e.api.Must(t, http.StatusNoContent, "POST", "/auth/logout", t1, nil, nil)
	if st := status(t, e.api, t1); st != 401 {
		t.Fatalf("logged-out token on the same api = %d; want 401", st)
	}
	eventually401(t, b, t1, "logout")
	if status(t, b, t2) != 200 || status(t, e.api, t3) != 200 {
		t.Fatal("logout revoked other tokens too")
	}

	// Password change (on the second api, with t2): every other token goes.
	st, raw := b.Do(t, "PATCH", "/users/@me", t2, map[string]string{"password": "wrong password", "new_password": "a new passphrase"}, nil)
	wantError(t, st, raw, 400, 50035)
	st, raw = b.Do(t, "PATCH", "/users/@me", t2, map[string]string{"password": pw, "new_password": "password1"}, nil)
	if d := wantError(t, st, raw, 400, 50035); d.Errors["new_password"] == nil {
		t.Fatalf("common new password: %s; want an error on new_password", raw)
	}
	if status(t, e.api, t3) != 200 {
		t.Fatal("a refused password change revoked tokens")
	}
	b.Must(t, http.StatusOK, "PATCH", "/users/@me", t2, map[string]string{"password": pw, "new_password": "a new passphrase"}, nil)
	eventually401(t, e.api, t3, "password change")
	if status(t, e.api, t2) != 200 || status(t, b, t2) != 200 {
		t.Fatal("the token that changed the password was revoked")
	}
	st, raw = e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": name, "password": pw}, nil)
	wantError(t, st, raw, 400, 50035)
	t4 := login(t, e.api, name, "a new passphrase")

	// Token reset: needs the password; all tokens go, the new one works at once
	// everywhere.
	st, raw = e.api.Do(t, "POST", "/auth/token/reset", t4, map[string]string{"password": pw}, nil)
	wantError(t, st, raw, 400, 50035)
	var reset sessionJSON
	e.api.Must(t, http.StatusOK, "POST", "/auth/token/reset", t4, map[string]string{"password": "a new passphrase"}, &reset)
	if reset.Token == "" || reset.Token == t4 {
		t.Fatalf("reset = %+v; want a new token", reset)
	}
	eventually401(t, b, t2, "reset")
	eventually401(t, b, t4, "reset")
	if status(t, e.api, reset.Token) != 200 || status(t, b, reset.Token) != 200 {
		t.Fatal("the token from the reset does not work")
	}
}

// An api process that misses a revocation (here: one that does not watch)
// stops believing the token when its cache entry expires.
func TestLostRevocationBoundedByCacheTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	deaf, _ := e.secondAPI(t, 2*time.Second, false)
	u := e.register("deaf")
	if st := status(t, deaf, u.token); st != 200 {
		t.Fatalf("token on the deaf api = %d", st)
	}
	e.api.Must(t, http.StatusNoContent, "POST", "/auth/logout", u.token, nil, nil)
	eventually401(t, deaf, u.token, "expiry of the cache entry")
}

// Bots have owners: the owner lists them and revokes or resets their tokens;
// nobody else can, and the operators' bots belong to nobody.
func TestBotOwnership(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b, _ := e.secondAPI(t, 10*time.Minute, true)
	owner, other := e.register("owner"), e.register("other")
	var ownerName struct {
		Username string `json:"username"`
	}
	e.api.Must(t, http.StatusOK, "GET", "/users/@me", owner.token, nil, &ownerName)
	ctx := context.Background()
	bot, err := e.svc.CreateOwnedBot(ctx, "ownedbot", ownerName.Username)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateOwnedBot(ctx, "orphanbot", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateOwnedBot(ctx, "nobodysbot", "no.such.user"); err == nil {
		t.Fatal("a bot with an unknown owner was created")
	}
	var bots []struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Bot      bool   `json:"bot"`
	}
	e.api.Must(t, http.StatusOK, "GET", "/users/@me/bots", owner.token, nil, &bots)
	if len(bots) != 1 || bots[0].ID != bot.UserID.String() || !bots[0].Bot {
		t.Fatalf("owner's bots = %+v; want ownedbot", bots)
	}
	e.api.Must(t, http.StatusOK, "GET", "/users/@me/bots", other.token, nil, &bots)
	if len(bots) != 0 {
		t.Fatalf("another user's bots = %+v; want none", bots)
	}
	if status(t, b, "Bot "+bot.Token) != 200 {
		t.Fatal("the bot's token does not work")
	}

	path := "/users/@me/bots/" + bot.UserID.String()
	st, raw := e.api.Do(t, "DELETE", path+"/tokens", other.token, nil, nil)
	wantError(t, st, raw, 404, 10013)
	st, raw = e.api.Do(t, "POST", path+"/token/reset", other.token, nil, nil)
	wantError(t, st, raw, 404, 10013)
	st, raw = e.api.Do(t, "DELETE", path+"/tokens", "Bot "+bot.Token, nil, nil)
	wantError(t, st, raw, 404, 10013) // a bot owns no bots, not even itself
	st, raw = e.api.Do(t, "POST", "/auth/token/reset", "Bot "+bot.Token, nil, nil)
	wantError(t, st, raw, 403, 20001)
	if status(t, b, "Bot "+bot.Token) != 200 {
		t.Fatal("refused requests revoked the bot's token")
	}

	var reset sessionJSON
	e.api.Must(t, http.StatusOK, "POST", path+"/token/reset", owner.token, nil, &reset)
	eventually401(t, b, "Bot "+bot.Token, "owner's reset")
	if status(t, b, "Bot "+reset.Token) != 200 {
		t.Fatal("the reset token does not work")
	}
	e.api.Must(t, http.StatusNoContent, "DELETE", path+"/tokens", owner.token, nil, nil)
	eventually401(t, b, "Bot "+reset.Token, "owner's revoke")
}
