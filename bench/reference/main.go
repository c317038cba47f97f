// Command reference is the yardstick for Guildhall's fan-out: the least a Go
// program can do to put one message on N WebSocket connections. It speaks just
// enough of the gateway protocol for guildhall-bench's clients (HELLO, READY in
// answer to IDENTIFY, HEARTBEAT_ACK), and on POST /post it frames the body once as
// a MESSAGE_CREATE and writes that same frame to every connection, one write
// system call per recipient, from the request's goroutine. No NATS, no
// JetStream, no store, no outboxes: what is left is the cost of the writes
// themselves.
//
// With --mode coalesce it is instead the least a program can do that batches
// under load: POST /post queues the frame (bounded; 503 when full) and answers,
// and one broadcaster takes every frame waiting (up to 64) and writes them to
// each connection with one write. A lone message still leaves at once; when
// messages arrive faster than one fan-out takes, each write carries several.
//
//	reference --addr 127.0.0.1:9000 [--mode direct|coalesce]
//
// guildhall-bench huge-room --target reference drives it exactly as it drives
// Guildhall, so the two CPU-per-delivered-frame figures compare directly.
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

type conn struct {
	c  net.Conn
	mu sync.Mutex // one writer at a time: the broadcast or the reader's replies
}

var (
	mu    sync.Mutex
	conns = map[*conn]struct{}{}
	seq   uint64
)

// queue holds the frames waiting for the broadcaster (--mode coalesce); one
// broadcaster drains it, so frames leave in the order they were queued.
var (
	queue       = make(chan []byte, 4096)
	broadcaster sync.Once
)

// maxBatch bounds the frames one coalesced write carries.
const maxBatch = 64

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	mode := flag.String("mode", "direct", "direct: each post writes its frame to every connection; coalesce: one broadcaster writes every frame waiting to each connection in one write")
	flag.Parse()
	mux, err := newMux(*mode)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// newMux serves the protocol, and POST /post in the given mode (the coalesce mode
// starts the broadcaster).
func newMux(mode string) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /{$}", upgrade)
	switch mode {
	case "direct":
		mux.HandleFunc("POST /post", post)
	case "coalesce":
		mux.HandleFunc("POST /post", enqueue)
		broadcaster.Do(func() { go broadcast() })
	default:
		return nil, fmt.Errorf("--mode %q: want direct or coalesce", mode)
	}
	return mux, nil
}

// frame puts a server WebSocket header (unmasked text frame) in front of p.
func frame(p []byte) []byte {
	var h []byte
	switch n := len(p); {
	case n <= 125:
		h = []byte{0x81, byte(n)}
	case n <= 65535:
		h = []byte{0x81, 126, byte(n >> 8), byte(n)}
	default:
		h = make([]byte, 10)
		h[0], h[1] = 0x81, 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	return append(h, p...)
}

func (c *conn) write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.c.Write(b)
	return err
}

func upgrade(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "not a websocket", 400)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	nc, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
	_ = rw.Flush()
	c := &conn{c: nc}
	mu.Lock()
	conns[c] = struct{}{}
	mu.Unlock()
	go c.read(rw.Reader)
	_ = c.write(frame([]byte(`{"op":10,"d":{"heartbeat_interval":41250}}`)))
}

// read handles the client's frames: IDENTIFY gets READY, HEARTBEAT gets ACK.
func (c *conn) read(br *bufio.Reader) {
	defer func() {
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
		_ = c.c.Close()
	}()
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return
		}
		op := hdr[0] & 0x0F
		n := int(hdr[1] & 0x7F)
		masked := hdr[1]&0x80 != 0
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[2:4]); err != nil {
				return
			}
			n = int(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(br, hdr[2:10]); err != nil {
				return
			}
			n = int(binary.BigEndian.Uint64(hdr[2:10]))
		}
		if n > 1<<16 {
			return
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(br, mask[:]); err != nil {
				return
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if masked {
			for i := range p {
				p[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x8: // close
			return
		case 0x9: // ping
			_ = c.write(append([]byte{0x8A, byte(len(p))}, p...))
			continue
		case 0x1:
		default:
			continue
		}
		var m struct {
			Op int `json:"op"`
		}
		if json.Unmarshal(p, &m) != nil {
			return
		}
		switch m.Op {
		case 1:
			_ = c.write(frame([]byte(`{"op":11,"d":null}`)))
		case 2, 6:
			mu.Lock()
			s := seq
			mu.Unlock()
			t := "READY"
			d := fmt.Sprintf(`{"v":10,"session_id":"%p","user":{"id":"1","username":"ref"},"guilds":[]}`, c)
			if m.Op == 6 {
				t, d = "RESUMED", "null"
			}
			_ = c.write(frame([]byte(`{"op":0,"t":"` + t + `","s":` + strconv.FormatUint(s, 10) + `,"d":` + d + `}`)))
		}
	}
}

// post frames the body once and writes it to every connection.
func post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4000))
	if err != nil {
		return
	}
	mu.Lock()
	seq++
	s := seq
	all := make([]*conn, 0, len(conns))
	for c := range conns {
		all = append(all, c)
	}
	mu.Unlock()
	f := messageFrame(s, body)
	for _, c := range all {
		_ = c.write(f)
	}
	w.WriteHeader(200)
}

// messageFrame is a MESSAGE_CREATE of the same shape as Guildhall's, so the bytes
// per frame match.
func messageFrame(s uint64, body []byte) []byte {
	content, _ := json.Marshal(string(body))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	id := strconv.FormatUint(s, 10)
	return frame([]byte(`{"op":0,"t":"MESSAGE_CREATE","s":` + id + `,"d":{"id":"` + id + `","channel_id":"1","guild_id":"1","author":{"id":"1","username":"poster","discriminator":"0","global_name":null,"avatar":null,"bot":true},"content":` + string(content) + `,"timestamp":"` + now + `","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],"embeds":[],"pinned":false,"type":0}}`))
}

// enqueue frames the body and queues it for the broadcaster (--mode coalesce).
// The sequence is taken under the same lock as the queue slot, so frames leave in
// sequence order.
func enqueue(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4000))
	if err != nil {
		return
	}
	mu.Lock()
	seq++
	f := messageFrame(seq, body)
	select {
	case queue <- f:
		mu.Unlock()
		w.WriteHeader(200)
	default:
		seq--
		mu.Unlock()
		http.Error(w, "queue full", http.StatusServiceUnavailable)
	}
}

// broadcast writes the waiting frames to every connection, all of them in one
// write per connection.
func broadcast() {
	var batch []byte
	for f := range queue {
		batch = append(batch[:0], f...)
	more:
		for n := 1; n < maxBatch; n++ {
			select {
			case g := <-queue:
				batch = append(batch, g...)
			default:
				break more
			}
		}
		mu.Lock()
		all := make([]*conn, 0, len(conns))
		for c := range conns {
			all = append(all, c)
		}
		mu.Unlock()
		for _, c := range all {
			_ = c.write(batch)
		}
	}
}
