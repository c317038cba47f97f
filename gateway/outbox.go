package gateway

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// outbox is the write path of one connection: every frame to the client goes
// through it (dispatches, pongs, close frames), and nothing else writes to the
// socket.
//
// A frame for an outbox with nothing pending is written at once, without
// blocking, by whoever sends it (on the fan-out path the pump): one system call
// and no goroutine, the common case. Otherwise (the socket's buffer is full, or
// frames are already waiting) it is queued, and a writer goroutine, which exists
// only while frames wait, takes everything pending and writes it with one writev,
// waiting for the socket as needed. An idle connection costs no goroutine for
// writing and a busy one pays one system call for many frames. Under load the
// pump hands an outbox several frames at once (sendFrames: the session's frames
// of a batch of events), which leave with one writev when nothing is pending. An
// outbox whose queue reaches its bound belongs to a slow consumer: the
// connection is closed (the client may resume, replaying from the stream what it
// missed).
//
// Live frames can be held back (hold): while a resume replays, the replay's own
// frames pass them (sendUnheld); while one of the session's rooms waits for events
// NATS lost, the refilled events join them. Held frames are kept in s order, so a
// refilled event goes out before any later event of another room, and release
// sends them once every hold is released.
//
// All writes happen under mu while no writer runs, or by the writer: never two at
// once.
type outbox struct {
	conn net.Conn
	// raw reaches the socket for direct writes; nil when the connection is not a
	// plain socket (TLS, a pipe in tests) or direct writes are off, and then every
	// frame goes through the writer.
	raw    syscall.RawConn
	cfg    outboxConfig
	format wireFormat // the connection's encoding and transport compression
	// payloadZlib: IDENTIFY asked for compress: true; each dispatch then goes as
	// its own zlib stream in a binary frame. Set before the session joins rooms.
	payloadZlib atomic.Bool

	mu      sync.Mutex
	queue   []*frame
	held    []*frame // live frames held back, in s order (stable)
	holds   int      // hold calls not yet released
	writing bool     // a writer goroutine runs
	closed  bool
	// partial is what a direct write left unwritten of its frame (the socket
	// buffer filled up); the writer sends it before anything queued.
	partial []byte
	// left is closed when frames leave the outbox (and the outbox is closed):
	// waitBelow waits on it. Made by a waiter, nil when nobody waits.
	left chan struct{}
	// A direct write's argument and results, and the function that does it,
	// made once: a closure made per write would allocate on the fan-out path.
	direct      []byte
	directIov   []syscall.Iovec // a direct writev's buffers (sendFrames)
	directN     int
	directErr   error
	directWrite func(fd uintptr) bool
	directVec   func(fd uintptr) bool
	// startWriter is o.writeLoop as a func value made once: `go o.writeLoop()`
	// would allocate a closure for every frame that wakes an idle writer.
	startWriter func()

	// Used by the writer only, or under mu while no writer runs.
	stream streamCompressor // transport compression; nil without
	// parkTimer parks an idle connection's stream compressor (parker); made by
	// the first writer that leaves, reset by each one after.
	parkTimer *time.Timer
	// deadlineRefresh: when the writer next moves the write deadline.
	deadlineRefresh time.Time
}

// outboxConfig is an outbox's bounds and switches (from Config).
type outboxConfig struct {
	maxFrames    int           // Config.MaxOutbox
	writeTimeout time.Duration // Config.WriteTimeout
	noDirect     bool          // Config.NoDirectWrites
	metrics      *Metrics      // frames written, slow consumers
}

func newOutbox(conn net.Conn, format wireFormat, cfg outboxConfig) *outbox {
	o := new(outbox)
	o.init(conn, format, cfg)
	return o
}

// init readies a zero outbox in place (a Session holds its outbox by value: one
// allocation, and no pointer to chase per recipient on the fan-out path). An
// outbox must not be copied once in use.
func (o *outbox) init(conn net.Conn, format wireFormat, cfg outboxConfig) {
	o.conn, o.format, o.cfg = conn, format, cfg
	o.stream = newStreamCompressor(format.transport)
	if sc, ok := conn.(syscall.Conn); ok && !cfg.noDirect {
		o.raw, _ = sc.SyscallConn()
		o.directWrite = func(fd uintptr) bool {
			o.directN, o.directErr = syscall.Write(int(fd), o.direct)
			return true // never wait for the socket here: the writer does that
		}
		o.directVec = func(fd uintptr) bool {
			o.directN, o.directErr = writev(fd, o.directIov)
			return true
		}
	}
	o.startWriter = o.writeLoop
}

