package gateway

import (
	"bytes"
	"compress/zlib"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildhall/guildhall/gateway/etf"
	"github.com/klauspost/compress/zstd"
)

// captureConn keeps what is written to it.
type captureConn struct {
	sinkConn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func newCaptureConn() captureConn {
	return captureConn{sinkConn: sinkConn{writes: new(atomic.Int64)}, mu: new(sync.Mutex), buf: new(bytes.Buffer)}
}

func (c captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes.Add(1)
	return c.buf.Write(b)
}

func (c captureConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// The fan-out encodes an event once per encoding and payload compression in
// use: JSON sessions get the shared JSON frame, ETF sessions the shared ETF
// frame, sessions with payload compression the shared compressed frame, each
// variant built by the first of its recipients, whatever their number.
func TestDispatchVariantsShared(t *testing.T) {
	ev := benchEvent()
	conns := make([]net.Conn, 9)
	capt := make([]captureConn, len(conns))
	for i := range conns {
		capt[i] = newCaptureConn()
		conns[i] = capt[i]
	}
	isETF := func(i int) bool { return i%3 == 1 }
	isZlib := func(i int) bool { return i%3 == 2 }
	p, r := benchRoomFormats(conns, Config{}, func(i int) wireFormat { return wireFormat{etf: isETF(i)} })
	for _, rm := range r.members {
		i := int(rm.s.user.ID) - 10
		rm.s.out.compressPayloads(isZlib(i))
	}
	d := newDispatch(ev, 7)
	p.deliverNow(r, ev, d)
	for _, c := range capt {
		waitFor(c.writes, 1)
	}
	e := d.full.etf.Load()
	if e == nil || e == noETF {
		t.Fatal("no ETF variant was built for the ETF sessions")
	}
	j, err := etf.Decode(e.payload)
	if err != nil || !bytes.Contains(j, []byte(`"t":"MESSAGE_CREATE"`)) || !bytes.Contains(j, []byte(`the quick brown fox`)) {
		t.Fatalf("the ETF variant reads %s, %v", j, err)
	}
	z := d.full.zlib.Load()
	if z == nil {
		t.Fatal("no compressed variant was built for the sessions with payload compression")
	}
	zr, err := zlib.NewReader(bytes.NewReader(z.payload))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, d.full.payload) {
		t.Fatalf("the compressed variant inflates to %q, %v", plain, err)
	}
	for i, c := range capt {
		want := d.full.wire
		switch {
		case isETF(i):
			want = e.wire
		case isZlib(i):
			want = z.wire
		}
		if got := c.bytes(); !bytes.Equal(got, want) {
			t.Errorf("session %d (etf %v, zlib %v) got %d bytes; want the shared %d-byte frame", i, isETF(i), isZlib(i), len(got), len(want))
		}
	}

	// Allocations per event do not grow with the ETF sessions: one conversion.
	allocs := func(n int) float64 {
		conns := make([]net.Conn, n)
		var writes atomic.Int64
		for i := range conns {
			conns[i] = sinkConn{writes: &writes}
		}
		p, r := benchRoomFormats(conns, Config{}, func(int) wireFormat { return wireFormat{etf: true} })
		var want int64
		return testing.AllocsPerRun(20, func() {
			d := newDispatch(ev, 7)
			p.deliverNow(r, ev, d)
			want += int64(n)
			waitFor(&writes, want)
		})
	}
	few, many := allocs(10), allocs(200)
	t.Logf("allocations per event: %v to 10 ETF sessions, %v to 200", few, many)
	// One conversion is about 300 allocations; writers woken under load allocate
	// now and then (pools refilled after a GC). Less than one allocation per extra
	// session is one conversion per event, not per session.
	if many-few >= 200-10 {
		t.Errorf("allocations per event: %v to 10 ETF sessions, %v to 200; want about the same", few, many)
	}
}

// zstd-stream: each payload is one message a client decompresses at once with
// the connection's one decoder, whatever came before, across the frame ends of
// idle periods (park).
func TestZstdStreamMessages(t *testing.T) {
	z := new(zstdStream)
	pr, pw := io.Pipe()
	dec, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, payload := range []string{`{"op":10,"d":{"heartbeat_interval":41250}}`, `{"op":11,"d":null}`, string(bytes.Repeat([]byte(`{"op":0,"t":"X","d":"abc"}`), 200)),
		`{"op":11,"d":null}`, `{"op":0,"t":"Y","d":"after a park"}`, `{"op":0,"t":"Y","d":"and another"}`, `{"op":0,"t":"Y","d":"one more"}`} {
		if i >= 3 && i%2 == 1 {
			z.park() // the connection was idle
			if z.w != nil || z.buf.Cap() != 0 {
				t.Fatal("a parked stream keeps its encoder or buffer")
			}
		}
		msg := bytes.Clone(z.compress([]byte(payload)))
		go func() { _, _ = pw.Write(msg) }()
		got := make([]byte, len(payload))
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(dec, got); done <- err }()
		select {
		case err := <-done:
			if err != nil || string(got) != payload {
				t.Fatalf("message %d decompressed to %q, %v; want %q", i, got, err, payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d: the decoder did not produce it from its own bytes", i)
		}
	}
}

// zlib-stream: one zlib stream for the connection's life, each message
// inflated at once by the client's one inflater from its own bytes, across the
// compressors given back while the connection was idle (park).
func TestZlibStreamMessages(t *testing.T) {
	z := new(zlibStream)
	pr, pw := io.Pipe()
	var inflater io.Reader
	for i, payload := range []string{`{"op":10,"d":{"heartbeat_interval":41250}}`, `{"op":11,"d":null}`, string(bytes.Repeat([]byte(`{"op":0,"t":"X","d":"abc"}`), 200)),
		`{"op":11,"d":null}`, `{"op":0,"t":"Y","d":"after a park"}`, `{"op":0,"t":"Y","d":"and another"}`, `{"op":0,"t":"Y","d":"one more"}`} {
		if i >= 3 && i%2 == 1 {
			z.park() // the connection was idle
			if z.w != nil || z.buf.Cap() != 0 {
				t.Fatal("a parked stream keeps its compressor or buffer")
			}
		}
		msg := bytes.Clone(z.compress([]byte(payload)))
		if !bytes.HasSuffix(msg, []byte{0, 0, 0xff, 0xff}) {
			t.Fatalf("message %d does not end with a sync flush: % x", i, msg[max(0, len(msg)-4):])
		}
		go func() { _, _ = pw.Write(msg) }()
		got := make([]byte, len(payload))
		done := make(chan error, 1)
		go func() {
			if inflater == nil { // reads the header: the first message must be there
				zr, err := zlib.NewReader(pr)
				if err != nil {
					done <- err
					return
				}
				inflater = zr
			}
			_, err := io.ReadFull(inflater, got)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil || string(got) != payload {
				t.Fatalf("message %d inflated to %q, %v; want %q", i, got, err, payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d: the inflater did not produce it from its own bytes", i)
		}
	}
}

// BenchmarkIdleSessionMemory: the heap a session's outbox holds once HELLO has
// gone out, by transport compression, right after (active) and once idle: zlib
// and zstd give their compressor back to the pool after streamIdleAfter.
// Reported as bytes/session;
//
//	go test -run '^$' -bench IdleSessionMemory -benchtime 1x ./gateway/
func BenchmarkIdleSessionMemory(b *testing.B) {
	defer func(d time.Duration) { streamIdleAfter = d }(streamIdleAfter)
	for _, c := range []struct {
		name string
		t    transport
		idle time.Duration
	}{{"none", transportNone, 0}, {"zlib-stream/active", transportZlib, 0}, {"zlib-stream/idle", transportZlib, time.Second},
		{"zstd-stream/active", transportZstd, 0}, {"zstd-stream/idle", transportZstd, time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			streamIdleAfter = time.Hour // active: nobody is parked while measured
			if c.idle > 0 {
				streamIdleAfter = c.idle / 10
			}
			const n = 2000
			hello := opFrame(OpHello, []byte(`{"heartbeat_interval":41250}`))
			var writes atomic.Int64
			var before, after runtimeMem
			before.read()
			sessions := make([]*Session, n)
			for i := range sessions {
				sessions[i] = newSession(sinkConn{writes: &writes}, wireFormat{transport: c.t}, Config{}.withDefaults().outbox())
				sessions[i].send(hello)
			}
			waitFor(&writes, n)
			for _, s := range sessions { // every writer has gone idle
				for s.out.pending() > 0 || s.out.isWriting() {
					time.Sleep(time.Millisecond)
				}
			}
			if c.idle > 0 {
				time.Sleep(c.idle)
				// What the pools keep is not the sessions'.
				zstdEncoders = sync.Pool{New: zstdEncoders.New}
				zlibCompressors = sync.Pool{New: zlibCompressors.New}
			}
			after.read()
			b.ReportMetric(float64(after.heap-before.heap)/n, "bytes/session")
			runtimeKeepAlive(sessions)
		})
	}
}

type runtimeMem struct{ heap uint64 }

func (m *runtimeMem) read() {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap = ms.HeapAlloc
}

func runtimeKeepAlive(v any) { runtime.KeepAlive(v) }

// isWriting reports whether a writer goroutine runs.
func (o *outbox) isWriting() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writing
}
