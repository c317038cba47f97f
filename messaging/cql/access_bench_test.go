package cql_test

import (
	"context"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// BenchmarkStoreAccessReads is what authorizing one post cost when the api read
// it from the store (messaging's accessFromStore): the channel, the guild (with
// its member count), the member, the roles. With the projection of the event
// stream a post in a guild the api holds reads none of them.
//
//	go test -run '^$' -bench StoreAccessReads -benchtime 2000x ./messaging/cql/
func BenchmarkStoreAccessReads(b *testing.B) {
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) {
			s, ctx := st.open(b), context.Background()
			g := guildhall.Guild{ID: 1 << 40, Name: "bench", OwnerID: 7}
			ch := guildhall.Channel{ID: g.ID + 1, GuildID: g.ID, Name: "general", PermissionOverwrites: []guildhall.PermissionOverwrite{}}
			m := guildhall.Member{GuildID: g.ID, User: guildhall.User{ID: 7, Username: "poster"}, Roles: []guildhall.Snowflake{}, JoinedAt: time.Now()}
			for _, err := range []error{
				s.PutGuild(ctx, g), s.PutRole(ctx, g.ID, guildhall.Role{ID: g.ID, Name: "@everyone", Permissions: guildhall.DefaultEveryonePermissions}),
				s.PutChannel(ctx, ch), s.PutMember(ctx, m),
			} {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Channel(ctx, ch.ID); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Guild(ctx, g.ID); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Member(ctx, g.ID, m.User.ID); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Roles(ctx, g.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
