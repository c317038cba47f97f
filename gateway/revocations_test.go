package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
)

type fixedSessions []*Session

func (f fixedSessions) connections() []*Session { return f }

// pipeSession is an identified session of user with token hash h whose socket
// is one end of a pipe; the other end is returned to read what it is sent.
func pipeSession(t *testing.T, user guildhall.Snowflake, h string) (*Session, net.Conn) {
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	s := newSession(server, wireFormat{}, Config{}.withDefaults().outbox())
	s.user, s.tokenHash = guildhall.User{ID: user}, h
	s.identified.Store(true)
	s.resumable.Store(true)
	return s, client
}

// closeCode reads frames from c until a close frame, and returns its code.
func closeCode(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var h [2]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			_, _ = io.ReadFull(c, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, _ = io.ReadFull(c, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		if h[0]&0x0f == 8 && n >= 2 {
			return int(binary.BigEndian.Uint16(body))
		}
	}
}

// Revocations published while a gateway was away from NATS are read from the
// stream when it is back: the revoked session is closed with 4004, not
// resumable; another token's session stays.
func TestRevocationsCaughtUpAfterReconnect(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t, ghnats.Topology{})
	nc, js := n.ConnectAs(t, ghnats.RoleGateway)
	_, apiJS := n.ConnectAs(t, ghnats.RoleAPI)
	ctx := context.Background()
	stream, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	const user = guildhall.Snowflake(42)
	revoked, revokedConn := pipeSession(t, user, "hash-a")
	kept, _ := pipeSession(t, user, "hash-b")
	w, err := newRevocationWatcher(nc, stream, fixedSessions{revoked, kept}, func(int) {}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w.close() // away: the subscription hears nothing

	data, _ := json.Marshal(guildhall.TokenRevocation{UserID: user, Hashes: []string{"hash-a"}})
	m := natsgo.NewMsg(ghnats.RevocationInSubject(uint64(user)))
	m.Data = data
	if _, err := apiJS.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	w.reconnected()
	if code := closeCode(t, revokedConn); code != CloseAuthenticationFailed {
		t.Fatalf("revoked session closed with %d; want %d", code, CloseAuthenticationFailed)
	}
	if revoked.resumable.Load() {
		t.Fatal("the revoked session is still resumable")
	}
	if !kept.resumable.Load() {
		t.Fatal("the other token's session was touched")
	}
}
