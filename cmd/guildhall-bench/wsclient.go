package main

import (
	"bufio"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The workers' WebSocket transport. A load generator that wants to measure a server
// at hundreds of thousands of frames a second must itself cost little per frame:
// with a goroutine per connection (gws's ReadLoop) every frame costs a netpoll
// wake-up, a goroutine switch and two read system calls (the data, then EAGAIN),
// about 10 µs of client CPU per frame on this machine. Here a poller reads every
// connection of its share from one goroutine with epoll (level-triggered): one
// read per ready connection per round into one shared buffer, every complete frame
// in it handled in place, no allocation per frame. When the client falls behind,
// frames pile up in the sockets and each read takes several: it degrades by
// batching, and reports how busy it was (poller.busy) so a run can say when the
// client, not the server, set the pace.
//
// Connections are dialed and upgraded with the standard library (blocking, with a
// deadline), then handed to a poller as a duplicate of the socket; the net.Conn is
// closed, so Go's own netpoller forgets the socket. Only the poller closes a
// socket, and writers (heartbeats, identify) write under the connection's mutex,
// so a socket number is never written after it was closed and reused.

// Server-to-client frames are unmasked; these are the opcodes and the largest
// payload the client accepts.
const (
	wsContinuation  = 0x0
	wsText          = 0x1
	wsBinary        = 0x2
	wsClose         = 0x8
	wsPing          = 0x9
	wsPong          = 0xA
	maxFramePayload = 16 << 20
	readBufSize     = 256 << 10
)

var errConnClosed = errors.New("ws: connection closed")

// wsHandler receives a connection's events, on its poller's goroutine (or, for the
// frames that came with the handshake, on the dialing goroutine before the poller
// sees the connection). payload is valid only during the call.
type wsHandler interface {
	// onOpen comes first, before any frame: the connection is usable for writes.
	onOpen(wc *wsConn)
	onFrame(wc *wsConn, op byte, payload []byte, now int64)
	onClose(wc *wsConn, err error)
}

// wsConn is one client WebSocket connection.
type wsConn struct {
	h wsHandler
	p *poller

	mu sync.Mutex // serializes writes with each other and with close
	fd int        // -1 once closed; written by the poller only, under mu

	// Poller only.
	pend []byte // the start of a frame not yet complete
	frag []byte // a fragmented message being put together
	fop  byte   // its opcode
}

// dialWS connects to a ws:// URL from local (nil: any address), upgrades, and hands
// the connection to p. Frames that arrived with the handshake go to h at once.
func dialWS(rawURL string, local *net.TCPAddr, timeout time.Duration, p *poller, h wsHandler) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout, LocalAddr: local}
	nc, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(timeout))
	var key [16]byte
	_, _ = crand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		return nil, fmt.Errorf("ws handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("ws handshake: HTTP %d", resp.StatusCode)
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, errors.New("ws handshake: bad Sec-WebSocket-Accept")
	}
	early, _ := br.Peek(br.Buffered())

	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("ws: not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	// The duplicate shares the original's file description, which Go made
	// non-blocking; say so anyway, as the poller depends on it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	wc := &wsConn{h: h, p: p, fd: fd}
	h.onOpen(wc)
	// Frames that came with the handshake (HELLO, typically) are handled here,
	// before the poller can see the connection.
	if len(early) > 0 {
		rest, err := wc.consume(early, time.Now().UnixNano())
		if err != nil {
			wc.closeUnpolled()
			return nil, err
		}
		wc.pend = append([]byte(nil), rest...)
	}
	if err := p.add(wc); err != nil {
		wc.closeUnpolled()
		return nil, err
	}
	return wc, nil
}

// closeUnpolled closes a connection that never reached its poller (no onClose:
// the dial failed, and its caller says so).
func (wc *wsConn) closeUnpolled() {
	wc.mu.Lock()
	if wc.fd >= 0 {
		unix.Close(wc.fd)
		wc.fd = -1
	}
	wc.mu.Unlock()
}

// writeFrame sends one masked frame (client frames are masked).
func (wc *wsConn) writeFrame(op byte, payload []byte) error {
	b := make([]byte, 0, len(payload)+14)
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 65535:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= mask[i&3]
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.fd < 0 {
		return errConnClosed
	}
	for len(b) > 0 {
		n, err := unix.Write(wc.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			// The server is not reading: wait a little for room, then give up.
			fds := []unix.PollFd{{Fd: int32(wc.fd), Events: unix.POLLOUT}}
			if k, _ := unix.Poll(fds, 5000); k <= 0 {
				_ = unix.Shutdown(wc.fd, unix.SHUT_RDWR)
				return errors.New("ws: write timed out")
			}
			continue
		}
		if err != nil {
			_ = unix.Shutdown(wc.fd, unix.SHUT_RDWR)
			return err
		}
		b = b[n:]
	}
	return nil
}

