package messaging_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"golang.org/x/crypto/bcrypt"
)

// BenchmarkPostMessage is the api's post path (authorize, snowflake, publish to
// JetStream and wait for its ack) against the bolt store: with every
// authorization read from the store (no projection running), and from the
// projection of the event stream.
//
//	go test -run '^$' -bench BenchmarkPostMessage -benchmem ./messaging/
func BenchmarkPostMessage(b *testing.B) {
	for _, projected := range []bool{false, true} {
		name := "store"
		if projected {
			name = "projection"
		}
		b.Run(name, func(b *testing.B) {
			n := testenv.StartNATS(b, ghnats.Topology{})
			store, err := bolt.Open(filepath.Join(b.TempDir(), "store.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { store.Close() })
			nc, js := n.ConnectAs(b, ghnats.RoleAPI)
			svc, err := messaging.NewService(context.Background(), messaging.Config{
				Store: store, Conn: nc, JS: js, IDs: guildhall.NewSnowflakeGeneratorForNode(1), BcryptCost: bcrypt.MinCost,
			})
			if err != nil {
				b.Fatal(err)
			}
			if projected {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); _ = svc.RunProjection(ctx) }()
				b.Cleanup(func() { cancel(); <-done })
			}
			ctx := context.Background()
			u := registerUser(b, svc, "poster")
			st, err := svc.CreateGuild(ctx, u, "Bench")
			if err != nil {
				b.Fatal(err)
			}
			ch := st.Channels[0].ID
			if _, err := svc.PostMessage(ctx, u, ch, messaging.NewMessage{Content: "warm"}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := svc.PostMessage(ctx, u, ch, messaging.NewMessage{Content: fmt.Sprint("post ", i)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestProjectionMemory measures what the projection keeps per guild (20 text
// channels with two overwrites each, 10 roles) and per membership, and holds it
// to a budget: what ProjectionConfig's bounds multiply.
func TestProjectionMemory(t *testing.T) {
	testenv.SkipShort(t, "creates 40 guilds of 30 channels and roles, and 200 members")
	const guilds, channels, roles, members = 40, 20, 10, 200
	r := newProjRig(t, 1, messaging.Config{Projection: messaging.ProjectionConfig{Guilds: guilds, Members: 2 * members}})
	svc, ctx := r.apis[0], context.Background()
	owner := registerUser(t, svc, "owner")
	var ids []guildhall.Snowflake
	for g := range guilds {
		st, err := svc.CreateGuild(ctx, owner, fmt.Sprintf("guild %d", g))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.Guild.ID)
	}
	// The guilds are loaded while they are made; measure a second process's
	// projection instead, which has seen none of them.
	for _, id := range ids {
		var made []guildhall.Snowflake
		for i := range roles {
			name := fmt.Sprintf("role %d", i)
			role, err := svc.CreateRole(ctx, owner, id, messaging.RoleParams{Name: &name}, "")
			if err != nil {
				t.Fatal(err)
			}
			made = append(made, role.ID)
		}
		for i := range channels {
			_, err := svc.CreateChannel(ctx, owner, id, messaging.NewChannel{Name: fmt.Sprintf("channel-%d", i), Type: guildhall.ChannelTypeGuildText,
				PermissionOverwrites: []guildhall.PermissionOverwrite{
					{ID: made[i%roles], Type: guildhall.OverwriteRole, Allow: guildhall.PermSendMessages},
					{ID: id, Type: guildhall.OverwriteRole, Deny: guildhall.PermSendMessages},
				}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	inv, err := svc.CreateInvite(ctx, owner, mustChannels(t, svc, owner, ids[0])[0].ID, messaging.NewInvite{})
	if err != nil {
		t.Fatal(err)
	}
	var users []guildhall.User
	for i := range members {
		u := registerUser(t, svc, fmt.Sprintf("member%d", i))
		if _, _, err := svc.AcceptInvite(ctx, u, inv.Invite.Code); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	fresh := r.addAPI(r.nats.URL, messaging.Config{Projection: messaging.ProjectionConfig{Guilds: guilds, Members: 2 * members}})

	before := liveHeap()
	for _, id := range ids {
		mustChannels(t, fresh, owner, id)
	}
	perGuild := (liveHeap() - before) / guilds
	before = liveHeap()
	for _, u := range users {
		if _, err := fresh.GuildMember(ctx, u, ids[0], u.ID); err != nil {
			t.Fatal(err)
		}
	}
	perMember := (liveHeap() - before) / members
	t.Logf("projection memory: %d B per guild (%d channels with 2 overwrites, %d roles), %d B per membership", perGuild, channels, roles, perMember)
	if perGuild > 32<<10 || perMember > 2<<10 {
		t.Errorf("projection memory: %d B per guild, %d B per membership; want at most 32 KiB and 2 KiB", perGuild, perMember)
	}
}

func mustChannels(t *testing.T, svc *messaging.Service, u guildhall.User, guild guildhall.Snowflake) []guildhall.Channel {
	t.Helper()
	chs, err := svc.GuildChannels(context.Background(), u, guild)
	if err != nil {
		t.Fatal(err)
	}
	return chs
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
