package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of one port of a real server, for the faults the
// real servers cannot produce on demand: a link between two NATS servers (a leaf
// link, a cluster route) that goes down while both servers and their clients'
// connections stay up. Cut closes every connection through it and refuses new
// ones until Heal; Block does the same for the connections of one NATS server
// only (a route is opened by either end, so isolating a node takes the proxies
// of every node).
//
// A connection's NATS server is told by the name in its first CONNECT line (a
// route's or leaf link's CONNECT names the dialing server's id); the proxy reads
// that line before it forwards anything the dialer sends.
type Proxy struct {
	Addr string // where to connect instead of the target

	t      testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	blocked map[string]bool // server ids
	conns   map[*proxied]struct{}
}

type proxied struct {
	client, server net.Conn
	name           string // the dialer's server id, once read
}

// StartProxy listens on a free loopback port and forwards to target; it stops
// at test cleanup.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), t: t, ln: ln, target: target, blocked: map[string]bool{}, conns: map[*proxied]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		p.cut = true
		p.closeLocked(func(*proxied) bool { return true })
		p.mu.Unlock()
	})
	return p
}

// Cut closes every connection through the proxy and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.closeLocked(func(*proxied) bool { return true })
}

// Heal lets connections through again (Cut and Block both end).
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	clear(p.blocked)
}

// Block closes the connections the NATS server with this id dialed through the
// proxy and refuses its new ones until Heal.
func (p *Proxy) Block(serverID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[serverID] = true
	p.closeLocked(func(c *proxied) bool { return c.name == serverID })
}

func (p *Proxy) closeLocked(which func(*proxied) bool) {
	for c := range p.conns {
		if which(c) {
			_ = c.client.Close()
			_ = c.server.Close()
			delete(p.conns, c)
		}
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(client)
	}
}

func (p *Proxy) serve(client net.Conn) {
	p.mu.Lock()
	refused := p.cut
	p.mu.Unlock()
	if refused {
		_ = client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &proxied{client: client, server: server}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	done := func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
	}
	// The server speaks first (INFO); the dialer answers with CONNECT.
	go func() {
		_, _ = io.Copy(client, server)
		done()
	}()
	br := bufio.NewReaderSize(client, 64<<10)
	first, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		done()
		return
	}
	name := connectName(first)
	p.mu.Lock()
	c.name = name
	refused = p.cut || p.blocked[name]
	p.mu.Unlock()
	if refused {
		done()
		return
	}
	if _, err := server.Write(first); err != nil {
		done()
		return
	}
	_, _ = io.Copy(server, br)
	done()
}

// connectName is the "name" of a NATS CONNECT line ("" when line is none).
func connectName(line []byte) string {
	rest, ok := bytes.CutPrefix(line, []byte("CONNECT "))
	if !ok {
		return ""
	}
	var c struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(bytes.TrimSpace(rest), &c)
	return c.Name
}
