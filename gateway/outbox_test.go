package gateway

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

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
