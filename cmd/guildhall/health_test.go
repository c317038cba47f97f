package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// /readyz says what is missing when the stream, the writer's consumer or a
// bucket goes away; with --metrics-addr the metrics are served there and not on
// the public address.
func TestReadyzAndMetricsAddr(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	dir := t.TempDir()
	s := startStack(t, dir, "--metrics-addr", metricsAddr)

	ready := func() (int, []string) {
		t.Helper()
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Ready   bool     `json:"ready"`
			Missing []string `json:"missing"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("readyz body: %v", err)
		}
		if body.Ready != (resp.StatusCode == 200) {
			t.Fatalf("readyz %d with ready %v", resp.StatusCode, body.Ready)
		}
		return resp.StatusCode, body.Missing
	}
	// eventually waits out the readiness answer's one-second reuse.
	eventually := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, missing := ready()
			if st == 503 && strings.Contains(strings.Join(missing, "\n"), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz = %d %q; want 503 naming %q", st, missing, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if st, missing := ready(); st != 200 {
		t.Fatalf("readyz = %d %q; want 200", st, missing)
	}

	// Metrics on their own address only.
	if resp, err := http.Get("http://" + s.addr + "/metrics"); err != nil || resp.StatusCode == 200 {
		t.Fatalf("public /metrics = %v, %v; want not served", resp.StatusCode, err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "guildhall_") {
		t.Fatalf("metrics address /metrics = %d (%d bytes); want 200 with guildhall metrics", resp.StatusCode, len(b))
	}

	// Take the topology apart, as an operator's mistake (or an attacker on the
	// bus) would.
	url, err := os.ReadFile(filepath.Join(dir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	// As the operator: the identity allowed to administer JetStream.
	_, js := testenv.NATSConnectAs(t, strings.TrimSpace(string(url)), filepath.Join(dir, "creds"), ghnats.RoleOperator)
	ctx := context.Background()
	if err := js.DeleteKeyValue(ctx, ghnats.BucketPresence); err != nil {
		t.Fatal(err)
	}
	eventually("bucket " + ghnats.BucketPresence)
	st, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteConsumer(ctx, ghnats.ConsumerWriter); err != nil {
		t.Fatal(err)
	}
	eventually("consumer " + ghnats.StreamEvents + "/" + ghnats.ConsumerWriter)
	if err := js.DeleteStream(ctx, ghnats.StreamEvents); err != nil {
		t.Fatal(err)
	}
	eventually("stream " + ghnats.StreamEvents)
}

// A client that dribbles its headers or holds an idle connection is cut off;
// a WebSocket session outlives every HTTP timeout.
func TestHTTPTimeouts(t *testing.T) {
	t.Parallel()
	s := startStack(t, t.TempDir(), "--http-read-header-timeout", "300ms", "--http-read-timeout", "500ms",
		"--http-write-timeout", "500ms", "--http-idle-timeout", "500ms")

	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return err == nil || !(errors.As(err, &ne) && ne.Timeout())
	}
	slow, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, _ = slow.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")) // and never the end of the headers
	if !closedWithin(slow, 10*time.Second) {
		t.Fatal("a connection that never finished its headers is still open after 10 s")
	}

	idle, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	r, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz on a raw connection: %v", err)
	}
	if !closedWithin(idle, 10*time.Second) {
		t.Fatal("an idle keep-alive connection is still open after 10 s")
	}

	f := newGuildFixture(t, s)
	c := testenv.DialGateway(t, s.gatewayURL())
	c.Identify(f.memberToken)
	time.Sleep(1500 * time.Millisecond) // three times every HTTP timeout
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/messages", f.ownerToken, map[string]string{"content": "still here"}, nil)
	if m := c.WaitFor(t, "MESSAGE_CREATE", 10*time.Second); !strings.Contains(string(m.D), "still here") {
		t.Fatalf("MESSAGE_CREATE = %s", m.D)
	}
	if c.Closed() {
		t.Fatal("the WebSocket was closed")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
