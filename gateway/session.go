package gateway

import (
	"net"
	"sync/atomic"

	guildhall "github.com/guildhall/guildhall"
)

// Session is one client connection and, once identified, one gateway session:
// who it is, its outbox (the only way to its socket), and its memberships in the
// pump's rooms.
type Session struct {
	out outbox

	// Set by ServeHTTP, read by OnOpen.
	resumeURL   string
	badVersion  bool
	badEncoding bool
	etf         bool // encoding=etf: the client's payloads are ETF too

	// The connection's limits (limits.go).
	lim connLimits

	// Set once by identify or resume, before the session joins any room.
	id        string
	tokenHash string // guildhall.TokenHash of its token: revocations name it
	user      guildhall.User
	intents   guildhall.Intents // what the session receives (dispatch.frameFor)
	shard     shardSpec         // which guilds it receives (shard.go)
	// start is the sequence the session started at (READY's s), which a resume
	// keeps: no resume replays from before it.
	start      uint64
	identified atomic.Bool
	resumable  atomic.Bool
	// closing: this side sent a close frame; the client's answer to it (often
	// 1000) is no request of its own to end the session.
	closing atomic.Bool

	// reg is the session's registry entry as this connection last wrote it
	// (directory.go).
	reg sessionEntry

	// Owned by the pump goroutine.
	guilds map[guildhall.Snowflake]*membership
}

// membership is what the pump knows of a session's place in one guild.
type membership struct {
	roles   []guildhall.Snowflake
	roleKey string // the sorted role ids: sessions with equal keys see the same channels
	index   int    // position in room.members
	// held: the room holds the session's live frames while it catches up (the
	// session's outbox has a hold of it to release).
	held bool
}

func newSession(conn net.Conn, format wireFormat, cfg outboxConfig) *Session {
	s := new(Session)
	s.out.init(conn, format, cfg)
	return s
}

// send queues a frame to the session (held back while a resume replays).
func (s *Session) send(f *frame) { s.out.send(f) }

// close queues a close frame with code; the connection closes once it is written.
func (s *Session) close(code int, reason string) {
	s.closing.Store(true)
	s.out.sendUnheld(closeFrame(code, reason))
}
