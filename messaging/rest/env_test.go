package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/natsapi"
	"github.com/guildhall/guildhall/messaging/rest"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
)

// env is one whole api role over real parts: embedded NATS with the topology,
// the bbolt store in a temp dir, the writer, the service, the NATS responder and
// the REST handler on a loopback HTTP server.
type env struct {
	t       testing.TB
	nats    *testenv.NATS
	nc      *natsgo.Conn // the service's own connection
	store   *bolt.Store
	svc     *messaging.Service
	metrics *messaging.Metrics
	rest    *rest.Metrics
	log     *slog.Logger // the code under test's, into the test's output
	srv     *httptest.Server
	api     *testenv.REST
	barrier messaging.ReadBarrier

	mu         sync.Mutex
	writer     *messaging.Writer
	stopWriter context.CancelFunc
	writerDone chan struct{}
}

type envOptions struct {
	rest     rest.Config
	noLocal  bool          // the barrier polls the consumer instead of watching the local writer
	barrier  time.Duration // barrier timeout; zero means the default
	noWriter bool
	logins   messaging.LoginLimits
	now      func() time.Time // the service's clock; zero means time.Now
	groupDMs int              // messaging.Config.GroupDMsPerHour
}

type restConfig = rest.Config

func unlimited() rest.Limit { return rest.Limit{Requests: -1} }

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	nc, js, err := ghnats.ConnectAs(n.URL, "api-test", ghnats.RoleAPI, ghnats.ClientAuth{Dir: n.Creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, nats: n, nc: nc, store: store, metrics: messaging.NewMetrics(nil), rest: rest.NewMetrics(nil),
		log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	ctx := context.Background()
	w, err := messaging.NewWriter(messaging.WriterConfig{Store: store, JS: js, Metrics: e.metrics, Logger: e.log, IdleWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bcfg := messaging.BarrierConfig{Metrics: e.metrics, Logger: e.log, Timeout: o.barrier}
	if !o.noLocal {
		bcfg.Local = w
	}
	barrier, err := messaging.NewBarrier(ctx, js, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	e.barrier = barrier
	e.svc, err = messaging.NewService(ctx, messaging.Config{
		Store: store, Conn: nc, JS: js, IDs: guildhall.NewSnowflakeGeneratorForNode(1),
		Barrier: barrier, Metrics: e.metrics, Logger: e.log, BcryptCost: bcrypt.MinCost, Logins: o.logins, Now: o.now,
		GroupDMsPerHour: o.groupDMs,
	})
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = e.svc.WatchRevocations(watchCtx) }()
	projDone := make(chan struct{})
	go func() { defer close(projDone); _ = e.svc.RunProjection(watchCtx) }()
	t.Cleanup(func() { stopWatch(); <-watchDone; <-projDone })
	resp, err := natsapi.NewResponder(e.svc, nc, natsapi.Config{Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.rest
	if cfg.GatewayURL == "" {
		cfg.GatewayURL = "ws://gateway.test"
	}
	for _, l := range []*rest.Limit{&cfg.GlobalLimit, &cfg.RouteLimit, &cfg.MessageLimit, &cfg.AuthLimit} {
		if *l == (rest.Limit{}) {
			*l = unlimited()
		}
	}
	cfg.Metrics = e.rest
	if cfg.Logger == nil {
		cfg.Logger = e.log
	}
	e.srv = httptest.NewServer(rest.NewHandler(e.svc, cfg))
	e.api = testenv.NewREST(e.srv.URL + "/api/v10")
	// Cleanups run last-in first-out: HTTP, responder, writer, then the store.
	t.Cleanup(func() { store.Close() })
	t.Cleanup(e.StopWriter)
	t.Cleanup(resp.Close)
	t.Cleanup(e.srv.Close)
	if !o.noWriter {
		e.writer = w
		e.StartWriter(w)
	}
	return e
}

// StartWriter runs w (a new Writer on the same store and durable consumer when w
// is nil) until StopWriter.
func (e *env) StartWriter(w *messaging.Writer) *messaging.Writer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopWriter != nil {
		e.t.Fatal("writer already running")
	}
	if w == nil {
		var err error
		w, err = messaging.NewWriter(messaging.WriterConfig{Store: e.store, JS: e.nats.JS, Metrics: e.metrics, Logger: e.log, IdleWait: time.Second})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	e.stopWriter, e.writerDone = cancel, done
	return w
}

// StopWriter stops the running writer and waits for it.
func (e *env) StopWriter() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopWriter == nil {
		return
	}
	e.stopWriter()
	<-e.writerDone
	e.stopWriter, e.writerDone = nil, nil
}

// streamMsgs is how many events the EVENTS stream holds.
func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	s, err := e.nats.JS.Stream(context.Background(), ghnats.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	// The api's projection publishes marks into the stream to learn how fresh
	// it is (messaging/projection.go): bookkeeping, which any request may
	// cause at most every second, not state.
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(ghnats.SubjectMarksIn))
	if err != nil {
		e.t.Fatal(err)
	}
	marks := uint64(0)
	for _, n := range info.State.Subjects {
		marks += n
	}
	return info.State.Msgs - marks
}

// user is a registered account.
type user struct {
	token string
	id    string
}

var userSeq struct {
	sync.Mutex
	n int
}

func (e *env) register(name string) user {
	e.t.Helper()
	userSeq.Lock()
	userSeq.n++
	name = fmt.Sprintf("%s%d", name, userSeq.n)
	userSeq.Unlock()
	tok, id := e.api.Register(e.t, name)
	return user{token: tok, id: id}
}

type guildJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	OwnerID string `json:"owner_id"`
	Roles   []struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Permissions string `json:"permissions"`
	} `json:"roles"`
	ApproximateMemberCount   *int `json:"approximate_member_count"`
	ApproximatePresenceCount *int `json:"approximate_presence_count"`
}

type channelJSON struct {
	ID      string `json:"id"`
	GuildID string `json:"guild_id"`
	Name    string `json:"name"`
	Type    int    `json:"type"`
}

type messageJSON struct {
	ID              string  `json:"id"`
	ChannelID       string  `json:"channel_id"`
	GuildID         string  `json:"guild_id"`
	Content         string  `json:"content"`
	EditedTimestamp *string `json:"edited_timestamp"`
	Author          struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"author"`
	Nonce  any             `json:"nonce"`
	Member json.RawMessage `json:"member"`
}

type memberJSON struct {
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	GuildID string `json:"guild_id"`
}

type inviteJSON struct {
	Code  string `json:"code"`
	Uses  int    `json:"uses"`
	Guild struct {
		ID string `json:"id"`
	} `json:"guild"`
	Channel struct {
		ID string `json:"id"`
	} `json:"channel"`
	Inviter struct {
		ID string `json:"id"`
	} `json:"inviter"`
	NewMember *bool `json:"new_member"`
}

// guildFixture is a guild with an owner, a member and an outsider.
type guildFixture struct {
	owner, member, outsider user
	guild                   string
	channel                 string // "general"
}

func (e *env) fixture() guildFixture {
	e.t.Helper()
	f := guildFixture{owner: e.register("owner"), member: e.register("member"), outsider: e.register("outsider")}
	var g guildJSON
	e.api.Must(e.t, http.StatusCreated, "POST", "/guilds", f.owner.token, map[string]string{"name": "Fixture"}, &g)
	f.guild = g.ID
	var chs []channelJSON
	e.api.Must(e.t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", f.owner.token, nil, &chs)
	if len(chs) != 1 {
		e.t.Fatalf("new guild has %d channels; want 1", len(chs))
	}
	f.channel = chs[0].ID
	var inv inviteJSON
	e.api.Must(e.t, http.StatusOK, "POST", "/channels/"+f.channel+"/invites", f.owner.token, map[string]any{}, &inv)
	e.api.Must(e.t, http.StatusOK, "POST", "/invites/"+inv.Code, f.member.token, nil, nil)
	return f
}

func (e *env) post(token, channel, content string) messageJSON {
	e.t.Helper()
	var m messageJSON
	e.api.Must(e.t, http.StatusOK, "POST", "/channels/"+channel+"/messages", token, map[string]string{"content": content}, &m)
	return m
}

func (e *env) history(token, channel, query string) []messageJSON {
	e.t.Helper()
	var ms []messageJSON
	path := "/channels/" + channel + "/messages"
	if query != "" {
		path += "?" + query
	}
	e.api.Must(e.t, http.StatusOK, "GET", path, token, nil, &ms)
	return ms
}

// historyRetried reads history as a client does while the writer catches up:
// again after a 503 (the read barrier's answer), for up to 30 s.
func (e *env) historyRetried(token, channel, query string) []messageJSON {
	e.t.Helper()
	path := "/channels/" + channel + "/messages?" + query
	var ms []messageJSON
	testenv.Eventually(e.t, 30*time.Second, func() error {
		ms = nil
		st, raw := e.api.Do(e.t, "GET", path, token, nil, &ms)
		switch st {
		case http.StatusOK:
			return nil
		case http.StatusServiceUnavailable:
			return fmt.Errorf("history: %d %s", st, raw)
		}
		e.t.Fatalf("history: %d %s; want 200 (or 503 while the writer catches up)", st, raw)
		return nil
	})
	return ms
}

func ids(ms []messageJSON) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.ID)
	}
	return b.String()
}

// discordError is Discord's error body.
type discordError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Errors  map[string]any `json:"errors"`
}

// wantError checks a status and a Discord error body's code.
func wantError(t testing.TB, status int, raw []byte, wantStatus, wantCode int) discordError {
	t.Helper()
	var d discordError
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("error body %q is not JSON: %v", raw, err)
	}
	if status != wantStatus || d.Code != wantCode || d.Message == "" {
		t.Fatalf("got %d %s; want status %d code %d", status, raw, wantStatus, wantCode)
	}
	return d
}
