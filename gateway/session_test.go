package gateway

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/testenv"
	dto "github.com/prometheus/client_model/go"
)

// The write path of a session over real loopback sockets, in both modes: frames
// written directly by the sender while nothing is pending, and every frame through
// the writer goroutine.
var writeModes = map[string]Config{"direct": {}, "writer": {NoDirectWrites: true}}

// deliverModes are writeModes, each with events delivered one at a time (low
// load) and in batches of maxBatch (the pump behind: several frames per session
// in one writev).
var deliverModes = func() map[string]deliverMode {
	m := map[string]deliverMode{}
	for name, cfg := range writeModes {
		m[name] = deliverMode{cfg: cfg, batch: 1}
		m[name+"/batched"] = deliverMode{cfg: cfg, batch: maxBatch}
	}
	return m
}()

type deliverMode struct {
	cfg   Config
	batch int // events per flush
}

// deliverSeq delivers ev with s = from..to, flushing every mode.batch events.
func (m deliverMode) deliverSeq(h *pump, r *room, ev guildhall.Event, from, to int) {
	for i := from; i <= to; i++ {
		h.deliver(r, ev, newDispatch(ev, uint64(i)), nil, false)
		if (i-from+1)%m.batch == 0 {
			h.flush()
		}
	}
	h.flush()
}

// loopbackPairs returns n server-side connections and their client ends.
func loopbackPairs(t *testing.T, n int) (servers, clients []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers, clients = append(servers, s), append(clients, c)
	}
	t.Cleanup(func() {
		for i := range servers {
			servers[i].Close()
			clients[i].Close()
		}
	})
	return servers, clients
}

// readFrame reads one unmasked server-to-client WebSocket frame's payload.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, err
}

// A client that stops reading while frames keep coming fills its socket's buffer:
// direct writes then leave part of a frame for the writer, which must send it
// before anything queued after it. Once the client reads again it gets every frame,
// whole and in order.
func TestSessionFramesIntactThroughFullSocket(t *testing.T) {
	for mode, dm := range deliverModes {
		t.Run(mode, func(t *testing.T) {
			cfg := dm.cfg
			cfg.MaxOutbox = 100_000
			servers, clients := loopbackPairs(t, 1)
			// Small socket buffers, so that they fill long before the frames end.
			_ = servers[0].(*net.TCPConn).SetWriteBuffer(16 << 10)
			_ = clients[0].(*net.TCPConn).SetReadBuffer(16 << 10)
			h, r := benchRoom(servers, cfg)
			ev := benchEvent()
			const frames = 8000 // ~4 MB
			dm.deliverSeq(h, r, ev, 1, frames)
			time.Sleep(200 * time.Millisecond) // let the buffers fill while nobody reads
			br := bufio.NewReader(clients[0])
			_ = clients[0].SetReadDeadline(time.Now().Add(60 * time.Second))
			for i := 1; i <= frames; i++ {
				p, err := readFrame(br)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				var d struct {
					S uint64 `json:"s"`
					T string `json:"t"`
				}
				if err := json.Unmarshal(p, &d); err != nil {
					t.Fatalf("frame %d is not whole JSON: %v (%d bytes)", i, err, len(p))
				}
				if d.S != uint64(i) || d.T != ev.Type {
					t.Fatalf("frame %d has s=%d t=%s; want s=%d in order", i, d.S, d.T, i)
				}
			}
		})
	}
}

