package gateway_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	"github.com/guildhall/guildhall/messaging"
	boltstore "github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/natsapi"
	"github.com/guildhall/guildhall/messaging/rest"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/presence"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"
)

// presenceStack is the api role (store, service, responders, REST, presence
// notifier and aggregator) on one NATS connection, and gateways each on their own
// connection, so that a test can kill one gateway's NATS without touching the rest.
type presenceStack struct {
	t     testing.TB
	nats  *testenv.NATS
	store *boltstore.Store
	path  string
	svc   *messaging.Service
	agg   *presence.Aggregator
	nf    *presence.Notifier
	api   *testenv.REST
	gws   []*stackGateway
	inbox int // gateway.Config.Inbox of the gateways
	// limits are the gateways' Config.StartLimits.
	limits registry.StartLimits
	// reg holds the metrics every gateway of the stack counts into.
	reg     *prometheus.Registry
	metrics *gateway.Metrics
}

type stackGateway struct {
	g   *gateway.Gateway
	nc  *natsgo.Conn
	srv *httptest.Server
	url string
}

type stackOptions struct {
	topo     ghnats.Topology
	presence gateway.PresenceConfig
	gateways int
	// inbox is the gateways' Config.Inbox: a tiny one makes NATS drop their events.
	inbox int
	// limits are the gateways' session start limits (zero: Discord's).
	limits registry.StartLimits
	// seed runs on the store before the api starts (bulk data goes in here).
	seed func(path string)
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func startPresenceStack(t testing.TB, o stackOptions) *presenceStack {
	t.Helper()
	if o.topo.EventMaxBytes == 0 {
		o.topo.EventMaxBytes = 256 << 20
	}
	n := testenv.StartNATS(t, o.topo)
	st := &presenceStack{t: t, nats: n, path: filepath.Join(t.TempDir(), "store.db"), inbox: o.inbox, limits: o.limits, reg: prometheus.NewRegistry()}
	st.metrics = gateway.NewMetrics(st.reg)
	if o.seed != nil {
		o.seed(st.path)
	}
	store, err := boltstore.Open(st.path)
	if err != nil {
		t.Fatal(err)
	}
	st.store = store
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	nc, js, err := ghnats.ConnectAs(n.URL, "api", ghnats.RoleAPI, ghnats.ClientAuth{Dir: n.Creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	barrier, err := messaging.NewBarrier(ctx, js, messaging.BarrierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st.svc, err = messaging.NewService(ctx, messaging.Config{
		Store: store, Conn: nc, JS: js, IDs: guildhall.NewSnowflakeGeneratorForNode(1),
		Barrier: barrier, BcryptCost: bcrypt.MinCost, Logger: quietLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := natsapi.NewResponder(st.svc, nc, natsapi.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(resp.Close)
	mresp, err := natsapi.NewMembersResponder(store, nc, natsapi.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mresp.Close)
	st.agg, err = presence.NewAggregator(nc, presence.AggregatorConfig{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.agg.Close)
	st.nf = presence.NewNotifier(nc, js, presence.NotifierConfig{Logger: quietLog})
	nctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = st.nf.Run(nctx) }()
	t.Cleanup(func() { stop(); <-done })
	unlimited := rest.Limit{Requests: -1}
	srv := httptest.NewServer(rest.NewHandler(st.svc, rest.Config{
		GatewayURL: "ws://gateway.test", Presence: st.agg, Logger: quietLog,
		GlobalLimit: unlimited, RouteLimit: unlimited, MessageLimit: unlimited, AuthLimit: unlimited,
	}))
	t.Cleanup(srv.Close)
	st.api = testenv.NewREST(srv.URL + "/api/v10")
	for i := range max(o.gateways, 1) {
		st.addGateway(fmt.Sprintf("gw%d", i), o.presence)
	}
	select {
	case <-st.nf.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("presence notifier not ready after 30s")
	}
	return st
}

func (st *presenceStack) addGateway(node string, cfg gateway.PresenceConfig) *stackGateway {
	t := st.t
	t.Helper()
	nc, js, err := ghnats.ConnectAs(st.nats.URL, node, ghnats.RoleGateway, ghnats.ClientAuth{Dir: st.nats.Creds})
	if err != nil {
		t.Fatal(err)
	}
	// The test clients do not heartbeat: a long interval keeps them alive.
	g, err := gateway.New(context.Background(), nc, js, gateway.Config{Node: node, HeartbeatInterval: time.Hour, Inbox: st.inbox, Presence: cfg, StartLimits: st.limits, Metrics: st.metrics})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	sg := &stackGateway{g: g, nc: nc, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/?v=10&encoding=json"}
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Close(ctx, 0)
		nc.Close()
	})
	st.gws = append(st.gws, sg)
	return sg
}

// kill stops a gateway the way a crash would: its NATS connection goes first (no
// goodbye reaches the presence bucket), then its sockets.
func (sg *stackGateway) kill() {
	sg.nc.Close()
	sg.srv.CloseClientConnections()
}

// ---- seeding: accounts and members straight into the bbolt file

// seedUser is an account with a token.
type seedUser struct {
	ID    guildhall.Snowflake
	Name  string
	Token string
}

// seedGuild describes a guild to write: its owner and session users (accounts
// with tokens, members) and extra members without accounts.
type seedGuild struct {
	ID, ChannelID guildhall.Snowflake
	Users         []seedUser
	Extra         int // more members, ids ExtraBase+1..ExtraBase+Extra
	ExtraBase     guildhall.Snowflake
}

func newSeedUsers(base guildhall.Snowflake, prefix string, n int) []seedUser {
	out := make([]seedUser, n)
	for i := range out {
		out[i] = seedUser{ID: base + guildhall.Snowflake(i), Name: fmt.Sprintf("%s%05d", prefix, i), Token: fmt.Sprintf("tok-%s-%d", prefix, i)}
	}
	return out
}

// seedBolt writes guilds into the store file at path. The guild itself (guild,
// @everyone, a channel) goes through the Store; accounts and members go in with
// bbolt directly, in one transaction per 20,000, in the layout messaging/bolt/store.go
// documents: one Store.PutMember is one fsync, and 100,000 of them take minutes.
// check() afterwards reads them back through the Store, so a change of layout
// fails loudly here rather than quietly elsewhere.
func seedBolt(t testing.TB, path string, guilds ...seedGuild) {
	t.Helper()
	ctx := context.Background()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range guilds {
		if err := s.PutGuild(ctx, guildhall.Guild{ID: g.ID, Name: "guild " + g.ID.String(), OwnerID: g.Users[0].ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRole(ctx, g.ID, guildhall.Role{ID: g.ID, Name: "@everyone", Permissions: guildhall.DefaultEveryonePermissions}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutChannel(ctx, guildhall.Channel{ID: g.ChannelID, GuildID: g.ID, Type: guildhall.ChannelTypeGuildText, Name: "general", PermissionOverwrites: []guildhall.PermissionOverwrite{}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	key2 := func(a, b guildhall.Snowflake) []byte { return append(u64(uint64(a)), u64(uint64(b))...) }
	joined := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	users := map[guildhall.Snowflake]seedUser{}
	for _, g := range guilds {
		for _, u := range g.Users {
			users[u.ID] = u
		}
	}
	var all []seedUser
	for _, u := range users {
		all = append(all, u)
	}
	put := func(fn func(tx *bolt.Tx) error) {
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	const batch = 20000
	for i := 0; i < len(all); i += batch {
		part := all[i:min(i+batch, len(all))]
		put(func(tx *bolt.Tx) error {
			for _, u := range part {
				user := guildhall.User{ID: u.ID, Username: u.Name, Discriminator: "0"}
				b, _ := json.Marshal(map[string]any{"user": user})
				if err := tx.Bucket([]byte("users")).Put(u64(uint64(u.ID)), b); err != nil {
					return err
				}
				if err := tx.Bucket([]byte("usernames")).Put([]byte(strings.ToLower(u.Name)), u64(uint64(u.ID))); err != nil {
					return err
				}
				if err := tx.Bucket([]byte("tokens")).Put([]byte(messaging.HashToken(u.Token)), u64(uint64(u.ID))); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, g := range guilds {
		members := make([]guildhall.Member, 0, len(g.Users)+g.Extra)
		for _, u := range g.Users {
			members = append(members, guildhall.Member{GuildID: g.ID, User: guildhall.User{ID: u.ID, Username: u.Name, Discriminator: "0"}, Roles: []guildhall.Snowflake{}, JoinedAt: joined})
		}
		for i := range g.Extra {
			id := g.ExtraBase + guildhall.Snowflake(i+1)
			members = append(members, guildhall.Member{GuildID: g.ID, User: guildhall.User{ID: id, Username: fmt.Sprintf("member%06d", i+1), Discriminator: "0"}, Roles: []guildhall.Snowflake{}, JoinedAt: joined})
		}
		for i := 0; i < len(members); i += batch {
			part := members[i:min(i+batch, len(members))]
			put(func(tx *bolt.Tx) error {
				for _, m := range part {
					b, _ := json.Marshal(m)
					if err := tx.Bucket([]byte("members")).Put(key2(g.ID, m.User.ID), b); err != nil {
						return err
					}
					if err := tx.Bucket([]byte("user_guilds")).Put(key2(m.User.ID, g.ID), []byte{}); err != nil {
						return err
					}
				}
				return nil
			})
		}
		put(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("member_counts")).Put(u64(uint64(g.ID)), u64(uint64(len(members))))
		})
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Read back through the Store.
	s, err = boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, g := range guilds {
		if n, err := s.MemberCount(ctx, g.ID); err != nil || n != len(g.Users)+g.Extra {
			t.Fatalf("seeded guild %d: MemberCount = %d, %v; want %d", g.ID, n, err, len(g.Users)+g.Extra)
		}
		u := g.Users[len(g.Users)-1]
		if id, err := s.UserByToken(ctx, messaging.HashToken(u.Token)); err != nil || id != u.ID {
			t.Fatalf("seeded token of %d: UserByToken = %d, %v", u.ID, id, err)
		}
		if m, err := s.Member(ctx, g.ID, u.ID); err != nil || m.User.Username != u.Name {
			t.Fatalf("seeded member %d: %+v, %v", u.ID, m, err)
		}
		if ids, err := s.UserGuilds(ctx, u.ID); err != nil || len(ids) == 0 {
			t.Fatalf("seeded user guilds of %d: %v, %v", u.ID, ids, err)
		}
	}
}

// ---- clients

// connect dials a gateway and identifies; a session start limit (4008) is waited
// out. It may run outside the test goroutine.
func connect(t testing.TB, url, token string, presence any) (*testenv.GatewayClient, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := testenv.TryDialGateway(t, url)
		if err != nil {
			return nil, err
		}
		if _, err := waitPayload(c, "op:10", 10*time.Second); err != nil {
			return nil, err
		}
		d := map[string]any{"token": token, "intents": guildhall.IntentsAll, "properties": map[string]string{"os": "linux", "browser": "test", "device": "test"}}
		if presence != nil {
			d["presence"] = presence
		}
		if err := c.Send(2, d); err != nil {
			return nil, err
		}
		_, err = waitPayload(c, "READY", 30*time.Second)
		if err == nil {
			return c, nil
		}
		code, _ := c.WaitClose(time.Second)
		if code != gateway.CloseRateLimited || time.Now().After(deadline) {
			return nil, fmt.Errorf("identify: %v (close %d)", err, code)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitPayload is GatewayClient.WaitFor without a testing.TB (safe off the test
// goroutine).
func waitPayload(c *testenv.GatewayClient, name string, timeout time.Duration) (testenv.Payload, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.Next(time.Until(deadline))
		if err != nil {
			return p, fmt.Errorf("waiting for %s: %w", name, err)
		}
		if p.T == name || fmt.Sprintf("op:%d", p.Op) == name {
			return p, nil
		}
	}
}

// connectMany connects one session per user, a few at a time, spread over urls.
func connectMany(t testing.TB, urls []string, users []seedUser) []*testenv.GatewayClient {
	t.Helper()
	out := make([]*testenv.GatewayClient, len(users))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	for i, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := connect(t, urls[i%len(urls)], u.Token, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("user %s: %w", u.Name, err)
			}
			out[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return out
}

// presencesOf returns the PRESENCE_UPDATEs a client received about a user, as
// statuses in order.
func presencesOf(c *testenv.GatewayClient, user guildhall.Snowflake) []string {
	var out []string
	for _, p := range c.Dispatches(guildhall.EventPresenceUpdate) {
		var d presence.Presence
		if json.Unmarshal(p.D, &d) == nil && d.User.ID == user {
			out = append(out, string(d.Status))
		}
	}
	return out
}

func waitPresences(t testing.TB, c *testenv.GatewayClient, user guildhall.Snowflake, timeout time.Duration, want ...string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if got := presencesOf(c, user); strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("presences of %d = %v; want %v", user, got, want)
		}
		return nil
	})
}
