package gateway

import (
	"bytes"
	"compress/zlib"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/lxzan/gws"
)

// Session is one client connection and, once identified, one gateway session.
//
// A frame for a session with nothing pending is written at once, without blocking,
// by whoever sends it (on the fan-out path the hub's pump): one system call and no
// goroutine, the common case. Otherwise (the socket's buffer is full, or frames are
// already waiting) it goes into a bounded outbox, and a writer goroutine, which
// exists only while the outbox has frames, takes everything pending and writes it
// with one writev, waiting for the socket as needed. An idle session costs no
// goroutine for writing and a busy one pays one system call for many frames. A
// session whose outbox reaches its bound is a slow consumer: it is closed with 4000
// and may resume, replaying from the stream what it missed.
//
// All writes to the socket go through send (pongs and close frames too), under the
// session's mutex while no writer runs, or by the writer: never two at once.
type Session struct {
	gw      *Gateway
	conn    *gws.Conn
	netConn net.Conn
	// raw reaches the socket for direct writes; nil when the connection is not a
	// plain socket (TLS, a pipe in tests), and then every frame goes through the
	// writer.
	raw  syscall.RawConn
	zlib bool // transport compression: compress=zlib-stream
	// payloadZlib: IDENTIFY asked for compress: true; each dispatch then goes as
	// its own zlib stream in a binary frame. Set before the session joins rooms.
	payloadZlib atomic.Bool

	resumeURL   string
	badVersion  bool
	badEncoding bool

	// Set once by identify or resume (before the session joins any room).
	id         string
	user       guildhall.User
	intents    guildhall.Intents // what the session receives (dispatch.frameFor)
	identified atomic.Bool
	resumable  atomic.Bool

	// Owned by the hub's pump goroutine.
	guilds map[guildhall.Snowflake]*membership

	mu      sync.Mutex
	queue   []*frame
	held    []*frame // frames held back while a resume replays the stream
	holding bool
	writing bool
	closed  bool
	// partial is what a direct write left unwritten of its frame (the socket
	// buffer filled up); the writer sends it before anything queued.
	partial []byte
	// A direct write's argument and results, and the function that does it,
	// made once: a closure made per write would allocate on the fan-out path.
	direct      []byte
	directN     int
	directErr   error
	directWrite func(fd uintptr) bool
	// zlib-stream state, used by the writer only.
	zbuf bytes.Buffer
	zw   *zlib.Writer
	// deadlineRefresh: when the writer next moves the write deadline (writer only).
	deadlineRefresh time.Time
	// startWriter is s.writeLoop as a func value made once: `go s.writeLoop()` would
	// allocate a closure for every frame that wakes an idle writer.
	startWriter func()
}

// membership is what the pump knows of a session's place in one guild.
type membership struct {
	roles   []guildhall.Snowflake
	roleKey string // the sorted role ids: sessions with equal keys see the same channels
	index   int    // position in room.members
}

func newSession(gw *Gateway, conn *gws.Conn, netConn net.Conn, zlibStream bool) *Session {
	s := &Session{gw: gw, conn: conn, netConn: netConn, zlib: zlibStream}
	if sc, ok := s.netConn.(syscall.Conn); ok && !gw.cfg.NoDirectWrites {
		s.raw, _ = sc.SyscallConn()
		s.directWrite = func(fd uintptr) bool {
			s.directN, s.directErr = syscall.Write(int(fd), s.direct)
			return true // never wait for the socket here: the writer does that
		}
	}
	s.startWriter = s.writeLoop
	return s
}

// send queues a frame. It never blocks: a full outbox cuts the session off.
func (s *Session) send(f *frame) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.holding {
		if len(s.held) >= s.gw.cfg.MaxOutbox {
			s.cutOffLocked()
			s.mu.Unlock()
			return
		}
		s.held = append(s.held, f)
		s.mu.Unlock()
		return
	}
	s.pushLocked(f)
	s.mu.Unlock()
}

// sendDirect queues a frame even while the session holds live frames back (the
// frames of a resume replay).
func (s *Session) sendDirect(f *frame) {
	s.mu.Lock()
	if !s.closed {
		s.pushLocked(f)
	}
	s.mu.Unlock()
}

