package gateway

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// With every identify slot taken, an IDENTIFY is answered INVALID_SESSION (d=false)
// and the connection stays open; once a slot frees up, the next IDENTIFY is served
// (here it reaches the api, which this test does not run: close 4000).
func TestIdentifyShedWhenSlotsAreTaken(t *testing.T) {
	g, url := startGatewayNoAPI(t, Config{
		HeartbeatInterval: time.Hour, MaxIdentifies: 2, IdentifyWait: 50 * time.Millisecond, APITimeout: 2 * time.Second,
	})

	g.identifies <- struct{}{}
	g.identifies <- struct{}{}
	c := testenv.DialGateway(t, url)
	c.WaitFor(t, "op:10", 5*time.Second)
	if err := c.Send(OpIdentify, map[string]any{"token": "Bot x", "properties": map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	inv := c.WaitFor(t, "op:9", 5*time.Second)
	if string(inv.D) != "false" {
		t.Fatalf("INVALID_SESSION d = %s; want false", inv.D)
	}
	if c.Closed() {
		t.Fatal("a shed IDENTIFY closed the connection")
	}

	<-g.identifies
	if err := c.Send(OpIdentify, map[string]any{"token": "Bot x", "properties": map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.WaitClose(10 * time.Second); code != CloseUnknownError {
		t.Fatalf("IDENTIFY with a free slot and no api closed with %d; want %d", code, CloseUnknownError)
	}
	// The slot is given back after the close frame is queued, so the client may see
	// the close first.
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := len(g.identifies); n != 1 {
			return fmt.Errorf("%d identify slots taken after the identify ended; want 1 (the test's)", n)
		}
		return nil
	})
}

// startGatewayNoAPI runs a gateway on a real NATS server with no api behind it, for
// what the gateway decides before asking the api; it returns the gateway and its
// WebSocket URL.
func startGatewayNoAPI(t testing.TB, cfg Config) (*Gateway, string) {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	nc, js, err := ghnats.ConnectAs(n.URL, "gw", ghnats.RoleGateway, ghnats.ClientAuth{Dir: n.Creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	g, err := New(context.Background(), nc, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background(), 0) })
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, "ws" + strings.TrimPrefix(srv.URL, "http") + "/?v=10&encoding=json"
}