// compressPayloads turns payload compression on (IDENTIFY's compress: true),
// unless the connection compresses its whole stream already or speaks ETF
// (Discord compresses payloads only with JSON).
func (o *outbox) compressPayloads(on bool) {
	o.payloadZlib.Store(on && o.format.transport == transportNone && !o.format.etf)
}

// send queues a frame. It never blocks: a full outbox cuts the connection off.
// While the outbox holds, the frame waits for release.
func (o *outbox) send(f *frame) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if o.holds > 0 {
		if len(o.held) >= o.cfg.maxFrames {
			o.cutOffLocked()
			o.mu.Unlock()
			return
		}
		o.insertHeldLocked(f)
		o.mu.Unlock()
		return
	}
	o.pushLocked(f)
	o.mu.Unlock()
}

// sendUnheld queues a frame even while the outbox holds live frames back (the
// frames of a resume replay, RESUMED, a close frame).
func (o *outbox) sendUnheld(f *frame) {
	o.mu.Lock()
	if !o.closed {
		o.pushLocked(f)
	}
	o.mu.Unlock()
}

// sendFrames queues several frames in order, as send would one by one, but
// writes them with one writev when nothing is pending: the fan-out of a batch
// of events (batch.go). sc is the caller's working space. It never blocks: the
// part the socket does not take goes to the writer, and a session whose frames
// would pass the bound is cut off.
func (o *outbox) sendFrames(frames []*frame, sc *batchScratch) {
	if len(frames) == 1 {
		o.send(frames[0])
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.closed || len(frames) == 0:
		return
	case o.holds > 0:
		if len(o.held)+len(frames) > o.cfg.maxFrames {
			o.cutOffLocked()
			return
		}
		for _, f := range frames {
			o.insertHeldLocked(f)
		}
		return
	}
	// The connection's variants, in place: frames is the caller's scratch.
	kept := frames[:0]
	for _, f := range frames {
		if f = o.variant(f); f != nil {
			kept = append(kept, f)
		}
	}
	clear(frames[len(kept):])
	if frames = kept; len(frames) == 0 {
		return
	}
	if !o.writing && o.raw != nil && o.allShared(frames) {
		n, err := o.writevNow(frames, sc)
		if err != nil {
			o.dropLocked()
			return
		}
		// Frames started on the socket count as written; the writer finishes a
		// partial one (o.partial) before anything queued.
		done := 0
		for done < len(frames) && n >= len(frames[done].wire) {
			n -= len(frames[done].wire)
			done++
		}
		if done < len(frames) && n > 0 {
			o.partial = frames[done].wire[n:]
			done++
		}
		if done > 0 {
			o.cfg.metrics.FramesWritten.Add(float64(done))
			o.cfg.metrics.SocketWrites.Inc()
		}
		frames = frames[done:]
		if len(frames) == 0 && o.partial == nil {
			return
		}
	}
	if len(o.queue)+len(frames) > o.cfg.maxFrames {
		o.cutOffLocked()
		return
	}
	o.queue = append(o.queue, frames...)
	for _, f := range frames {
		o.closed = o.closed || f.closeAfter // as pushLocked: nothing after a close frame
	}
	if !o.writing {
		o.writing = true
		go o.startWriter()
	}
}

// allShared reports whether every frame goes out as its shared bytes (nothing
// to compress, nothing that closes the connection).
func (o *outbox) allShared(frames []*frame) bool {
	for _, f := range frames {
		if f.closeAfter || !o.sendsShared(f) {
			return false
		}
	}
	return true
}

