package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/guildhall/guildhall/gateway/etf"
	"github.com/lxzan/gws"
)

// handler is one connection's life on gws: HELLO on open, the read deadline that
// catches zombies, each client payload routed by opcode, and what a closed
// connection leaves behind.
type handler struct {
	gws.BuiltinEventHandler
	g *Gateway
}

func sessionOf(c *gws.Conn) *Session {
	v, _ := c.Session().Load("s")
	s, _ := v.(*Session)
	return s
}

func (h *handler) OnOpen(c *gws.Conn) {
	s := sessionOf(c)
	h.g.metrics.Sessions.Inc()
	h.g.sessions.opened(s)
	if s.badVersion {
		s.close(CloseInvalidAPIVersion, "Invalid API version")
		return
	}
	if s.badEncoding {
		s.close(CloseDecodeError, "Invalid encoding: json or etf")
		return
	}
	d, _ := json.Marshal(helloData{HeartbeatInterval: h.g.cfg.HeartbeatInterval.Milliseconds()})
	s.send(opFrame(OpHello, d))
	h.g.armIdentifyDeadline(s)
	_ = c.SetReadDeadline(time.Now().Add(h.g.cfg.HeartbeatInterval + h.g.cfg.HeartbeatGrace))
}

func (h *handler) OnPing(c *gws.Conn, payload []byte) { sessionOf(c).send(pongFrame(payload)) }

func (h *handler) OnClose(c *gws.Conn, err error) {
	s := sessionOf(c)
	h.g.metrics.Sessions.Dec()
	g := h.g
	g.sessions.closed(s)
	g.addrs.release(s.lim.addr)
	stopIdentifyDeadline(s)
	s.out.close()
	if !s.identified.Load() {
		return
	}
	g.pump.do(func() { g.pump.leave(s) })
	g.presence.ended(s)
	g.members.ended(s)
	// A client that closes with 1000 or 1001 ends its session, as on Discord
	// (not when it only answers a close this side sent: "try again" keeps the
	// session); otherwise it may resume within the window from now.
	var ce *gws.CloseError
	if errors.As(err, &ce) && (ce.Code == 1000 || ce.Code == 1001) && !s.resumable.Load() && !s.closing.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.APITimeout)
		g.sessions.end(ctx, s)
		cancel()
		return
	}
	g.sessions.left(s)
}

func (h *handler) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	s := sessionOf(c)
	g := h.g
	b := msg.Bytes()
	if len(b) > MaxClientPayload {
		s.close(CloseDecodeError, "Payload too large")
		return
	}
	if !g.allowPayload(s, time.Now()) {
		g.metrics.EdgeCloses.WithLabelValues("payload_rate").Inc()
		s.close(CloseRateLimited, "You are sending payloads too quickly")
		return
	}
	want := gws.OpcodeText
	if s.etf {
		// An ETF client's term, read as the JSON it stands for.
		want = gws.OpcodeBinary
		if msg.Opcode == want {
			var err error
			if b, err = etf.DecodeClient(b); err != nil {
				s.close(CloseDecodeError, "Error while decoding payload")
				return
			}
		}
	}
	var f clientFrame
	if msg.Opcode != want || json.Unmarshal(b, &f) != nil || f.Op == nil {
		s.close(CloseDecodeError, "Error while decoding payload")
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(g.cfg.HeartbeatInterval + g.cfg.HeartbeatGrace))
	switch *f.Op {
	case OpHeartbeat:
		s.send(heartbeatACK)
	case OpIdentify:
		if s.identified.Load() {
			s.close(CloseAlreadyAuthenticated, "You sent more than one identify payload")
			return
		}
		s.lim.authing.Store(true)
		g.identify(s, f.D)
		s.lim.authing.Store(false)
	case OpResume:
		if s.identified.Load() {
			s.close(CloseAlreadyAuthenticated, "Already authenticated")
			return
		}
		s.lim.authing.Store(true)
		g.resume(s, f.D)
		s.lim.authing.Store(false)
	case OpPresenceUpdate, OpVoiceStateUpdate, OpRequestGuildMembers:
		if !s.identified.Load() {
			s.close(CloseNotAuthenticated, "Not authenticated")
			return
		}
		switch *f.Op {
		case OpPresenceUpdate:
			if err := g.presence.set(s, f.D); err != nil {
				s.close(CloseDecodeError, "Invalid presence update")
			}
		case OpRequestGuildMembers:
			g.members.request(s, f.D)
		}
	default:
		s.close(CloseUnknownOpcode, "Unknown opcode")
	}
}
