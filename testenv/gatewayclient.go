package testenv

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway/etf"
	"github.com/klauspost/compress/zstd"
	"github.com/lxzan/gws"
)

// Payload is one gateway payload as a client receives it.
type Payload struct {
	Op int             `json:"op"`
	T  string          `json:"t"`
	S  *uint64         `json:"s"`
	D  json.RawMessage `json:"d"`
}

// Seq is the payload's s, or 0.
func (p Payload) Seq() uint64 {
	if p.S == nil {
		return 0
	}
	return *p.S
}

// GatewayClient is a real WebSocket client of the gateway for tests: it records every
// payload it receives, in order, and the close code if the server closes.
type GatewayClient struct {
	gws.BuiltinEventHandler
	t    testing.TB
	conn *gws.Conn

	// zlib-stream and zstd-stream transport compression: compressed bytes go
	// into zw, a goroutine decodes the JSON values coming out of the shared
	// decompressor.
	zw *io.PipeWriter
	// etf: encoding=etf; payloads both ways are ETF terms (package etf).
	etf bool

	mu        sync.Mutex
	cond      *sync.Cond
	payloads  []Payload
	next      int
	closed    bool
	closeCode int
}

// DialGateway connects to a gateway URL such as ws://127.0.0.1:8080/?v=10&encoding=json.
func DialGateway(t testing.TB, url string) *GatewayClient {
	t.Helper()
	c, err := TryDialGateway(t, url)
	if err != nil {
		t.Fatalf("dial gateway %s: %v", url, err)
	}
	return c
}

// TryDialGateway is DialGateway returning the error instead of failing.
func TryDialGateway(t testing.TB, url string) (*GatewayClient, error) { return tryDial(t, url, nil) }

func tryDial(t testing.TB, url string, zw *io.PipeWriter) (*GatewayClient, error) {
	c := &GatewayClient{t: t, zw: zw}
	c.cond = sync.NewCond(&c.mu)
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, ReadMaxPayloadSize: 16 << 20, HandshakeTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	c.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { _ = conn.NetConn().Close() })
	return c, nil
}

// DialGatewayZlibStream connects with compress=zlib-stream appended to url and
// inflates the binary frames as one zlib stream, as Discord's clients do.
func DialGatewayZlibStream(t testing.TB, url string) *GatewayClient {
	t.Helper()
	pr, pw := io.Pipe()
	c, err := tryDial(t, url+"&compress=zlib-stream", pw)
	if err != nil {
		t.Fatalf("dial gateway: %v", err)
	}
	go func() {
		zr, err := zlib.NewReader(pr)
		if err != nil {
			return
		}
		dec := json.NewDecoder(zr)
		for {
			var p Payload
			if err := dec.Decode(&p); err != nil {
				return
			}
			c.add(p)
		}
	}()
	t.Cleanup(func() { pw.Close() })
	return c
}

// DialGatewayZstdStream connects with compress=zstd-stream appended to url and
// decompresses the binary frames as one zstd stream, as Discord's documentation
// describes: each message is one payload, flushed, in a frame that never ends.
func DialGatewayZstdStream(t testing.TB, url string) *GatewayClient {
	t.Helper()
	pr, pw := io.Pipe()
	c, err := tryDial(t, url+"&compress=zstd-stream", pw)
	if err != nil {
		t.Fatalf("dial gateway: %v", err)
	}
	go func() {
		zr, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return
		}
		defer zr.Close()
		dec := json.NewDecoder(zr)
		for {
			var p Payload
			if err := dec.Decode(&p); err != nil {
				return
			}
			c.add(p)
		}
	}()
	t.Cleanup(func() { pw.Close() })
	return c
}

// DialGatewayETF connects to url, whose query must say encoding=etf: every
// payload it receives must be a binary frame holding an ETF term, and what it
// sends goes as ETF with string keys, as erlpack writes it.
func DialGatewayETF(t testing.TB, url string) *GatewayClient {
	t.Helper()
	c := &GatewayClient{t: t, etf: true}
	c.cond = sync.NewCond(&c.mu)
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, ReadMaxPayloadSize: 16 << 20, HandshakeTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("dial gateway %s: %v", url, err)
	}
	c.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { _ = conn.NetConn().Close() })
	return c
}

func (c *GatewayClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if m.Opcode == gws.OpcodeBinary && c.zw != nil {
		_, _ = c.zw.Write(m.Bytes())
		return
	}
	b := m.Bytes()
	if c.etf {
		j, err := etf.Decode(b)
		if m.Opcode != gws.OpcodeBinary {
			err = fmt.Errorf("a text frame on an etf connection: %q", b)
		}
		if err != nil {
			c.add(Payload{Op: -1, D: json.RawMessage(fmt.Sprintf("%q", err.Error()))})
			return
		}
		b = j
	} else if m.Opcode == gws.OpcodeBinary {
		// Payload compression (IDENTIFY compress: true): each frame is a whole zlib stream.
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err == nil {
			b, err = io.ReadAll(zr)
		}
		if err != nil {
			c.add(Payload{Op: -1, D: json.RawMessage(fmt.Sprintf("%q", err.Error()))})
			return
		}
	}
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		p = Payload{Op: -1, D: json.RawMessage(fmt.Sprintf("%q", b))}
	}
	c.add(p)
}