// writevNow writes frames to the socket with one writev, without blocking, and
// returns how many bytes it took (0 when its buffer was full). o.mu is held.
func (o *outbox) writevNow(frames []*frame, sc *batchScratch) (int, error) {
	iov := sc.iov[:len(frames)]
	for i, f := range frames {
		iov[i].Base = &f.wire[0]
		iov[i].SetLen(len(f.wire))
	}
	o.directIov = iov
	err := o.raw.Write(o.directVec)
	n, werr := o.directN, o.directErr
	o.directIov, o.directErr = nil, nil
	clear(iov)
	switch {
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN || werr == syscall.EINTR:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

// variant is the shared frame of f this connection receives: f itself, its ETF
// variant or its payload-compressed one; nil for none (a payload with no ETF
// form). Every frame passes here exactly once, when it leaves the held frames
// for the queue or the socket (pushLocked, sendFrames): held frames are the
// JSON originals.
func (o *outbox) variant(f *frame) *frame {
	switch {
	case o.format.etf && f.data:
		// The shared ETF variant; the JSON frame's own bytes never reach an ETF
		// client.
		return f.etfFrame()
	case f.dispatch && o.payloadZlib.Load():
		// Payload compression applies to dispatches (op 0) only, as on
		// Discord: the shared compressed variant.
		return f.zlibFrame()
	}
	return f
}

func (o *outbox) pushLocked(f *frame) {
	if f = o.variant(f); f == nil {
		return
	}
	if len(o.queue) >= o.cfg.maxFrames {
		o.cutOffLocked()
		return
	}
	if !o.writing && o.raw != nil && !f.closeAfter && o.sendsShared(f) {
		// Nothing is pending: write from here, without waking a writer
		// goroutine. This is the fan-out's common case, and what makes a
		// frame to a room cost one system call per member and nothing else.
		rest, err := o.writeNow(f.wire)
		if err != nil {
			o.dropLocked()
			return
		}
		o.cfg.metrics.FramesWritten.Inc()
		o.cfg.metrics.SocketWrites.Inc()
		if rest == nil {
			return
		}
		o.partial = rest
		o.writing = true
		go o.startWriter()
		return
	}
	o.queue = append(o.queue, f)
	if f.closeAfter {
		o.closed = true
	}
	if !o.writing {
		o.writing = true
		go o.startWriter()
	}
}

// insertHeldLocked puts f among the held frames in s order: after the last one
// whose s is not above f's. Nearly always that is the end: live frames arrive in
// s order, and only a refilled event or a join's GUILD_CREATE goes further
// forward. Frames without an s (0: heartbeat ACKs) are appended and order
// nothing.
func (o *outbox) insertHeldLocked(f *frame) {
	i := len(o.held)
	if f.seq > 0 {
		for i > 0 && (o.held[i-1].seq == 0 || o.held[i-1].seq > f.seq) {
			i--
		}
	}
	o.held = slices.Insert(o.held, i, f)
}

// hold makes live frames wait until a matching release; holds nest (a resume and
// a room's refill may hold at once).
func (o *outbox) hold() {
	o.mu.Lock()
	o.holds++
	o.mu.Unlock()
}

// release ends one hold; the last one sends the held frames after whatever was
// sent unheld meanwhile.
func (o *outbox) release() {
	o.mu.Lock()
	if o.holds > 0 {
		o.holds--
	}
	if o.holds > 0 {
		o.mu.Unlock()
		return
	}
	held := o.held
	o.held = nil
	for _, f := range held {
		if o.closed {
			break
		}
		o.pushLocked(f)
	}
	o.signalLocked()
	o.mu.Unlock()
}

// isClosed reports whether the outbox takes no more frames (the connection is
// closed or closing).
func (o *outbox) isClosed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

// pending is how many frames wait: queued and held.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue) + len(o.held)
}

// waitBelow waits until fewer than n frames are pending, so that a producer of
// big frames (member lists) writes as fast as the client reads and no faster. It
// returns false when the outbox closed or ctx ended first.
func (o *outbox) waitBelow(ctx context.Context, n int) bool {
	for {
		o.mu.Lock()
		closed, pending := o.closed, len(o.queue)+len(o.held)
		if !closed && pending >= n && o.left == nil {
			o.left = make(chan struct{})
		}
		left := o.left
		o.mu.Unlock()
		switch {
		case closed || ctx.Err() != nil:
			return false
		case pending < n:
			return true
		}
		select {
		case <-left:
		case <-ctx.Done():
			return false
		}
	}
}

// signalLocked wakes waitBelow: frames left the outbox, or it closed.
func (o *outbox) signalLocked() {
	if o.left != nil {
		close(o.left)
		o.left = nil
	}
}

// close forgets what is pending and takes nothing more: the connection is gone.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.queue, o.held = nil, nil
	o.signalLocked()
	o.parkNowLocked()
	o.mu.Unlock()
}

// parkLaterLocked arranges for the stream compressor to be parked once the
// connection has been idle for streamIdleAfter. o.mu is held, no writer runs.
func (o *outbox) parkLaterLocked() {
	if _, ok := o.stream.(parker); !ok {
		return
	}
	if o.parkTimer == nil {
		o.parkTimer = time.AfterFunc(streamIdleAfter, o.parkIdle)
		return
	}
	o.parkTimer.Reset(streamIdleAfter)
}