// writeText sends a text frame.
func (wc *wsConn) writeText(p []byte) error { return wc.writeFrame(wsText, p) }

// shutdown ends the connection from any goroutine: the poller sees the socket
// close and calls onClose.
func (wc *wsConn) shutdown() {
	wc.mu.Lock()
	if wc.fd >= 0 {
		_ = unix.Shutdown(wc.fd, unix.SHUT_RDWR)
	}
	wc.mu.Unlock()
}

// consume handles every complete frame at the start of b and returns the rest
// (the start of an incomplete frame). An error means a protocol violation or a
// close frame: the caller closes the connection.
func (wc *wsConn) consume(b []byte, now int64) ([]byte, error) {
	for {
		op, fin, payload, n, err := parseFrame(b)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return b, nil
		}
		b = b[n:]
		switch op {
		case wsPing:
			_ = wc.writeFrame(wsPong, payload)
		case wsPong:
		case wsClose:
			_ = wc.writeFrame(wsClose, payload[:min(len(payload), 2)])
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			return nil, &closeError{Code: code, Reason: string(payload[min(len(payload), 2):])}
		case wsText, wsBinary, wsContinuation:
			if op != wsContinuation && wc.frag != nil {
				return nil, errors.New("ws: new message inside a fragmented one")
			}
			if op == wsContinuation && wc.frag == nil {
				return nil, errors.New("ws: continuation without a start")
			}
			if fin && wc.frag == nil {
				wc.h.onFrame(wc, op, payload, now)
				continue
			}
			if wc.frag == nil {
				wc.fop = op
				wc.frag = make([]byte, 0, len(payload))
			}
			if len(wc.frag)+len(payload) > maxFramePayload {
				return nil, errors.New("ws: message too large")
			}
			wc.frag = append(wc.frag, payload...)
			if fin {
				m := wc.frag
				wc.frag = nil
				wc.h.onFrame(wc, wc.fop, m, now)
			}
		default:
			return nil, fmt.Errorf("ws: opcode %#x", op)
		}
	}
}

// closeError is a close frame the server sent.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("ws: closed by the server: %d %s", e.Code, e.Reason)
}

// parseFrame reads one frame at the start of b. n is its whole length, 0 when b
// does not hold all of it yet (need then says how long it will be, if known).
func parseFrame(b []byte) (op byte, fin bool, payload []byte, n int, err error) {
	op, fin, hdr, plen, err := frameHeader(b)
	if err != nil || hdr == 0 || len(b) < hdr+plen {
		return 0, false, nil, 0, err
	}
	payload = b[hdr : hdr+plen]
	if b[1]&0x80 != 0 { // masked (servers do not mask, but be lenient)
		mask := b[hdr-4 : hdr]
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
	}
	return op, fin, payload, hdr + plen, nil
}

