package messaging_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"golang.org/x/crypto/bcrypt"
)

// projRig is api processes sharing one store, as api processes share a CQL
// store: each with its own NATS connection (the api's identity), snowflake
// node, metrics and projection of the event stream; and a writer.
type projRig struct {
	t       *testing.T
	nats    *testenv.NATS
	store   *outageStore
	apis    []*messaging.Service
	metrics []*messaging.Metrics
}

func newProjRig(t *testing.T, apis int, cfg messaging.Config) *projRig {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	r := &projRig{t: t, nats: n, store: &outageStore{Store: bs}}
	_, wjs := n.ConnectAs(t, ghnats.RoleWriter)
	w, err := messaging.NewWriter(messaging.WriterConfig{Store: r.store, JS: wjs, Logger: testLog(t),
		MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for range apis {
		r.addAPI(n.URL, cfg)
	}
	return r
}

// addAPI starts one more api process, connected to NATS at url.
func (r *projRig) addAPI(url string, cfg messaging.Config) *messaging.Service {
	r.t.Helper()
	nc, js := testenv.NATSConnectAs(r.t, url, r.nats.Creds, ghnats.RoleAPI)
	cfg.Store, cfg.Conn, cfg.JS = r.store, nc, js
	cfg.IDs = guildhall.NewSnowflakeGeneratorForNode(10 + len(r.apis))
	cfg.BcryptCost, cfg.Logger = bcrypt.MinCost, testLog(r.t)
	cfg.Metrics = messaging.NewMetrics(nil)
	svc, err := messaging.NewService(context.Background(), cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	runProjection(r.t, svc)
	r.apis, r.metrics = append(r.apis, svc), append(r.metrics, cfg.Metrics)
	return svc
}

// storeReads is how many authorization reads api i answered from the store.
func (r *projRig) storeReads(i int) float64 {
	return counter(r.metrics[i].AccessReads.WithLabelValues("store"))
}

// guildWith creates a guild owned by owner on api 0 with the users as members.
func (r *projRig) guildWith(owner guildhall.User, users ...guildhall.User) guildhall.GuildState {
	r.t.Helper()
	ctx := context.Background()
	st, err := r.apis[0].CreateGuild(ctx, owner, "Projected")
	if err != nil {
		r.t.Fatal(err)
	}
	inv, err := r.apis[0].CreateInvite(ctx, owner, st.Channels[0].ID, messaging.NewInvite{})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, u := range users {
		if _, _, err := r.apis[0].AcceptInvite(ctx, u, inv.Invite.Code); err != nil {
			r.t.Fatal(err)
		}
	}
	return st
}

func post(svc *messaging.Service, u guildhall.User, ch guildhall.Snowflake, content string) (guildhall.Message, error) {
	return svc.PostMessage(context.Background(), u, ch, messaging.NewMessage{Content: content})
}

func mustPost(t *testing.T, svc *messaging.Service, u guildhall.User, ch guildhall.Snowflake, content string) guildhall.Message {
	t.Helper()
	m, err := post(svc, u, ch, content)
	if err != nil {
		t.Fatalf("%s posts %q: %v", u.Username, content, err)
	}
	return m
}

// wantCode checks that err is the client error with this status and code.
func wantCode(t *testing.T, what string, err error, status, code int) {
	t.Helper()
	var ge *guildhall.Error
	if !errors.As(err, &ge) || ge.Status != status || ge.Code != code {
		t.Errorf("%s = %v; want %d (code %d)", what, err, status, code)
	}
}

// TestProjectionFreshnessAcrossProcesses: a member banned, kicked or denied
// SEND_MESSAGES on one api process is refused by another once the freshness
// bound has passed since the change returned, from that process's projection
// (not by asking the store); the process that made the change refuses at once.
func TestProjectionFreshnessAcrossProcesses(t *testing.T) {
	t.Parallel()
	const fresh = 500 * time.Millisecond
	// Wait is long so that a slow machine does not make the other process
	// fall back to the store: the test asserts it did not.
	r := newProjRig(t, 2, messaging.Config{Projection: messaging.ProjectionConfig{Freshness: fresh, Wait: 10 * time.Second}})
	a, b := r.apis[0], r.apis[1]
	ctx := context.Background()
	owner, alice, bob, carol := registerUser(t, a, "owner"), registerUser(t, a, "alice"), registerUser(t, a, "bob"), registerUser(t, a, "carol")
	st := r.guildWith(owner, alice, bob, carol)
	g, general := st.Guild.ID, st.Channels[0].ID
	for _, u := range []guildhall.User{alice, bob, carol} {
		mustPost(t, b, u, general, "hello from "+u.Username) // b holds the guild and the three
	}
	before := r.storeReads(1)

	if err := a.BanMember(ctx, owner, g, alice.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.KickMember(ctx, owner, g, carol.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.EditOverwrite(ctx, owner, general, guildhall.PermissionOverwrite{ID: bob.ID, Type: guildhall.OverwriteMember, Deny: guildhall.PermSendMessages}, ""); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	// The process that made the changes: at once.
	_, err := post(a, alice, general, "banned")
	wantCode(t, "banned alice posts on the banning process", err, 403, 50001)
	_, err = post(a, carol, general, "kicked")
	wantCode(t, "kicked carol posts on the kicking process", err, 403, 50001)
	_, err = post(a, bob, general, "muted")
	wantCode(t, "denied bob posts on the process that denied him", err, 403, 50013)

	// The other process: once the bound has passed.
	time.Sleep(fresh - time.Since(changed))
	_, err = post(b, alice, general, "banned")
	wantCode(t, "banned alice posts on the other process", err, 403, 50001)
	_, err = post(b, carol, general, "kicked")
	wantCode(t, "kicked carol posts on the other process", err, 403, 50001)
	_, err = post(b, bob, general, "muted")
	wantCode(t, "denied bob posts on the other process", err, 403, 50013)
	if err := b.Typing(ctx, bob, general); err == nil {
		t.Error("denied bob types on the other process: allowed")
	}
	if n := r.storeReads(1) - before; n != 0 {
		t.Errorf("the other process asked the store %v times; want its projection to answer", n)
	}
	mustPost(t, b, owner, general, "the owner still posts")
}

// TestProjectionStaleFallsBack: an api process whose projection cannot be
// fresh (its link to NATS is cut, so neither events nor its marks reach it)
// does not authorize from it: past the wait it asks the store, which refuses a
// member banned elsewhere meanwhile; with the store down too, it answers 503.
// (TestProjectionFreshnessAcrossProcesses is the same without the cut.)
func TestProjectionStaleFallsBack(t *testing.T) {
	t.Parallel()
	const fresh = 500 * time.Millisecond
	cfg := messaging.Config{Projection: messaging.ProjectionConfig{Freshness: fresh, Wait: 200 * time.Millisecond}}
	r := newProjRig(t, 1, cfg)
	link := testenv.StartProxy(t, strings.TrimPrefix(r.nats.URL, "nats://"))
	a, b := r.apis[0], r.addAPI("nats://"+link.Addr, cfg)
	ctx := context.Background()
	owner, alice := registerUser(t, a, "owner"), registerUser(t, a, "alice")
	st := r.guildWith(owner, alice)
	general := st.Channels[0].ID
	mustPost(t, b, alice, general, "hello")
	stale, storeReads := counter(r.metrics[1].ProjectionStale), r.storeReads(1)

	link.Cut()
	if err := a.BanMember(ctx, owner, st.Guild.ID, alice.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fresh)
	_, err := post(b, alice, general, "banned, cut off")
	wantCode(t, "a member banned elsewhere posts on a process cut off from the stream", err, 403, 50001)
	if counter(r.metrics[1].ProjectionStale) == stale || r.storeReads(1) == storeReads {
		t.Errorf("the cut-off process answered without finding its projection stale and asking the store")
	}
	r.store.down(true)
	_, err = post(b, owner, general, "cut off, store down")
	wantCode(t, "a post on a process cut off from the stream, with the store down", err, 503, 0)
	r.store.down(false)

	link.Heal()
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := post(b, owner, general, "back")
		return err
	})
}

// TestProjectionStoreOutage: while the store cannot be reached, a guild the
// api holds keeps working for posts, typing, edits and deletes of recent
// messages, with tokens it had cached; a guild it does not hold and history
// answer 503 with Discord's error body; afterwards history has every
// acknowledged post and edit.
func TestProjectionStoreOutage(t *testing.T) {
	t.Parallel()
	r := newProjRig(t, 1, messaging.Config{TokenCacheTTL: 50 * time.Millisecond, Projection: messaging.ProjectionConfig{Wait: 10 * time.Second}})
	svc, ctx := r.apis[0], context.Background()
	owner := registerUser(t, svc, "owner")
	sess, err := svc.Register(ctx, messaging.Credentials{Username: "alice", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := svc.Authenticate(ctx, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	warm := r.guildWith(owner, alice)
	cold, err := svc.CreateGuild(ctx, owner, "Cold")
	if err != nil {
		t.Fatal(err)
	}
	general := warm.Channels[0].ID
	first := mustPost(t, svc, alice, general, "before")
	if _, err := svc.History(ctx, alice, general, messaging.HistoryQuery{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	storeReads := r.storeReads(0)

	r.store.down(true)
	time.Sleep(100 * time.Millisecond) // past the token cache's ttl
	if u, err := svc.Authenticate(ctx, sess.Token); err != nil || u.ID != alice.ID {
		t.Fatalf("Authenticate(alice's cached token) while the store is down = %v, %v; want alice", u.ID, err)
	}
	_, err = svc.Authenticate(ctx, "not-a-cached-token")
	wantCode(t, "Authenticate(an unknown token) while the store is down", err, 503, 0)

	var during []guildhall.Message
	for i := range 5 {
		during = append(during, mustPost(t, svc, alice, general, fmt.Sprintf("during %d", i)))
	}
	if err := svc.Typing(ctx, alice, general); err != nil {
		t.Errorf("Typing while the store is down: %v", err)
	}
	for _, m := range []guildhall.Message{first, during[0]} {
		content := m.Content + " (edited)"
		got, err := svc.EditMessage(ctx, alice, general, m.ID, &content)
		if err != nil || got.Content != content || got.EditedTimestamp == nil {
			t.Errorf("EditMessage(%q) while the store is down = %q, %v", m.Content, got.Content, err)
		}
	}
	if err := svc.DeleteMessage(ctx, alice, general, during[1].ID); err != nil {
		t.Errorf("DeleteMessage while the store is down: %v", err)
	}
	other := "not hers"
	_, err = svc.EditMessage(ctx, owner, general, during[2].ID, &other)
	wantCode(t, "EditMessage(another's message) while the store is down", err, 403, 50005)
	_, err = svc.History(ctx, alice, general, messaging.HistoryQuery{Limit: 10})
	wantCode(t, "History while the store is down", err, 503, 0)
	if err != nil && !strings.Contains(err.Error(), "history") {
		t.Errorf("History while the store is down = %v; want it to say history is unavailable", err)
	}
	_, err = svc.GetMessage(ctx, alice, general, first.ID)
	wantCode(t, "GetMessage while the store is down", err, 503, 0)
	_, err = post(svc, owner, cold.Channels[0].ID, "cold")
	wantCode(t, "a post in a guild the api does not hold, while the store is down", err, 503, 0)
	if n := r.storeReads(0) - storeReads; n != 0 {
		t.Errorf("%v authorization reads fell back to the store while it was down; want the projection to answer", n)
	}

	r.store.down(false)
	want := map[string]string{
		first.ID.String(): "before (edited)", during[0].ID.String(): "during 0 (edited)",
		during[2].ID.String(): "during 2", during[3].ID.String(): "during 3", during[4].ID.String(): "during 4",
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		page, err := svc.History(ctx, alice, general, messaging.HistoryQuery{Limit: 100})
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, m := range page {
			got[m.ID.String()] = m.Content
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("history after the outage = %v; want %v", got, want)
		}
		return nil
	})
}

// TestProjectionHealsUnpublishedChange: a change the store has but the stream
// never got (the api died between the two) reaches the projection when the
// guild is read again, at most Refresh after it was loaded.
func TestProjectionHealsUnpublishedChange(t *testing.T) {
	t.Parallel()
	r := newProjRig(t, 1, messaging.Config{Projection: messaging.ProjectionConfig{Refresh: 300 * time.Millisecond}})
	svc, ctx := r.apis[0], context.Background()
	owner, alice := registerUser(t, svc, "owner"), registerUser(t, svc, "alice")
	st := r.guildWith(owner, alice)
	general := st.Channels[0]
	mustPost(t, svc, alice, general.ID, "hello")
	general.PermissionOverwrites = []guildhall.PermissionOverwrite{{ID: alice.ID, Type: guildhall.OverwriteMember, Deny: guildhall.PermSendMessages}}
	if err := r.store.PutChannel(ctx, general); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if _, err := post(svc, alice, general.ID, "still?"); !errors.Is(err, guildhall.ErrMissingPerms) {
			return fmt.Errorf("post after an unpublished overwrite = %v; want Missing Permissions", err)
		}
		return nil
	})
}

// TestProjectionBounds: the projection holds at most Guilds guilds and Members
// memberships; what it dropped is read again from the store, and answers stay
// right.
func TestProjectionBounds(t *testing.T) {
	t.Parallel()
	r := newProjRig(t, 1, messaging.Config{Projection: messaging.ProjectionConfig{Guilds: 2, Members: 3}})
	svc, ctx, m := r.apis[0], context.Background(), r.metrics[0]
	owner := registerUser(t, svc, "owner")
	var users []guildhall.User
	for i := range 4 {
		users = append(users, registerUser(t, svc, fmt.Sprintf("user%d", i)))
	}
	var guilds []guildhall.GuildState
	for range 3 {
		guilds = append(guilds, r.guildWith(owner, users...))
	}
	for round := range 2 {
		for _, g := range guilds {
			for _, u := range users {
				mustPost(t, svc, u, g.Channels[0].ID, fmt.Sprintf("round %d", round))
			}
		}
	}
	if n := counter(m.ProjectionGuilds); n != 2 {
		t.Errorf("projection holds %v guilds; want 2 (its bound)", n)
	}
	if n := counter(m.ProjectionMembers); n > 3 {
		t.Errorf("projection holds %v memberships; want at most 3 (its bound)", n)
	}
	if err := svc.BanMember(ctx, owner, guilds[0].Guild.ID, users[0].ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	for _, g := range guilds {
		_, err := post(svc, users[0], g.Channels[0].ID, "after the ban")
		if g.Guild.ID == guilds[0].Guild.ID {
			wantCode(t, "the banned user posts", err, 403, 50001)
		} else if err != nil {
			t.Errorf("user0 posts in a guild that did not ban them: %v", err)
		}
	}
}

// TestProjectionLoadRacesChanges: guilds change on one api process while the
// other loads them (its first need of each comes in the middle of the
// changes); once the changes stop and the freshness bound has passed, what the
// second process authorizes with is what the store holds.
func TestProjectionLoadRacesChanges(t *testing.T) {
	t.Parallel()
	const fresh = 500 * time.Millisecond
	r := newProjRig(t, 2, messaging.Config{Projection: messaging.ProjectionConfig{Freshness: fresh, Wait: 10 * time.Second}})
	a, b, ctx := r.apis[0], r.apis[1], context.Background()
	owner := registerUser(t, a, "owner")
	var guilds []guildhall.GuildState
	for range 8 {
		guilds = append(guilds, r.guildWith(owner))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var changeErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			for _, g := range guilds {
				select {
				case <-stop:
					return
				default:
				}
				if err := changeGuild(ctx, a, owner, g, i); err != nil {
					changeErr = err
					return
				}
			}
		}
	})
	for _, g := range guilds {
		time.Sleep(30 * time.Millisecond)
		if _, err := b.GuildChannels(ctx, owner, g.Guild.ID); err != nil {
			t.Errorf("first read of guild %v on the other process: %v", g.Guild.ID, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if changeErr != nil {
		t.Fatal(changeErr)
	}
	before := r.storeReads(1)
	time.Sleep(fresh)
	for _, g := range guilds {
		chs, err := b.GuildChannels(ctx, owner, g.Guild.ID)
		if err != nil {
			t.Fatal(err)
		}
		roles, err := b.GuildRoles(ctx, owner, g.Guild.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantChs, err := r.store.Channels(ctx, g.Guild.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantRoles, err := r.store.Roles(ctx, g.Guild.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canonical(chs), canonical(wantChs); got != want {
			t.Errorf("guild %v: channels on the other process\n%s\nwant (the store)\n%s", g.Guild.ID, got, want)
		}
		if got, want := canonical(roles), canonical(wantRoles); got != want {
			t.Errorf("guild %v: roles on the other process\n%s\nwant (the store)\n%s", g.Guild.ID, got, want)
		}
	}
	if n := r.storeReads(1) - before; n != 0 {
		t.Errorf("the other process read %v guilds from the store; want them answered by its projection", n)
	}
}

// changeGuild makes change i to a guild: a channel created, renamed, given an
// overwrite of a role made for it, the role deleted (which rewrites the
// channel), the channel deleted.
func changeGuild(ctx context.Context, svc *messaging.Service, owner guildhall.User, g guildhall.GuildState, i int) error {
	name := fmt.Sprintf("role-%d", i)
	role, err := svc.CreateRole(ctx, owner, g.Guild.ID, messaging.RoleParams{Name: &name}, "")
	if err != nil {
		return err
	}
	ch, err := svc.CreateChannel(ctx, owner, g.Guild.ID, messaging.NewChannel{Name: fmt.Sprintf("ch-%d", i), Type: guildhall.ChannelTypeGuildText})
	if err != nil {
		return err
	}
	if err := svc.EditOverwrite(ctx, owner, ch.ID, guildhall.PermissionOverwrite{ID: role.ID, Type: guildhall.OverwriteRole, Deny: guildhall.PermSendMessages}, ""); err != nil {
		return err
	}
	if err := svc.EditOverwrite(ctx, owner, g.Channels[0].ID, guildhall.PermissionOverwrite{ID: role.ID, Type: guildhall.OverwriteRole, Allow: guildhall.PermAddReactions}, ""); err != nil {
		return err
	}
	topic := fmt.Sprintf("topic %d", i)
	if _, err := svc.ModifyChannel(ctx, owner, g.Channels[0].ID, messaging.ChannelParams{SetTopic: true, Topic: &topic}, ""); err != nil {
		return err
	}
	if i%2 == 0 {
		if err := svc.DeleteRole(ctx, owner, g.Guild.ID, role.ID, ""); err != nil {
			return err
		}
		if _, err := svc.DeleteChannel(ctx, owner, ch.ID, ""); err != nil {
			return err
		}
	}
	return nil
}

// canonical is a JSON listing of channels or roles by id, with empty lists
// and missing ones alike.
func canonical[T interface {
	guildhall.Channel | guildhall.Role
}](xs []T) string {
	type item struct {
		id   guildhall.Snowflake
		json string
	}
	var out []item
	for _, x := range xs {
		var id guildhall.Snowflake
		switch v := any(&x).(type) {
		case *guildhall.Channel:
			id = v.ID
			if v.PermissionOverwrites == nil {
				v.PermissionOverwrites = []guildhall.PermissionOverwrite{}
			}
		case *guildhall.Role:
			id = v.ID
		}
		b, _ := json.Marshal(x)
		out = append(out, item{id, string(b)})
	}
	slices.SortFunc(out, func(a, b item) int { return cmp.Compare(a.id, b.id) })
	var sb strings.Builder
	for _, it := range out {
		sb.WriteString(it.json + "\n")
	}
	return sb.String()
}
