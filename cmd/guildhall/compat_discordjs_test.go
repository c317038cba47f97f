package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
)

// discord.js 14 (and erlpack) against a real server: the scripts of
// compat/discordjs, a Node package with its lockfile that .ci/run installs with
// npm ci, run with node against a stack started here. Without node or the
// installed package a test skips on a developer's machine and fails in CI.

// compatJSDir is the Node package of the discord.js scripts.
const compatJSDir = "../../compat/discordjs"

// nodeScript runs script (a file of compatJSDir) with env added to the
// environment, failing the test if it exits non-zero or runs past timeout. Its
// output goes to the test log; a line the script prints that starts with a key
// of answer is passed to that function, and what it returns is written to the
// script's standard input as one line.
func nodeScript(t *testing.T, script string, env map[string]string, timeout time.Duration, answer map[string]func(line string) string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not installed")
	}
	for _, mod := range []string{"discord.js", "erlpack", "zlib-sync", "ws"} {
		if _, err := os.Stat(filepath.Join(compatJSDir, "node_modules", mod, "package.json")); err != nil {
			testenv.Unavailable(t, mod+" is not installed: run npm ci in compat/discordjs")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = compatJSDir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("node %s: %s", script, line)
		for key, f := range answer {
			if strings.HasPrefix(line, key+" ") {
				reply := f(strings.TrimPrefix(line, key+" "))
				if _, err := io.WriteString(stdin, reply+"\n"); err != nil {
					t.Errorf("answer to %s: %v", key, err)
				}
			}
		}
	}
	err = cmd.Wait()
	if stderr.Len() > 0 {
		t.Logf("node %s stderr:\n%s", script, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("node %s ran past %v", script, timeout)
	}
	if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
}

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
	nodeScript(t, "login.mjs", map[string]string{
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
	nodeScript(t, "events.mjs", map[string]string{
		"GH_API": "http://" + s.addr + "/api", "GH_BOT_TOKEN": bot, "GH_MEMBER_TOKEN": f.memberToken,
		"GH_MEMBER_ID": f.memberID, "GH_GUILD": f.guildID, "GH_CHANNEL": f.channelID,
	}, 2*time.Minute, map[string]func(string) string{"KICK": kick})
}

// encoding=etf with erlpack, plain and with zlib-stream, and a term with atom
// keys refused with 4002 (compat/discordjs/etf.mjs).
func TestDiscordJSErlpack(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	nodeScript(t, "etf.mjs", map[string]string{
		"GH_API": "http://" + s.addr + "/api", "GH_TOKEN": f.memberToken, "GH_USER_ID": f.memberID,
		"GH_GUILD": f.guildID, "GH_CHANNEL": f.channelID, "GH_POSTER_TOKEN": f.ownerToken,
	}, time.Minute, nil)
}