// A client that never reads is cut off once its outbox reaches MaxOutbox, and the
// room's other members keep receiving: one slow consumer neither blocks the
// fan-out nor makes the gateway hold more than the bound for it.
func TestSlowConsumerCutOffOthersUnaffected(t *testing.T) {
	for mode, dm := range deliverModes {
		t.Run(mode, func(t *testing.T) {
			cfg := dm.cfg
			cfg.MaxOutbox = 64
			cfg.Metrics = NewMetrics(nil) // this test's own counters
			servers, clients := loopbackPairs(t, 3)
			_ = servers[0].(*net.TCPConn).SetWriteBuffer(16 << 10)
			_ = clients[0].(*net.TCPConn).SetReadBuffer(16 << 10)
			h, r := benchRoom(servers, cfg)
			sessions := make([]*Session, len(r.members))
			for i, rm := range r.members {
				sessions[i] = rm.s
			}
			slow, fast := sessions[0], sessions[1:]
			ev := benchEvent()
			// The fast clients read everything, counting frames.
			counts := make(chan int, len(fast))
			for _, c := range clients[1:] {
				go func() {
					br := bufio.NewReader(c)
					n := 0
					for {
						if _, err := readFrame(br); err != nil {
							counts <- n
							return
						}
						n++
					}
				}()
			}
			const frames = 2000 // ~1 MB: far past the slow socket's buffers plus 64 frames
			for i := 1; i <= frames; i += dm.batch {
				dm.deliverSeq(h, r, ev, i, min(i+dm.batch-1, frames))
				if n := pending(slow); n > cfg.MaxOutbox {
					t.Fatalf("slow session holds %d frames; bound is %d", n, cfg.MaxOutbox)
				}
				// Keep the fast sessions within their bound however loaded the
				// machine is: this test is about the slow one.
				for _, s := range fast {
					for pending(s) > min(cfg.MaxOutbox/2, cfg.MaxOutbox-dm.batch) {
						time.Sleep(time.Millisecond)
					}
				}
			}
			if !slow.out.isClosed() {
				t.Fatal("the session that never reads was not cut off")
			}
			var slowCount dto.Metric
			if err := cfg.Metrics.SlowConsumers.Write(&slowCount); err != nil || slowCount.GetCounter().GetValue() != 1 {
				t.Fatalf("slow consumers counted: %v (%v); want 1", slowCount.GetCounter().GetValue(), err)
			}
			// Its socket is closed: after what the kernel buffered, the client sees the end.
			_ = clients[0].SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.Copy(io.Discard, clients[0]); err != nil && !isConnReset(err) {
				t.Fatalf("slow client: %v; want the connection closed", err)
			}
			// The others got every frame, and are still open.
			for _, s := range fast {
				if s.out.isClosed() {
					t.Fatal("a fast session was closed")
				}
				testenv.Eventually(t, 30*time.Second, func() error {
					if s.out.mu.Lock(); s.out.writing {
						s.out.mu.Unlock()
						return errors.New("still writing")
					}
					s.out.mu.Unlock()
					return nil
				})
				_ = s.out.conn.Close()
			}
			for range fast {
				if n := <-counts; n != frames {
					t.Fatalf("a fast client read %d frames; want %d", n, frames)
				}
			}
		})
	}
}

// pending is how many frames wait in s's outbox.
func pending(s *Session) int { return s.out.pending() }

// isConnReset: closing a socket with unread data makes the peer see a reset.
func isConnReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// A room past parallelFanOut is written by several goroutines at once; every
// member still gets every frame once, in stream order.
func TestLargeRoomFanOutInOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	const members, events = parallelFanOut + 100, 30
	servers, clients := loopbackPairs(t, members)
	h, r := benchRoom(servers, Config{})
	errs := make(chan error, members)
	for _, c := range clients {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			br := bufio.NewReader(c)
			for i := 1; i <= events; i++ {
				p, err := readFrame(br)
				if err != nil {
					errs <- err
					return
				}
				var d struct{ S int }
				if err := json.Unmarshal(p, &d); err != nil || d.S != i {
					errs <- fmt.Errorf("frame %d has s=%d (%v); want %d", i, d.S, err, i)
					return
				}
			}
			errs <- nil
		}()
	}
	ev := benchEvent()
	for i := 1; i <= events; i++ {
		h.deliverNow(r, ev, newDispatch(ev, uint64(i)))
	}
	for range members {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// deliverNow delivers one event at once, as the pump does when nothing else is
// waiting.
func (p *pump) deliverNow(r *room, ev guildhall.Event, d *dispatch) {
	p.deliver(r, ev, d, nil, false)
	p.flush()
}
