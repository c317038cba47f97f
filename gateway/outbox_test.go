package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
	dto "github.com/prometheus/client_model/go"
)

// waitBelow (member lists pace their chunks with it) returns once the client has
// read enough for the outbox to drain below the mark, and false when the outbox
// closes or the caller gives up while frames still wait.
func TestOutboxWaitBelow(t *testing.T) {
	server, client := net.Pipe() // not a socket: every frame goes through the writer
	defer client.Close()
	o := newOutbox(server, wireFormat{}, Config{}.withDefaults().outbox())
	f := opFrame(OpHeartbeatACK, []byte("null"))
	fill := func() {
		for range 200 {
			o.send(f)
		}
	}
	fill()
	ret := make(chan bool, 1)
	go func() { ret <- o.waitBelow(context.Background(), 4) }()
	select {
	case r := <-ret:
		t.Fatalf("waitBelow returned %v with %d frames pending and nobody reading", r, o.pending())
	case <-time.After(100 * time.Millisecond):
	}
	go func() { _, _ = io.Copy(io.Discard, client) }()
	select {
	case r := <-ret:
		if !r {
			t.Fatal("waitBelow = false once the client read; want true")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("waitBelow still waiting with %d frames pending", o.pending())
	}

	ctx, cancel := context.WithCancel(context.Background())
	stalled := &stalledConn{Conn: server, stop: make(chan struct{})}
	defer close(stalled.stop)
	blocked := newOutbox(stalled, wireFormat{}, Config{}.withDefaults().outbox())
	for range 10 {
		blocked.send(f)
	}
	go func() { ret <- blocked.waitBelow(ctx, 4) }()
	cancel()
	if r := <-ret; r {
		t.Fatal("waitBelow = true after its context ended with frames pending")
	}
	go func() { ret <- blocked.waitBelow(context.Background(), 4) }()
	blocked.close()
	if r := <-ret; r {
		t.Fatal("waitBelow = true after the outbox closed")
	}
	if n := blocked.pending(); n != 0 {
		t.Fatalf("a closed outbox holds %d frames", n)
	}
}

// stalledConn completes no write until the test ends: its writer stays stuck with
// frames queued.
type stalledConn struct {
	net.Conn
	stop chan struct{}
}

func (c *stalledConn) Write([]byte) (int, error) { <-c.stop; return 0, io.ErrClosedPipe }

// A frame to a session with nothing pending is written by its sender: one write,
// no goroutine, no allocation. This is what a fan-out costs per recipient.
func TestOutboxDirectWriteAllocatesNothing(t *testing.T) {
	servers, clients := loopbackPairs(t, 1)
	go func() { _, _ = io.Copy(io.Discard, clients[0]) }()
	cfg := Config{}.withDefaults()
	o := newOutbox(servers[0], wireFormat{}, cfg.outbox())
	f := dispatchFrame("MESSAGE_CREATE", 1, []byte(`{"content":"hi"}`))
	if n := testing.AllocsPerRun(100, func() { o.send(f) }); n != 0 {
		t.Fatalf("a direct write allocates %v times", n)
	}
	var written dto.Metric
	_ = cfg.Metrics.FramesWritten.Write(&written)
	o.mu.Lock()
	writing := o.writing
	o.mu.Unlock()
	if writing || written.GetCounter().GetValue() != 101 {
		t.Fatalf("after 101 frames: writer running %v, %v frames written directly; want no writer, 101", writing, written.GetCounter().GetValue())
	}
}

// Held frames go out in s order once every hold is released: a refilled event
// sent after later ones of another room goes before them (past frames without an
// s), a frame sent unheld passes them all, and a nested hold (a resume and a
// room's refill at once) keeps them until both end.
func TestOutboxHoldKeepsSequenceOrder(t *testing.T) {
	servers, clients := loopbackPairs(t, 1)
	o := newOutbox(servers[0], wireFormat{}, Config{}.withDefaults().outbox())
	frame := func(s uint64) *frame { return dispatchFrame("MESSAGE_CREATE", s, []byte(`{}`)) }
	o.hold() // a resume
	o.hold() // a room catching up
	o.send(frame(7))
	ack := opFrame(OpHeartbeatACK, []byte("null"))
	o.send(ack)
	o.send(frame(9))
	o.send(frame(5)) // refilled: before 7
	o.send(frame(8)) // refilled: between 7 and 9
	o.sendUnheld(frame(3))
	o.release()
	if n := o.pending(); n != 5 {
		t.Fatalf("%d frames pending after one of two releases; want the 5 held", n)
	}
	o.release()
	br := bufio.NewReader(clients[0])
	_ = clients[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for range 6 {
		p, err := readFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Op int     `json:"op"`
			S  *uint64 `json:"s"`
		}
		if err := json.Unmarshal(p, &d); err != nil {
			t.Fatal(err)
		}
		if d.S == nil {
			got = append(got, fmt.Sprintf("op%d", d.Op))
		} else {
			got = append(got, fmt.Sprint(*d.S))
		}
	}
	if want := "3 5 7 8 9 op11"; strings.Join(got, " ") != want {
		t.Fatalf("frames went out as %s; want %s", strings.Join(got, " "), want)
	}
}

// A session whose writer once wrote (a frame larger than the socket's buffer)
// still takes direct writes long after the writer's write deadline has passed:
// the expired deadline is the writer's, not a dead connection.
func TestOutboxDirectWriteAfterWriterDeadline(t *testing.T) {
	servers, clients := loopbackPairs(t, 1)
	cfg := Config{WriteTimeout: 50 * time.Millisecond}.withDefaults()
	o := newOutbox(servers[0], wireFormat{}, cfg.outbox())
	big := dispatchFrame("GUILD_CREATE", 1, []byte(`"`+strings.Repeat("x", 8<<20)+`"`))
	small := dispatchFrame("MESSAGE_CREATE", 2, []byte(`{}`))
	done := make(chan error, 1)
	go func() {
		br := bufio.NewReader(clients[0])
		for range 2 {
			if _, err := readFrame(br); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	o.send(big) // through the writer, which sets a write deadline
	testenv.Eventually(t, 30*time.Second, func() error {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.writing {
			return errors.New("the writer is still writing")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // past the writer's deadline
	o.send(small)
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
	if o.isClosed() {
		t.Fatal("the outbox closed the connection on the writer's stale deadline")
	}
}
