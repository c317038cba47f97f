package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// recorder is a wsHandler that keeps what it got.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
	ops    []byte
	closed chan error
	opened *wsConn
}

func newRecorder() *recorder { return &recorder{closed: make(chan error, 1)} }

func (r *recorder) onOpen(wc *wsConn) { r.mu.Lock(); r.opened = wc; r.mu.Unlock() }

func (r *recorder) onFrame(_ *wsConn, op byte, p []byte, _ int64) {
	r.mu.Lock()
	r.frames = append(r.frames, append([]byte(nil), p...))
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) onClose(_ *wsConn, err error) { r.closed <- err }

func (r *recorder) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames...)
}

// serverSide is a real gws server: on each text message from the client it runs
// the test's script against the connection.
type serverSide struct {
	gws.BuiltinEventHandler
	onMsg   func(c *gws.Conn, p []byte)
	onPong  chan []byte
	onClose chan error
	opened  chan *gws.Conn
}

func (s *serverSide) OnOpen(c *gws.Conn)             { s.opened <- c }
func (s *serverSide) OnPong(_ *gws.Conn, p []byte)   { s.onPong <- append([]byte(nil), p...) }
func (s *serverSide) OnClose(_ *gws.Conn, err error) { s.onClose <- err }
func (s *serverSide) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if s.onMsg != nil {
		s.onMsg(c, m.Bytes())
	}
}