// frameHeader decodes a frame header: its length hdr (0 when b is too short to
// tell) and the payload length.
func frameHeader(b []byte) (op byte, fin bool, hdr, plen int, err error) {
	if len(b) < 2 {
		return 0, false, 0, 0, nil
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0F
	if b[0]&0x70 != 0 {
		return 0, false, 0, 0, errors.New("ws: reserved bits set")
	}
	hdr = 2
	switch l := int(b[1] & 0x7F); l {
	case 126:
		hdr = 4
		if len(b) < hdr {
			return 0, false, 0, 0, nil
		}
		plen = int(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		hdr = 10
		if len(b) < hdr {
			return 0, false, 0, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:10])
		if v > maxFramePayload {
			return 0, false, 0, 0, errors.New("ws: frame too large")
		}
		plen = int(v)
	default:
		plen = l
	}
	if b[1]&0x80 != 0 {
		hdr += 4
		if len(b) < hdr {
			return 0, false, 0, 0, nil
		}
	}
	if op >= 0x8 && (plen > 125 || !fin) {
		return 0, false, 0, 0, errors.New("ws: bad control frame")
	}
	return op, fin, hdr, plen, nil
}

// maxFD bounds the socket numbers a poller can index (a worker stays under the
// 20,000 open files a process may have).
const maxFD = 1 << 16

// poller reads its connections from one goroutine.
type poller struct {
	epfd int
	file *os.File // epfd, registered with Go's netpoller
	rc   syscall.RawConn
	buf  []byte
	// conns[fd] is the connection on socket fd: stored before the socket joins
	// the epoll set, cleared before it is closed.
	conns []atomic.Pointer[wsConn]

	// Counters for the coordinator, read from any goroutine.
	waitNs  atomic.Int64 // time spent blocked in epoll_wait
	reads   atomic.Int64 // reads that returned data
	rbytes  atomic.Int64
	stopped atomic.Bool
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &poller{epfd: fd, file: f, rc: rc, buf: make([]byte, readBufSize), conns: make([]atomic.Pointer[wsConn], maxFD)}, nil
}

func (p *poller) add(wc *wsConn) error {
	if wc.fd >= len(p.conns) {
		return fmt.Errorf("ws: socket %d beyond the poller's table", wc.fd)
	}
	p.conns[wc.fd].Store(wc)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(wc.fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, wc.fd, &ev); err != nil {
		p.conns[wc.fd].Store(nil)
		return err
	}
	return nil
}

// run handles events until stop.
//
// The epoll set is itself registered with Go's netpoller (an epoll fd is readable
// while any of its sockets is): when nothing is ready, the goroutine parks like
// any socket reader, and never holds a thread in a blocking epoll_wait. A blocking
// wait would have the runtime hand the P to another thread each time, and sysmon
// wake every 20 µs while that goes on, which cost a fifth of the client's CPU at
// 20,000 frames/s.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 512)
	var n int
	var parked time.Time
	poll := func(fd uintptr) bool {
		if !parked.IsZero() {
			p.waitNs.Add(int64(time.Since(parked)))
			parked = time.Time{}
		}
		n = epollPoll(int(fd), events)
		if n == 0 {
			parked = time.Now()
		}
		return n > 0
	}
	for !p.stopped.Load() {
		if err := p.rc.Read(poll); err != nil {
			return
		}
		ns := time.Now().UnixNano()
		for i := 0; i < n; i++ {
			if wc := p.conns[events[i].Fd].Load(); wc != nil {
				p.readConn(wc, ns)
			}
		}
	}
}

func (p *poller) stop() {
	p.stopped.Store(true)
	_ = p.file.Close() // wakes run
}

// epollPoll returns the events ready now, without blocking (0 on any error).
func epollPoll(epfd int, events []unix.EpollEvent) int {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}

// readConn does one read on a ready connection and handles the frames in it.
func (p *poller) readConn(wc *wsConn, now int64) {
	// A frame larger than the shared buffer is read straight into its own buffer.
	if cap(wc.pend) > len(p.buf) {
		m, err := unix.Read(wc.fd, wc.pend[len(wc.pend):cap(wc.pend)])
		if m <= 0 {
			p.readFailed(wc, m, err)
			return
		}
		p.reads.Add(1)
		p.rbytes.Add(int64(m))
		wc.pend = wc.pend[:len(wc.pend)+m]
		if len(wc.pend) < cap(wc.pend) {
			return
		}
		rest, err := wc.consume(wc.pend, now)
		wc.pend = nil
		if err == nil && len(rest) > 0 {
			err = errors.New("ws: bytes after a large frame") // cannot happen: the read was bounded
		}
		if err != nil {
			p.close(wc, err)
		}
		return
	}
	k := copy(p.buf, wc.pend)
	m, err := unix.Read(wc.fd, p.buf[k:])
	if m <= 0 {
		p.readFailed(wc, m, err)
		return
	}
	p.reads.Add(1)
	p.rbytes.Add(int64(m))
	rest, err := wc.consume(p.buf[:k+m], now)
	if err != nil {
		p.close(wc, err)
		return
	}
	wc.pend = wc.pend[:0]
	if len(rest) == 0 {
		if cap(wc.pend) > 4096 {
			wc.pend = nil // do not keep a big buffer for an idle connection
		}
		return
	}
	// An incomplete frame: keep it, in a buffer of its own size when it will not
	// fit in the shared one.
	if _, _, hdr, plen, herr := frameHeader(rest); herr == nil && hdr > 0 && hdr+plen > len(p.buf) {
		wc.pend = make([]byte, len(rest), hdr+plen)
		copy(wc.pend, rest)
		return
	}
	wc.pend = append(wc.pend, rest...)
}

func (p *poller) readFailed(wc *wsConn, m int, err error) {
	if m < 0 && (err == unix.EAGAIN || err == unix.EINTR) {
		return
	}
	if err == nil {
		err = io.EOF
	}
	p.close(wc, err)
}

// close closes a connection's socket (the poller alone does) and tells its handler.
func (p *poller) close(wc *wsConn, err error) {
	wc.mu.Lock()
	fd := wc.fd
	wc.fd = -1
	if fd >= 0 {
		p.conns[fd].Store(nil)
		unix.Close(fd) // also takes it out of the epoll set
	}
	wc.mu.Unlock()
	wc.pend, wc.frag = nil, nil
	if fd >= 0 {
		wc.h.onClose(wc, err)
	}
}