func (s *Session) pushLocked(f *frame) {
	if len(s.queue) >= s.gw.cfg.MaxOutbox {
		s.cutOffLocked()
		return
	}
	if !s.writing && s.raw != nil && !f.closeAfter && s.sendsShared(f) {
		// Nothing is pending: write from here, without waking a writer
		// goroutine. This is the fan-out's common case, and what makes a
		// frame to a room cost one system call per member and nothing else.
		rest, err := s.writeNow(f.wire)
		if err != nil {
			s.dropLocked()
			return
		}
		metricFramesWritten.Inc()
		if rest == nil {
			return
		}
		s.partial = rest
		s.writing = true
		go s.startWriter()
		return
	}
	s.queue = append(s.queue, f)
	if f.closeAfter {
		s.closed = true
	}
	if !s.writing {
		s.writing = true
		go s.startWriter()
	}
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// hold makes live frames wait (a resume is replaying); release lets them go after
// what the replay queued.
func (s *Session) hold() {
	s.mu.Lock()
	s.holding = true
	s.mu.Unlock()
}

func (s *Session) release() {
	s.mu.Lock()
	s.holding = false
	held := s.held
	s.held = nil
	for _, f := range held {
		if s.closed {
			break
		}
		s.pushLocked(f)
	}
	s.mu.Unlock()
}

// cutOffLocked drops what is pending and closes the connection: the client is not
// reading fast enough. Closing the socket also unblocks a writer stuck in write.
func (s *Session) cutOffLocked() {
	metricSlowConsumers.Inc()
	s.dropLocked()
}

// dropLocked closes the connection and forgets what was pending for it.
func (s *Session) dropLocked() {
	s.closed = true
	s.queue = nil
	s.held = nil
	_ = s.netConn.Close()
}

// close queues a close frame with code; the connection closes once it is written.
func (s *Session) close(code int, reason string) {
	s.sendDirect(closeFrame(code, reason))
}

// writeNow writes b to the socket without blocking and returns what did not fit
// in the socket's buffer (nil when all of it did). s.mu is held.
func (s *Session) writeNow(b []byte) ([]byte, error) {
	s.direct = b
	err := s.raw.Write(s.directWrite)
	n, werr := s.directN, s.directErr
	s.direct, s.directErr = nil, nil
	switch {
	case err != nil:
		return nil, err
	case werr == syscall.EAGAIN || werr == syscall.EINTR:
		return b, nil
	case werr != nil:
		return nil, werr
	case n < len(b):
		return b[n:], nil
	}
	return nil, nil
}

const writeBatch = 64

// writeScratch is a writer's working space. It is pooled rather than kept on the
// writer's stack: a writer goroutine exists only while its outbox has frames, so
// arrays on its stack would make nearly every new writer grow (copy) its stack, and
// on the heap per write they would be garbage on the fan-out path.
type writeScratch struct {
	frames [writeBatch]*frame
	bufs   [writeBatch][]byte
	nb     net.Buffers
}

var writeScratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

func (s *Session) writeLoop() {
	sc := writeScratchPool.Get().(*writeScratch)
	defer writeScratchPool.Put(sc)
	for {
		s.mu.Lock()
		k := 0 // leading buffers that are not queued frames: a direct write's rest
		if s.partial != nil {
			sc.bufs[0], s.partial = s.partial, nil
			k = 1
		}
		n := copy(sc.frames[:writeBatch-k], s.queue)
		if n+k == 0 {
			s.writing = false
			s.queue = s.queue[:0]
			s.mu.Unlock()
			return
		}
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()

		closeAfter := false
		for i := 0; i < n; i++ {
			sc.bufs[k+i] = s.wireBytes(sc.frames[i])
			closeAfter = closeAfter || sc.frames[i].closeAfter
			sc.frames[i] = nil
		}
		metricFramesWritten.Add(float64(n))
		n += k
		// Move the deadline only when less than half of WriteTimeout is left: a
		// write still gets at least WriteTimeout/2, and a busy session does not
		// re-arm the runtime's timer on every write.
		if now := time.Now(); now.After(s.deadlineRefresh) {
			_ = s.netConn.SetWriteDeadline(now.Add(s.gw.cfg.WriteTimeout))
			s.deadlineRefresh = now.Add(s.gw.cfg.WriteTimeout / 2)
		}
		var err error
		if n == 1 {
			_, err = s.netConn.Write(sc.bufs[0])
		} else {
			sc.nb = sc.bufs[:n]
			_, err = sc.nb.WriteTo(s.netConn)
			sc.nb = nil
		}
		clear(sc.bufs[:n])
		if err != nil || closeAfter {
			s.mu.Lock()
			s.writing = false
			s.dropLocked()
			s.mu.Unlock()
			return
		}
	}
}

// sendsShared reports whether the session sends f's shared bytes as they are
// (no compression applies to it).
func (s *Session) sendsShared(f *frame) bool {
	if f.wire[0]&0x0F != wsOpText || !(s.zlib || s.payloadZlib.Load()) {
		return true
	}
	// Payload compression applies to dispatches (op 0) only, as on Discord.
	return !s.zlib && !isDispatch(f.payload)
}

func isDispatch(payload []byte) bool { return bytes.HasPrefix(payload, []byte(`{"op":0,`)) }

// wireBytes is what to write for f: the shared frame, or for zlib-stream sessions its
// payload through the session's compressor as a binary frame, or for sessions that
// asked for payload compression each dispatch as its own zlib stream (control frames
// are never compressed).
func (s *Session) wireBytes(f *frame) []byte {
	if s.sendsShared(f) {
		return f.wire
	}
	if !s.zlib {
		var b bytes.Buffer
		zw := zlib.NewWriter(&b)
		_, _ = zw.Write(f.payload)
		_ = zw.Close()
		out := frameBuf(b.Len())
		out = append(out, b.Bytes()...)
		return finishFrame(out, wsOpBin).wire
	}
	s.zbuf.Reset()
	if s.zw == nil {
		s.zw = zlib.NewWriter(&s.zbuf)
	}
	_, _ = s.zw.Write(f.payload)
	_ = s.zw.Flush() // Z_SYNC_FLUSH: the frame ends with 00 00 ff ff, as Discord's does
	b := frameBuf(s.zbuf.Len())
	b = append(b, s.zbuf.Bytes()...)
	return finishFrame(b, wsOpBin).wire
}