// parkIdle parks the stream compressor unless a writer runs again (it will ask
// again when it leaves).
func (o *outbox) parkIdle() {
	o.mu.Lock()
	o.parkNowLocked()
	o.mu.Unlock()
}

// parkNowLocked parks the stream compressor if no writer uses it. o.mu is held.
func (o *outbox) parkNowLocked() {
	if p, ok := o.stream.(parker); ok && !o.writing {
		p.park()
	}
}

// cutOffLocked drops what is pending and closes the connection: the client is not
// reading fast enough. Closing the socket also unblocks a writer stuck in write.
func (o *outbox) cutOffLocked() {
	o.cfg.metrics.SlowConsumers.Inc()
	o.dropLocked()
}

// dropLocked closes the connection and forgets what was pending for it.
func (o *outbox) dropLocked() {
	o.closed = true
	o.queue = nil
	o.held = nil
	o.signalLocked()
	_ = o.conn.Close()
}

// writeNow writes b to the socket without blocking and returns what did not fit
// in the socket's buffer (nil when all of it did). o.mu is held.
func (o *outbox) writeNow(b []byte) ([]byte, error) {
	o.direct = b
	err := o.raw.Write(o.directWrite)
	n, werr := o.directN, o.directErr
	o.direct, o.directErr, o.directN = nil, nil, 0
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline the writer last set has passed (it was for its writes,
		// long done): nothing was written; the writer sets a new one.
		return b, nil
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

// writeLoop is the writer goroutine: it writes what is pending until nothing is.
func (o *outbox) writeLoop() {
	sc := writeScratchPool.Get().(*writeScratch)
	defer writeScratchPool.Put(sc)
	for {
		o.mu.Lock()
		k := 0 // leading buffers that are not queued frames: a direct write's rest
		if o.partial != nil {
			sc.bufs[0], o.partial = o.partial, nil
			k = 1
		}
		n := copy(sc.frames[:writeBatch-k], o.queue)
		if n+k == 0 {
			o.writing = false
			o.queue = o.queue[:0]
			o.parkLaterLocked()
			o.mu.Unlock()
			return
		}
		rest := copy(o.queue, o.queue[n:])
		clear(o.queue[rest:])
		o.queue = o.queue[:rest]
		if n > 0 {
			o.signalLocked()
		}
		o.mu.Unlock()

		closeAfter := false
		for i := 0; i < n; i++ {
			sc.bufs[k+i] = o.wireBytes(sc.frames[i])
			closeAfter = closeAfter || sc.frames[i].closeAfter
			sc.frames[i] = nil
		}
		o.cfg.metrics.FramesWritten.Add(float64(n))
		n += k
		// Move the deadline only when less than half of WriteTimeout is left: a
		// write still gets at least WriteTimeout/2, and a busy connection does not
		// re-arm the runtime's timer on every write.
		if now := time.Now(); now.After(o.deadlineRefresh) {
			_ = o.conn.SetWriteDeadline(now.Add(o.cfg.writeTimeout))
			o.deadlineRefresh = now.Add(o.cfg.writeTimeout / 2)
		}
		o.cfg.metrics.SocketWrites.Inc()
		var err error
		if n == 1 {
			_, err = o.conn.Write(sc.bufs[0])
		} else {
			sc.nb = sc.bufs[:n]
			_, err = sc.nb.WriteTo(o.conn)
			sc.nb = nil
		}
		clear(sc.bufs[:n])
		if err != nil || closeAfter {
			o.mu.Lock()
			o.writing = false
			o.dropLocked()
			o.parkNowLocked()
			o.mu.Unlock()
			return
		}
	}
}

// sendsShared reports whether the outbox sends f's shared bytes as they are:
// anything but a payload on a connection with transport compression (control
// frames are never compressed). pushLocked has already picked the shared
// variant of f the connection needs (ETF, payload compression).
func (o *outbox) sendsShared(f *frame) bool {
	return !f.data || o.format.transport == transportNone
}

// wireBytes is what to write for f: the shared frame, or for connections with
// transport compression its payload through the connection's stream
// compressor, as a binary frame.
func (o *outbox) wireBytes(f *frame) []byte {
	if o.sendsShared(f) {
		return f.wire
	}
	z := o.stream.compress(f.payload)
	b := frameBuf(len(z))
	b = append(b, z...)
	return finishFrame(b, wsOpBin).wire
}
