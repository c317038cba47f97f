package gateway

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"strconv"
	"sync/atomic"

	"github.com/guildhall/guildhall/gateway/etf"
)

// frame is one outgoing payload, framed for the WebSocket once and shared by every
// session it goes to: the fan-out path builds a frame per event, never per recipient.
type frame struct {
	// wire is the complete server-to-client WebSocket frame: header and payload.
	// Server frames are not masked, so every recipient gets the same bytes.
	wire []byte
	// payload is wire without the header (the JSON), for sessions that need to
	// re-encode it (zlib-stream transport compression).
	payload []byte
	// closeAfter makes the writer close the connection once this frame is written.
	closeAfter bool
	// data: a gateway payload (JSON, or ETF in an etf variant), not a WebSocket
	// control frame; transport compression and the encoding apply to it.
	data bool
	// dispatch: op 0, to which payload compression applies.
	dispatch bool
	// etf is the same payload in ETF for encoding=etf sessions, built by the
	// first such recipient and shared by the others (etfFrame).
	etf atomic.Pointer[frame]
	// zlib is the payload as its own zlib stream for sessions that asked for
	// payload compression, built and shared the same way (zlibFrame).
	zlib atomic.Pointer[frame]
}

const (
	wsOpText  = 0x1
	wsOpBin   = 0x2
	wsOpClose = 0x8
	wsOpPong  = 0xA
	wsFin     = 0x80
	maxHeader = 10
)

// frameBuf starts a buffer for a frame whose payload is about n bytes: room for the
// longest header first, so the header can be written in front of the payload later
// without copying it.
func frameBuf(n int) []byte {
	b := make([]byte, maxHeader, maxHeader+n)
	return b
}

// finishFrame writes the header for the payload in b[maxHeader:] and returns the frame.
func finishFrame(b []byte, op byte) *frame {
	n := len(b) - maxHeader
	var h int
	switch {
	case n <= 125:
		h = 2
		b[maxHeader-2] = wsFin | op
		b[maxHeader-1] = byte(n)
	case n <= 65535:
		h = 4
		b[maxHeader-4] = wsFin | op
		b[maxHeader-3] = 126
		binary.BigEndian.PutUint16(b[maxHeader-2:], uint16(n))
	default:
		h = 10
		b[0] = wsFin | op
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	return &frame{wire: b[maxHeader-h:], payload: b[maxHeader:]}
}

// dispatchFrame frames {"op":0,"t":T,"s":S,"d":D} where d is already JSON.
func dispatchFrame(t string, s uint64, d []byte) *frame {
	b := frameBuf(len(d) + len(t) + 40)
	b = append(b, `{"op":0,"t":"`...)
	b = append(b, t...)
	b = append(b, `","s":`...)
	b = strconv.AppendUint(b, s, 10)
	b = append(b, `,"d":`...)
	b = append(b, d...)
	b = append(b, '}')
	f := finishFrame(b, wsOpText)
	f.data, f.dispatch = true, true
	return f
}

// opFrame frames {"op":OP,"d":D} for payloads that are not dispatches.
func opFrame(op int, d []byte) *frame {
	b := frameBuf(len(d) + 20)
	b = append(b, `{"op":`...)
	b = strconv.AppendInt(b, int64(op), 10)
	b = append(b, `,"d":`...)
	b = append(b, d...)
	b = append(b, '}')
	f := finishFrame(b, wsOpText)
	f.data = true
	return f
}

// etfFrame is f's payload in ETF as a binary frame, built once per frame
// whoever asks first (several fan-out parts may race to build it: one result is
// kept); nil if f is not a payload or its JSON does not convert (then an ETF
// session gets nothing rather than JSON it cannot read).
func (f *frame) etfFrame() *frame {
	if e := f.etf.Load(); e != nil {
		return e.orNil()
	}
	e := noETF
	if f.data {
		b := frameBuf(len(f.payload))
		if out, err := etf.Encode(b, f.payload); err == nil {
			e = finishFrame(out, wsOpBin)
			e.data, e.dispatch = true, f.dispatch
		}
	}
	if !f.etf.CompareAndSwap(nil, e) {
		e = f.etf.Load()
	}
	return e.orNil()
}

// zlibFrame is f's payload compressed on its own (payload compression, IDENTIFY
// compress: true) as a binary frame, built once per frame whoever asks first.
func (f *frame) zlibFrame() *frame {
	if z := f.zlib.Load(); z != nil {
		return z
	}
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	_, _ = zw.Write(f.payload)
	_ = zw.Close()
	out := frameBuf(b.Len())
	out = append(out, b.Bytes()...)
	z := finishFrame(out, wsOpBin)
	z.data, z.dispatch = true, f.dispatch
	if !f.zlib.CompareAndSwap(nil, z) {
		z = f.zlib.Load()
	}
	return z
}

// noETF marks a frame with no ETF variant.
var noETF = &frame{}

func (f *frame) orNil() *frame {
	if f == noETF {
		return nil
	}
	return f
}

// closeFrame is a WebSocket close frame with a code and a reason; the writer closes
// the connection after it.
func closeFrame(code int, reason string) *frame {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	b := frameBuf(2 + len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	b = append(b, reason...)
	f := finishFrame(b, wsOpClose)
	f.closeAfter = true
	return f
}

// pongFrame answers a WebSocket ping.
func pongFrame(payload []byte) *frame {
	b := frameBuf(len(payload))
	b = append(b, payload...)
	return finishFrame(b, wsOpPong)
}

// heartbeatACK is shared by every session: it never changes.
var heartbeatACK = opFrame(OpHeartbeatACK, []byte("null"))
