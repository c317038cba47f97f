package gateway

import (
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

// A connection that never identifies is closed with 4009 once IdentifyTimeout
// has passed, however often it heartbeats.
func TestIdentifyDeadline(t *testing.T) {
	t.Parallel()
	_, url := startGatewayNoAPI(t, Config{HeartbeatInterval: time.Hour, Limits: LimitsConfig{IdentifyTimeout: 500 * time.Millisecond}})
	c := testenv.DialGateway(t, url)
	c.WaitFor(t, "op:10", 5*time.Second)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				_ = c.Send(OpHeartbeat, nil)
			}
		}
	}()
	if code, _ := c.WaitClose(10 * time.Second); code != CloseSessionTimedOut {
		t.Fatalf("a connection that only heartbeats closed with %d; want %d", code, CloseSessionTimedOut)
	}
	if n := acks(c); n == 0 {
		t.Fatal("no heartbeat was acknowledged before the deadline")
	}
}

// The payload past PayloadLimit in a window closes the connection with 4008,
// heartbeats counted; it is not answered.
func TestPayloadRateLimit(t *testing.T) {
	t.Parallel()
	_, url := startGatewayNoAPI(t, Config{HeartbeatInterval: time.Hour, Limits: LimitsConfig{PayloadLimit: 5}})
	c := testenv.DialGateway(t, url)
	c.WaitFor(t, "op:10", 5*time.Second)
	for range 6 {
		if err := c.Send(OpHeartbeat, nil); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := c.WaitClose(10 * time.Second); code != CloseRateLimited {
		t.Fatalf("6 payloads with a limit of 5 closed with %d; want %d", code, CloseRateLimited)
	}
	if n := acks(c); n != 5 {
		t.Fatalf("%d heartbeats acknowledged; want 5", n)
	}

	// Another connection has its own count.
	d := testenv.DialGateway(t, url)
	d.WaitFor(t, "op:10", 5*time.Second)
	_ = d.Send(OpHeartbeat, nil)
	d.WaitFor(t, "op:11", 5*time.Second)
}

// One address holds at most MaxConnsPerAddr connections; a closed one frees
// its slot.
func TestConnsPerAddr(t *testing.T) {
	t.Parallel()
	g, url := startGatewayNoAPI(t, Config{HeartbeatInterval: time.Hour, Limits: LimitsConfig{MaxConnsPerAddr: 2}})
	a := testenv.DialGateway(t, url)
	b := testenv.DialGateway(t, url)
	a.WaitFor(t, "op:10", 5*time.Second)
	b.WaitFor(t, "op:10", 5*time.Second)
	if c, err := testenv.TryDialGateway(t, url); err == nil {
		c.Drop()
		t.Fatal("a third connection from one address was accepted; want refused")
	}
	a.Close(1000)
	testenv.Eventually(t, 10*time.Second, func() error {
		c, err := testenv.TryDialGateway(t, url)
		if err != nil {
			return err
		}
		c.Drop()
		return nil
	})
	_ = g
}

// acks counts the heartbeat ACKs (op 11) c received.
func acks(c *testenv.GatewayClient) int {
	n := 0
	for _, p := range c.All() {
		if p.Op == OpHeartbeatACK {
			n++
		}
	}
	return n
}