func (c *GatewayClient) add(p Payload) {
	c.mu.Lock()
	c.payloads = append(c.payloads, p)
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *GatewayClient) OnClose(_ *gws.Conn, err error) {
	c.mu.Lock()
	c.closed = true
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		c.closeCode = int(ce.Code)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Send writes {"op": op, "d": d} (as an ETF term on an etf connection).
func (c *GatewayClient) Send(op int, d any) error {
	b, err := json.Marshal(map[string]any{"op": op, "d": d})
	if err != nil {
		return err
	}
	if c.etf {
		if b, err = etf.EncodeStringKeys(nil, b); err != nil {
			return err
		}
		return c.conn.WriteMessage(gws.OpcodeBinary, b)
	}
	return c.conn.WriteMessage(gws.OpcodeText, b)
}

// SendBinary writes bytes as one binary frame.
func (c *GatewayClient) SendBinary(b []byte) error { return c.conn.WriteMessage(gws.OpcodeBinary, b) }

// SendRaw writes bytes as one text frame.
func (c *GatewayClient) SendRaw(b []byte) error { return c.conn.WriteMessage(gws.OpcodeText, b) }

// Identify sends IDENTIFY with every intent (privileged ones included, so tests see
// every event) and waits for READY.
func (c *GatewayClient) Identify(token string) Payload {
	c.t.Helper()
	return c.IdentifyWithIntents(token, int64(guildhall.IntentsAll))
}

// IdentifyWithIntents sends IDENTIFY with intents and waits for READY.
func (c *GatewayClient) IdentifyWithIntents(token string, intents int64) Payload {
	c.t.Helper()
	if err := c.SendIdentify(token, intents); err != nil {
		c.t.Fatalf("identify: %v", err)
	}
	return c.WaitFor(c.t, "READY", 15*time.Second)
}

// SendIdentify sends IDENTIFY with intents and does not wait (for refused ones).
func (c *GatewayClient) SendIdentify(token string, intents int64) error {
	return c.Send(2, map[string]any{"token": token, "intents": intents, "properties": map[string]string{"os": "linux", "browser": "testenv", "device": "testenv"}})
}

// Resume sends RESUME.
func (c *GatewayClient) Resume(token, sessionID string, seq uint64) error {
	return c.Send(6, map[string]any{"token": token, "session_id": sessionID, "seq": seq})
}

// Next returns the next payload not yet taken, waiting up to timeout.
func (c *GatewayClient) Next(timeout time.Duration) (Payload, error) {
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.next >= len(c.payloads) {
		if c.closed {
			return Payload{}, fmt.Errorf("connection closed (code %d)", c.closeCode)
		}
		if time.Now().After(deadline) {
			return Payload{}, errors.New("timeout waiting for a payload")
		}
		c.waitLocked(time.Until(deadline))
	}
	p := c.payloads[c.next]
	c.next++
	return p, nil
}

// WaitFor skips payloads until a dispatch named t (or, for "HELLO" and the like, an
// op given as "op:N") arrives, and returns it.
func (c *GatewayClient) WaitFor(t testing.TB, name string, timeout time.Duration) Payload {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
		if p.T == name || fmt.Sprintf("op:%d", p.Op) == name {
			return p
		}
	}
}

// Dispatches returns every dispatch named name received so far.
func (c *GatewayClient) Dispatches(name string) []Payload {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Payload
	for _, p := range c.payloads {
		if p.Op == 0 && p.T == name {
			out = append(out, p)
		}
	}
	return out
}

// All returns every payload received so far.
func (c *GatewayClient) All() []Payload {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Payload(nil), c.payloads...)
}

// LastSeq is the highest s received so far.
func (c *GatewayClient) LastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s uint64
	for _, p := range c.payloads {
		s = max(s, p.Seq())
	}
	return s
}

// WaitClose waits until the server closes the connection and returns its close code
// (0 if none was given).
func (c *GatewayClient) WaitClose(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed {
		if time.Now().After(deadline) {
			return 0, errors.New("timeout waiting for close")
		}
		c.waitLocked(time.Until(deadline))
	}
	return c.closeCode, nil
}

// Closed reports whether the connection has closed.
func (c *GatewayClient) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the connection with a WebSocket close code.
func (c *GatewayClient) Close(code uint16) { _ = c.conn.WriteClose(code, nil) }

// Drop cuts the TCP connection without a close frame, as a crash would.
func (c *GatewayClient) Drop() { _ = c.conn.NetConn().Close() }

func (c *GatewayClient) waitLocked(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	c.cond.Wait()
	t.Stop()
}
