package natsapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/natsapi"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// The members endpoint over real NATS and bbolt: pages, a prefix query that goes
// on where it stopped, user ids with unknown ones, an unknown guild.
func TestMembersResponder(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t, ghnats.Topology{})
	store, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	const guild = guildhall.Snowflake(77)
	if err := store.PutGuild(ctx, guildhall.Guild{ID: guild, Name: "g", OwnerID: 101}); err != nil {
		t.Fatal(err)
	}
	// 30 members: ids 101..130, usernames alpha01.., every third one "Beta".
	for i := 1; i <= 30; i++ {
		name := fmt.Sprintf("alpha%02d", i)
		if i%3 == 0 {
			name = fmt.Sprintf("Beta%02d", i)
		}
		m := guildhall.Member{GuildID: guild, User: guildhall.User{ID: guildhall.Snowflake(100 + i), Username: name}, JoinedAt: time.Now().UTC()}
		if i == 2 {
			nick := "betty"
			m.Nick = &nick
		}
		if err := store.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	r, err := natsapi.NewMembersResponder(store, n.Conn, natsapi.Config{Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ask := func(req guildhall.MembersRequest) guildhall.MembersReply {
		t.Helper()
		b, _ := json.Marshal(req)
		m, err := n.Conn.Request(ghnats.SubjectAPIMembers, b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep guildhall.MembersReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	ids := func(ms []guildhall.Member) []guildhall.Snowflake {
		out := make([]guildhall.Snowflake, len(ms))
		for i, m := range ms {
			out[i] = m.User.ID
		}
		return out
	}

	// Pages.
	p := ask(guildhall.MembersRequest{GuildID: guild, Limit: 20})
	if len(p.Members) != 20 || p.Done || p.Next != 120 {
		t.Fatalf("first page: %d members, done %v, next %d; want 20, false, 120", len(p.Members), p.Done, p.Next)
	}
	p = ask(guildhall.MembersRequest{GuildID: guild, After: p.Next, Limit: 20})
	if len(p.Members) != 10 || !p.Done || p.Members[0].User.ID != 121 {
		t.Fatalf("second page: %d members from %v, done %v; want 10 from 121, done", len(p.Members), ids(p.Members), p.Done)
	}

	// Query "bet": usernames Beta.. and the nick betty, case-insensitive; limit 4,
	// then go on after Next.
	q := ask(guildhall.MembersRequest{GuildID: guild, Query: "bet", Limit: 4})
	if want := []guildhall.Snowflake{102, 103, 106, 109}; !slices.Equal(ids(q.Members), want) || q.Done || q.Next != 109 {
		t.Fatalf("query: %v done %v next %d; want %v, not done, next 109", ids(q.Members), q.Done, q.Next, want)
	}
	q = ask(guildhall.MembersRequest{GuildID: guild, Query: "BET", After: q.Next, Limit: 100})
	if want := []guildhall.Snowflake{112, 115, 118, 121, 124, 127, 130}; !slices.Equal(ids(q.Members), want) || !q.Done {
		t.Fatalf("query on: %v done %v; want %v, done", ids(q.Members), q.Done, want)
	}
	// A bounded scan stops early and says where.
	q = ask(guildhall.MembersRequest{GuildID: guild, Query: "zeta", Limit: 10, Scan: 12})
	if len(q.Members) != 0 || q.Done || q.Scanned != 12 || q.Next != 112 {
		t.Fatalf("bounded query: %d members, done %v, scanned %d, next %d; want 0, false, 12, 112", len(q.Members), q.Done, q.Scanned, q.Next)
	}

	// User ids.
	u := ask(guildhall.MembersRequest{GuildID: guild, UserIDs: []guildhall.Snowflake{105, 999, 101}})
	if !slices.Equal(ids(u.Members), []guildhall.Snowflake{105, 101}) || !slices.Equal(u.NotFound, []guildhall.Snowflake{999}) {
		t.Fatalf("user ids: %v not found %v", ids(u.Members), u.NotFound)
	}
	if e := ask(guildhall.MembersRequest{GuildID: 5}).Error; e == nil || e.Code != guildhall.ErrUnknownGuild.Code {
		t.Fatalf("unknown guild: error %v; want Unknown Guild", e)
	}
}
