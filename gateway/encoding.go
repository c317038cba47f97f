package gateway

import (
	"bytes"
	"compress/flate"
	"net/url"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// What a connection asks for in its URL (Discord's query string): the encoding
// of payloads (encoding=json, the default, or etf) and transport compression
// (compress=zlib-stream or zstd-stream). Payload compression (IDENTIFY's
// compress: true) is separate: outbox.compressPayloads.
//
// The fan-out frames each event once per encoding and payload compression in
// use: the JSON frame, its ETF variant and its compressed variant, each built by
// the first recipient that needs it (frame.etfFrame, frame.zlibFrame). Transport
// compression is a stream per connection (that is what the client decompresses
// with), so it is applied by each session's writer.

// transport is a connection's transport compression.
type transport uint8

const (
	transportNone transport = iota
	transportZlib           // compress=zlib-stream
	transportZstd           // compress=zstd-stream
)

// wireFormat is how one connection's payloads are encoded and compressed.
type wireFormat struct {
	etf       bool
	transport transport
}

// parseWireFormat reads the query of a gateway URL; false for an encoding that
// is neither json nor etf (close 4002). An unknown compress value means none,
// as on Discord.
func parseWireFormat(q url.Values) (wireFormat, bool) {
	var f wireFormat
	switch q.Get("encoding") {
	case "", "json":
	case "etf":
		f.etf = true
	default:
		return f, false
	}
	switch q.Get("compress") {
	case "zlib-stream":
		f.transport = transportZlib
	case "zstd-stream":
		f.transport = transportZstd
	}
	return f, true
}

// streamCompressor is a connection's transport compression context: each
// payload goes through it in order, and what it returns is one WebSocket message
// that the client can decompress on its own with everything before it.
type streamCompressor interface {
	compress(payload []byte) []byte // valid until the next call
}

// zlibStream is compress=zlib-stream: one zlib stream per connection, each
// message ending with a sync flush (00 00 ff ff), as Discord's. The zlib header
// goes out once, in the first message; the deflate blocks come from a pooled
// compressor while the connection is busy. An idle connection gives its
// compressor back (park, about 800 KiB with Go's flate): the next message's
// blocks come from a fresh one, which refers to nothing sent before, so the
// client's one inflater reads on as ever (a deflate stream may start a block
// from scratch anywhere; only the first message after an idle period compresses
// a little worse). The stream is never ended: Discord's is not either, so no
// Adler-32 trailer is owed.
type zlibStream struct {
	buf     bytes.Buffer
	w       *flate.Writer // nil while parked
	started bool          // the header went out
}

// zlibHeader opens a zlib stream: deflate with a 32 KiB window (0x78) at the
// default level, with its check bits (0x9c), as compress/zlib writes it.
var zlibHeader = []byte{0x78, 0x9c}

// zlibCompressors are the deflate compressors of the zlib-stream connections
// sending now.
var zlibCompressors = sync.Pool{New: func() any {
	w, err := flate.NewWriter(nil, flate.DefaultCompression)
	if err != nil {
		panic("gateway: flate level: " + err.Error()) // a fixed level: a bug
	}
	return w
}}

func (z *zlibStream) compress(p []byte) []byte {
	z.buf.Reset()
	if !z.started {
		z.buf.Write(zlibHeader)
		z.started = true
	}
	if z.w == nil {
		z.w = zlibCompressors.Get().(*flate.Writer)
		z.w.Reset(&z.buf)
	}
	_, _ = z.w.Write(p)
	_ = z.w.Flush() // Z_SYNC_FLUSH
	return z.buf.Bytes()
}

// park gives the compressor back to the pool; the stream goes on with another
// one at the next message.
func (z *zlibStream) park() {
	if z.w == nil {
		return
	}
	z.w.Reset(nil)
	zlibCompressors.Put(z.w)
	z.w = nil
	z.buf = bytes.Buffer{} // an idle connection keeps no buffer either
}

// zstdWindow is the window of a connection's zstd stream. Most of the gain is in
// the keys and shapes that repeat from one payload to the next, which a small
// window keeps.
const zstdWindow = 32 << 10

// streamIdleAfter is how long a zlib-stream or zstd-stream connection may send
// nothing before its compressor goes back to the pool (a zstd encoder holds
// about 480 KiB, mostly its match table, a flate compressor about 800 KiB: idle
// connections must not each keep one). A variable for tests.
var streamIdleAfter = 10 * time.Second

// zstdEncoders are the encoders of the connections sending now.
var zstdEncoders = sync.Pool{New: func() any {
	// No goroutines of its own, the fastest level, a small window, its
	// lower-memory mode, no checksum (the WebSocket's TCP has one).
	w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
	if err != nil {
		panic("gateway: zstd options: " + err.Error()) // fixed options: a bug
	}
	return w
}}

// zstdStream is compress=zstd-stream: one zstd stream per connection, read by
// the client with one decompression context for the connection's life. Each
// message is the blocks of one payload, flushed so the client can decompress it
// at once; while the connection is busy they continue one frame (Discord's
// documentation: "each websocket message corresponds to a single gateway message,
// but does not end a zstd frame"), so later payloads compress against earlier
// ones. An idle connection's frame is ended and its encoder pooled (park); the
// frame's last bytes go out in front of the next payload, whose blocks start a
// new frame: a zstd stream may hold any number of frames back to back, and the
// client's decoder reads on from one to the next with nothing else to do.
type zstdStream struct {
	buf  bytes.Buffer
	w    *zstd.Encoder // nil while parked
	tail []byte        // the end of the parked frame, owed to the client
}

func (z *zstdStream) compress(p []byte) []byte {
	z.buf.Reset()
	if z.w == nil {
		z.buf.Write(z.tail)
		z.tail = z.tail[:0]
		z.w = zstdEncoders.Get().(*zstd.Encoder)
		z.w.Reset(&z.buf)
	}
	_, _ = z.w.Write(p)
	_ = z.w.Flush()
	return z.buf.Bytes()
}

// park ends the frame, keeps its last bytes for the next message and gives the
// encoder back to the pool.
func (z *zstdStream) park() {
	if z.w == nil {
		return
	}
	z.buf.Reset()
	_ = z.w.Close()
	z.tail = append(z.tail[:0], z.buf.Bytes()...)
	z.w.Reset(nil)
	zstdEncoders.Put(z.w)
	z.w = nil
	z.buf = bytes.Buffer{} // an idle connection keeps no buffer either
}

// parker is a stream compressor whose memory an idle connection gives back.
type parker interface {
	park()
}

var (
	_ parker = (*zstdStream)(nil)
	_ parker = (*zlibStream)(nil)
)

func newStreamCompressor(t transport) streamCompressor {
	switch t {
	case transportZlib:
		return new(zlibStream)
	case transportZstd:
		return new(zstdStream)
	}
	return nil
}
