package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"golang.org/x/crypto/bcrypt"
)

func newTestService(t *testing.T) *messaging.Service {
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
	return svc
}

func registerUser(t *testing.T, svc *messaging.Service, name string) guildhall.User {
	t.Helper()
	ctx := context.Background()
	s, err := svc.Register(ctx, messaging.Credentials{Username: name, Password: "correct horse battery"})
	if err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
	u, err := svc.Authenticate(ctx, s.Token)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestInviteMaxUsesUnderConcurrency: many users accept a 3-use invite at once;
// exactly 3 join, the rest get Unknown Invite.
func TestInviteMaxUsesUnderConcurrency(t *testing.T) {
	t.Parallel()
	svc := newTestService(t)
	ctx := context.Background()
	owner := registerUser(t, svc, "owner")
	st, err := svc.CreateGuild(ctx, owner, "Crowded")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := svc.CreateInvite(ctx, owner, st.Channels[0].ID, messaging.NewInvite{MaxUses: 3})
	if err != nil {
		t.Fatal(err)
	}
	var users []guildhall.User
	for i := range 12 {
		users = append(users, registerUser(t, svc, fmt.Sprintf("joiner%d", i)))
	}
	var mu sync.Mutex
	joined, refused := 0, 0
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			_, ok, err := svc.AcceptInvite(ctx, u, inv.Invite.Code)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && ok:
				joined++
			case errors.Is(err, guildhall.ErrUnknownInvite):
				refused++
			default:
				t.Errorf("AcceptInvite = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
	if joined != 3 || refused != 9 {
		t.Fatalf("joined %d, refused %d; want 3 and 9", joined, refused)
	}
	ms, err := svc.Members(ctx, owner, st.Guild.ID, 0, 1000)
	if err != nil || len(ms) != 4 {
		t.Fatalf("members = %d (%v); want 4", len(ms), err)
	}
}

// TestGuildLimit: a user is in at most MaxGuildsPerUser guilds, by creating or
// by joining; the refusal changes nothing.
func TestGuildLimit(t *testing.T) {
	t.Parallel()
	testenv.SkipShort(t, "creates 100 guilds")
	svc := newTestService(t)
	ctx := context.Background()
	u := registerUser(t, svc, "collector")
	other := registerUser(t, svc, "other")
	st, err := svc.CreateGuild(ctx, other, "Elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := svc.CreateInvite(ctx, other, st.Channels[0].ID, messaging.NewInvite{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range messaging.MaxGuildsPerUser {
		if _, err := svc.CreateGuild(ctx, u, fmt.Sprintf("guild %d", i)); err != nil {
			t.Fatalf("guild %d: %v", i, err)
		}
	}
	var ge *guildhall.Error
	if _, err := svc.CreateGuild(ctx, u, "one too many"); !errors.As(err, &ge) || ge.Code != 30001 {
		t.Fatalf("guild %d = %v; want code 30001", messaging.MaxGuildsPerUser+1, err)
	}
	if _, _, err := svc.AcceptInvite(ctx, u, inv.Invite.Code); !errors.As(err, &ge) || ge.Code != 30001 {
		t.Fatalf("joining guild %d = %v; want code 30001", messaging.MaxGuildsPerUser+1, err)
	}
	gs, err := svc.UserGuilds(ctx, u)
	if err != nil || len(gs) != messaging.MaxGuildsPerUser {
		t.Fatalf("user is in %d guilds (%v); want %d", len(gs), err, messaging.MaxGuildsPerUser)
	}
	if n, _ := svc.Members(ctx, other, st.Guild.ID, 0, 1000); len(n) != 1 {
		t.Errorf("refused join left %d members; want 1", len(n))
	}
}
