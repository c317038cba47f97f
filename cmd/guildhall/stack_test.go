package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// stack is one `guildhall serve` running in the test process: embedded NATS,
// embedded store, REST and the gateway on a random loopback port.
type stack struct {
	addr   string
	data   string // the data directory
	rest   *testenv.REST
	cancel context.CancelFunc
	done   chan error
}

func startStack(t testing.TB, dataDir string, extra ...string) *stack {
	t.Helper()
	args := append([]string{"--addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--data", dataDir, "--drain", "100ms", "--rate-limits", "off", "--bcrypt-cost", "4", "--identify-concurrency", "64"}, extra...)
	f, err := parseServe(args, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	go func() { done <- run(ctx, f, log, listening) }()
	select {
	case addr := <-listening:
		s := &stack{addr: addr, data: dataDir, rest: testenv.NewREST("http://" + addr + "/api/v10"), cancel: cancel, done: done}
		t.Cleanup(func() { s.stop(t) })
		return s
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("serve did not start in 60s")
	}
	return nil
}

func (s *stack) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop in 30s")
	}
}

func (s *stack) gatewayURL() string { return "ws://" + s.addr + "/?v=10&encoding=json" }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// guildFixture is a guild with an owner and a second member, and a user who is not a
// member, each with a token.
type guildFixture struct {
	ownerToken, memberToken, outsiderToken string
	ownerID, memberID, outsiderID          string
	guildID, channelID                     string
}

func newGuildFixture(t *testing.T, s *stack) guildFixture {
	t.Helper()
	var f guildFixture
	f.ownerToken, f.ownerID = s.rest.Register(t, "owner"+randName())
	f.memberToken, f.memberID = s.rest.Register(t, "member"+randName())
	f.outsiderToken, f.outsiderID = s.rest.Register(t, "outsider"+randName())
	var g struct {
		ID string `json:"id"`
	}
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds", f.ownerToken, map[string]string{"name": "Test Guild"}, &g)
	f.guildID = g.ID
	var chans []struct {
		ID   string `json:"id"`
		Type int    `json:"type"`
	}
	s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", f.ownerToken, nil, &chans)
	if len(chans) == 0 {
		t.Fatal("new guild has no channel")
	}
	f.channelID = chans[0].ID
	var inv struct {
		Code string `json:"code"`
	}
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/invites", f.ownerToken, map[string]any{}, &inv)
	s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.memberToken, nil, nil)
	return f
}

var nameCounter int

func randName() string {
	nameCounter++
	return time.Now().Format("150405") + string(rune('a'+nameCounter%26)) + itoa(nameCounter)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

type message struct {
	ID        string  `json:"id"`
	ChannelID string  `json:"channel_id"`
	GuildID   string  `json:"guild_id"`
	Content   string  `json:"content"`
	Edited    *string `json:"edited_timestamp"`
}

func (s *stack) post(t *testing.T, token, channelID, content string) message {
	t.Helper()
	var m message
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+channelID+"/messages", token, map[string]string{"content": content}, &m)
	return m
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// natsTopologyForTests keeps the defaults; a test that needs a short resume window
// passes --resume-window to the api, which applies the topology.
func natsTopologyForTests() ghnats.Topology { return ghnats.Topology{} }

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	f()
	os.Stdout = old
	w.Close()
	return <-done
}