func startGWS(t *testing.T, h *serverSide) string {
	t.Helper()
	up := gws.NewUpgrader(h, &gws.ServerOption{ReadMaxPayloadSize: 1 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "ws://" + ln.Addr().String() + "/?v=10"
}

func startPoller(t *testing.T) *poller {
	t.Helper()
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	go p.run()
	t.Cleanup(p.stop)
	return p
}

func within(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The client receives, in order and intact, frames of every length encoding,
// frames larger than the poller's shared buffer, and many frames written by the
// server in one go; it answers pings and sees the server's close code.
func TestWSClientAgainstGWS(t *testing.T) {
	got := make(chan []byte, 1)
	srv := &serverSide{onPong: make(chan []byte, 1), onClose: make(chan error, 1), opened: make(chan *gws.Conn, 1)}
	srv.onMsg = func(_ *gws.Conn, p []byte) { got <- append([]byte(nil), p...) }
	url := startGWS(t, srv)
	p := startPoller(t)
	rec := newRecorder()
	wc, err := dialWS(url, nil, 5*time.Second, p, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	opened := rec.opened
	rec.mu.Unlock()
	if opened != wc {
		t.Fatal("onOpen did not get the connection before dialWS returned")
	}
	sc := <-srv.opened

	// The client's text frames reach the server (masked, as the server requires).
	if err := wc.writeText([]byte(`{"op":1,"d":null}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != `{"op":1,"d":null}` {
			t.Fatalf("server got %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server got nothing")
	}

	sizes := []int{0, 1, 125, 126, 65535, 65536, 300 << 10, readBufSize + 1, 7, 2 << 20}
	var want [][]byte
	for i, n := range sizes {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		want = append(want, b)
		if err := sc.WriteMessage(gws.OpcodeText, b); err != nil {
			t.Fatal(err)
		}
	}
	// Two hundred small frames written at once arrive as a few reads.
	var batch [][]byte
	for i := range 200 {
		batch = append(batch, []byte(strings.Repeat("x", i%50)+"|"))
	}
	var all bytes.Buffer
	for _, b := range batch {
		all.Write([]byte{0x81, byte(len(b))})
		all.Write(b)
	}
	if _, err := sc.NetConn().Write(all.Bytes()); err != nil {
		t.Fatal(err)
	}
	want = append(want, batch...)
	within(t, 10*time.Second, "every frame", func() bool { return len(rec.got()) >= len(want) })
	frames := rec.got()
	if len(frames) != len(want) {
		t.Fatalf("got %d frames; want %d", len(frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(frames[i], want[i]) {
			t.Fatalf("frame %d: got %d bytes starting %q; want %d bytes starting %q", i, len(frames[i]), head(frames[i]), len(want[i]), head(want[i]))
		}
	}
	if r := p.reads.Load(); r >= int64(len(want)) {
		t.Errorf("%d reads for %d frames: frames written together were not read together", r, len(want))
	}

	if err := sc.WritePing([]byte("are you there")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-srv.onPong:
		if string(b) != "are you there" {
			t.Fatalf("pong %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}

	_ = sc.WriteClose(4008, []byte("Session start limit"))
	select {
	case err := <-rec.closed:
		var ce *closeError
		if !errors.As(err, &ce) || ce.Code != 4008 || ce.Reason != "Session start limit" {
			t.Fatalf("onClose(%v); want the server's close 4008", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onClose not called")
	}
	if err := wc.writeText([]byte("late")); !errors.Is(err, errConnClosed) {
		t.Fatalf("write after close = %v; want errConnClosed", err)
	}
}

// A connection ended from the client side (shutdown) reaches onClose once, and
// the server sees the connection go.
func TestWSClientShutdown(t *testing.T) {
	srv := &serverSide{onPong: make(chan []byte, 1), onClose: make(chan error, 1), opened: make(chan *gws.Conn, 1)}
	url := startGWS(t, srv)
	p := startPoller(t)
	rec := newRecorder()
	wc, err := dialWS(url, nil, 5*time.Second, p, rec)
	if err != nil {
		t.Fatal(err)
	}
	<-srv.opened
	wc.shutdown()
	select {
	case <-rec.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("onClose not called after shutdown")
	}
	select {
	case <-srv.onClose:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the connection close")
	}
	select {
	case err := <-rec.closed:
		t.Fatalf("onClose called twice (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
}

// A server that is not a WebSocket server is refused at the handshake.
func TestWSClientHandshakeRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusBadRequest) })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	p := startPoller(t)
	_, err = dialWS("ws://"+ln.Addr().String()+"/", nil, 5*time.Second, p, newRecorder())
	if err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("dialWS = %v; want a handshake error naming HTTP 400", err)
	}
}

func TestParseFrame(t *testing.T) {
	long := bytes.Repeat([]byte("y"), 300)
	frame := func(b0 byte, p []byte) []byte {
		switch n := len(p); {
		case n <= 125:
			return append([]byte{b0, byte(n)}, p...)
		default:
			return append([]byte{b0, 126, byte(n >> 8), byte(n)}, p...)
		}
	}
	tests := []struct {
		name    string
		in      []byte
		n       int
		payload string
		fin     bool
		op      byte
		err     bool
	}{
		{"empty", nil, 0, "", false, 0, false},
		{"one byte", []byte{0x81}, 0, "", false, 0, false},
		{"text", frame(0x81, []byte("hi")), 4, "hi", true, wsText, false},
		{"text, incomplete", frame(0x81, []byte("hi"))[:3], 0, "", false, 0, false},
		{"16-bit length", frame(0x81, long), 304, string(long), true, wsText, false},
		{"16-bit length, header cut", frame(0x81, long)[:3], 0, "", false, 0, false},
		{"fragment start", frame(0x01, []byte("ab")), 4, "ab", false, wsText, false},
		{"masked", []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}, 8, "hi", true, wsText, false},
		{"reserved bits", []byte{0xC1, 0}, 0, "", false, 0, true},
		{"long ping", frame(0x89, long), 0, "", false, 0, true},
		{"fragmented ping", []byte{0x09, 0}, 0, "", false, 0, true},
		{"huge", []byte{0x81, 127, 0, 0, 0, 0, 0x7f, 0, 0, 0}, 0, "", false, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, fin, p, n, err := parseFrame(append([]byte(nil), tc.in...))
			if (err != nil) != tc.err {
				t.Fatalf("parseFrame err = %v; want error %v", err, tc.err)
			}
			if n != tc.n || string(p) != tc.payload || (n > 0 && (fin != tc.fin || op != tc.op)) {
				t.Fatalf("parseFrame = op %d fin %v %q n %d; want op %d fin %v %q n %d", op, fin, p, n, tc.op, tc.fin, tc.payload, tc.n)
			}
		})
	}
}

// Fragments are put back together; a continuation without a start is an error.
func TestConsumeFragments(t *testing.T) {
	rec := newRecorder()
	wc := &wsConn{h: rec, fd: -1}
	in := []byte{0x01, 2, 'a', 'b', 0x00, 1, 'c', 0x80, 2, 'd', 'e', 0x81, 1, 'z', 0x81}
	rest, err := wc.consume(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "\x81" {
		t.Fatalf("rest %q; want the incomplete last frame", rest)
	}
	got := rec.got()
	if len(got) != 2 || string(got[0]) != "abcde" || string(got[1]) != "z" {
		t.Fatalf("frames %q; want abcde, z", got)
	}
	if _, err := wc.consume([]byte{0x80, 1, 'x'}, 0); err == nil {
		t.Fatal("a continuation with no message started was accepted")
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }
