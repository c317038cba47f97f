package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
)

// holdingProxy forwards TCP connections to a target; while held, new connections
// wait before they reach it (a client reconnecting is kept away for as long as
// the test needs).
type holdingProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	target  string
	held    chan struct{} // closed when released; nil when not holding
	waiting int           // connections waiting now
}

func newHoldingProxy(t *testing.T) *holdingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *holdingProxy) addr() string { return p.ln.Addr().String() }

func (p *holdingProxy) forward(c net.Conn) {
	defer c.Close()
	p.mu.Lock()
	held, target := p.held, p.target
	if held != nil {
		p.waiting++
	}
	p.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-time.After(30 * time.Second):
		}
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (p *holdingProxy) hold() {
	p.mu.Lock()
	p.held = make(chan struct{})
	p.mu.Unlock()
}

func (p *holdingProxy) release() {
	p.mu.Lock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
	p.mu.Unlock()
}

func (p *holdingProxy) waitingNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// ClientReady comes with client.user and every guild of a user with guilds, 20
// logins in a row (compat/discordjs/login.mjs).
func TestDiscordJSLogin(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	var second struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds", f.memberToken, map[string]string{"name": "Second"}, &second)
	runDiscordJS(t, "login.mjs", map[string]string{
		"GH_API": "http://" + s.addr + "/api", "GH_TOKEN": f.memberToken, "GH_USER_ID": f.memberID,
		"GH_GUILDS": f.guildID + "," + second.ID, "GH_LOGINS": "20",
	}, 2*time.Minute, nil)
}

// A bot and a member on discord.js: messages, edits, deletes, typing, a
// presence with an activity, member chunks with presences, and the bot's
// automatic resume after the server closes its connection with 4000, with the
// message posted meanwhile delivered once (compat/discordjs/events.mjs). The
// gateway is reached through a proxy that holds the bot's reconnection until the
// message is posted.
func TestDiscordJSEvents(t *testing.T) {
	dir := t.TempDir()
	proxy := newHoldingProxy(t)
	s := startStack(t, dir, "--public-url", "ws://"+proxy.addr())
	proxy.mu.Lock()
	proxy.target = s.addr
	proxy.mu.Unlock()
	f := newGuildFixture(t, s)
	bot := createBot(t, dir, "jsbot"+randName())
	joinGuild(t, s, f.ownerToken, f.channelID, bot)

	nc, js := connectNATS(t, dir, ghnats.RoleGateway)
	defer nc.Close()
	kv, err := js.KeyValue(context.Background(), ghnats.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	kick := func(session string) string {
		e, err := kv.Get(context.Background(), session)
		if err != nil {
			t.Errorf("the bot's session %s in the registry: %v", session, err)
			return "ERROR"
		}
		var reg registry.Session
		if err := json.Unmarshal(e.Value(), &reg); err != nil {
			t.Error(err)
			return "ERROR"
		}
		proxy.hold()
		defer proxy.release()
		if err := nc.Publish(ghnats.KickSubject(reg.Node), []byte(session)); err != nil {
			t.Error(err)
			return "ERROR"
		}
		deadline := time.Now().Add(15 * time.Second)
		for proxy.waitingNow() == 0 {
			if time.Now().After(deadline) {
				t.Error("discord.js did not reconnect after close 4000")
				return "ERROR"
			}
			time.Sleep(20 * time.Millisecond)
		}
		m := s.post(t, f.ownerToken, f.channelID, "posted while the bot was away")
		return "POSTED " + m.ID
	}
	runDiscordJS(t, "events.mjs", map[string]string{
		"GH_API": "http://" + s.addr + "/api", "GH_BOT_TOKEN": bot, "GH_MEMBER_TOKEN": f.memberToken,
		"GH_MEMBER_ID": f.memberID, "GH_GUILD": f.guildID, "GH_CHANNEL": f.channelID,
	}, 2*time.Minute, map[string]func(string) string{"KICK": kick})
}

// encoding=etf with erlpack, plain and with zlib-stream, and a term with atom
// keys refused with 4002 (compat/discordjs/etf.mjs).
func TestDiscordJSErlpack(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	runDiscordJS(t, "etf.mjs", map[string]string{
		"GH_API": "http://" + s.addr + "/api", "GH_TOKEN": f.memberToken, "GH_USER_ID": f.memberID,
		"GH_GUILD": f.guildID, "GH_CHANNEL": f.channelID, "GH_POSTER_TOKEN": f.ownerToken,
	}, time.Minute, nil)
}
