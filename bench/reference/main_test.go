package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// client counts the MESSAGE_CREATEs one connection receives, in order.
type client struct {
	gws.BuiltinEventHandler
	mu    sync.Mutex
	ready chan struct{}
	seqs  []uint64
	posts []string
}

func (c *client) OnMessage(conn *gws.Conn, m *gws.Message) {
	defer m.Close()
	var p struct {
		Op int    `json:"op"`
		T  string `json:"t"`
		S  uint64 `json:"s"`
		D  struct {
			Content string `json:"content"`
		} `json:"d"`
	}
	if err := json.Unmarshal(m.Bytes(), &p); err != nil {
		return
	}
	switch {
	case p.Op == 10:
		_ = conn.WriteMessage(gws.OpcodeText, []byte(`{"op":2,"d":{"token":"t"}}`))
	case p.T == "READY":
		close(c.ready)
	case p.T == "MESSAGE_CREATE":
		c.mu.Lock()
		c.seqs = append(c.seqs, p.S)
		c.posts = append(c.posts, p.D.Content)
		c.mu.Unlock()
	}
}

func (c *client) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seqs)
}

// Every connection gets every post. In coalesce mode, where one broadcaster
// writes what is waiting, each connection gets them in sequence order even when
// the posts arrive together.
func TestReferenceModes(t *testing.T) {
	for _, mode := range []string{"direct", "coalesce"} {
		t.Run(mode, func(t *testing.T) {
			mux, err := newMux(mode)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()
			var clients []*client
			for range 5 {
				c := &client{ready: make(chan struct{})}
				conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: "ws" + strings.TrimPrefix(srv.URL, "http") + "/"})
				if err != nil {
					t.Fatal(err)
				}
				go conn.ReadLoop()
				defer conn.NetConn().Close()
				select {
				case <-c.ready:
				case <-time.After(5 * time.Second):
					t.Fatal("no READY")
				}
				clients = append(clients, c)
			}
			const posts = 200
			var wg sync.WaitGroup
			for i := range posts {
				wg.Go(func() {
					resp, err := http.Post(srv.URL+"/post", "text/plain", strings.NewReader(fmt.Sprintf("m%d", i)))
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("POST /post: %d", resp.StatusCode)
					}
				})
			}
			wg.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for _, c := range clients {
				for c.count() < posts && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				c.mu.Lock()
				seen := map[string]bool{}
				for _, p := range c.posts {
					seen[p] = true
				}
				if len(c.seqs) != posts || len(seen) != posts {
					t.Fatalf("a connection got %d frames, %d distinct posts; want %d", len(c.seqs), len(seen), posts)
				}
				if mode == "coalesce" {
					for i := 1; i < len(c.seqs); i++ {
						if c.seqs[i] <= c.seqs[i-1] {
							t.Fatalf("coalesce: s %d after %d: out of order", c.seqs[i], c.seqs[i-1])
						}
					}
				}
				c.mu.Unlock()
			}
		})
	}
	if _, err := newMux("batch"); err == nil {
		t.Error(`newMux("batch") accepted`)
	}
}
