package gateway

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway/etf"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/klauspost/compress/zstd"
	natsgo "github.com/nats-io/nats.go"
)

// A batch reaches each session as its events would have one by one: in its
// encoding (ETF), through its transport compression (zlib-stream, zstd-stream)
// or payload compression, and without content for a session lacking
// MESSAGE_CONTENT unless the message mentions its user, event by event.
func TestBatchInEveryEncoding(t *testing.T) {
	type kind struct {
		format    wireFormat
		payload   bool // IDENTIFY compress: true
		content   bool // MESSAGE_CONTENT
		mentioned bool // mentioned by the even messages
	}
	kinds := []kind{
		{content: true}, // the reference
		{format: wireFormat{etf: true}, content: true},
		{format: wireFormat{transport: transportZstd}, content: true},
		{mentioned: true},
		{}, // never mentioned: every message without content
		{payload: true, content: true},
		{format: wireFormat{transport: transportZlib}, mentioned: true},
		{format: wireFormat{etf: true}, mentioned: true},
	}
	const events = 10
	cfg := Config{Metrics: NewMetrics(nil)}
	servers, clients := loopbackPairs(t, len(kinds))
	p, r := benchRoomFormats(servers, cfg, func(i int) wireFormat { return kinds[i].format })
	var mentions []guildhall.Snowflake
	for _, rm := range r.members {
		k := kinds[rm.s.user.ID-10]
		rm.s.out.compressPayloads(k.payload)
		if !k.content {
			rm.s.intents &^= guildhall.IntentMessageContent
		}
		if k.mentioned {
			mentions = append(mentions, rm.s.user.ID)
		}
	}
	p.in = make(chan *natsgo.Msg, 64)
	for i := 1; i <= events; i++ {
		ev := messageEvent(i, benchChannel)
		ev.Mentions = nil
		if i%2 == 0 {
			ev.Mentions = mentions
		}
		p.in <- streamMsg(ev, uint64(i), uint64(i-1))
	}
	p.burst(<-p.in)

	for i, k := range kinds {
		got := readPayloads(t, clients[i], k.format, k.payload, events)
		for n, d := range got {
			seq := n + 1
			want := fmt.Sprintf("m%d", seq)
			if !k.content && !(k.mentioned && seq%2 == 0) {
				want = ""
			}
			if d.T != guildhall.EventMessageCreate || d.S != uint64(seq) || d.D.ID != fmt.Sprint(2000+seq) || d.D.Content != want {
				t.Errorf("session %d (%+v) frame %d: %s s=%d id=%s content %q; want MESSAGE_CREATE s=%d id=%d content %q",
					i, k, seq, d.T, d.S, d.D.ID, d.D.Content, seq, 2000+seq, want)
			}
		}
	}
	frames, writes := counter(t, cfg.Metrics.FramesWritten), counter(t, cfg.Metrics.SocketWrites)
	if frames != float64(len(kinds)*events) || writes != float64(len(kinds)) {
		t.Fatalf("%v frames in %v writes; want %d frames in %d writes (one per session)", frames, writes, len(kinds)*events, len(kinds))
	}
}

// A DM's typing, framed with the watermark, leaves after the room's events the
// pump had planned before it: a session's s never goes backwards.
func TestBatchFlushedBeforeDMTyping(t *testing.T) {
	cfg := Config{Metrics: NewMetrics(nil)}
	servers, clients := loopbackPairs(t, 1)
	p, r := benchRoom(servers, cfg)
	s := r.members[0].s
	p.users[s.user.ID] = &userRoom{sessions: []*Session{s}}
	p.in = make(chan *natsgo.Msg, 64)
	const events = 3
	for i := 1; i <= events; i++ {
		p.in <- streamMsg(messageEvent(i, benchChannel), uint64(i), uint64(i-1))
	}
	typing := guildhall.Event{Type: guildhall.EventTypingStart, UserID: 77,
		Data: []byte(`{"channel_id":"5000","user_id":"77","timestamp":1700000000}`)}
	m := ghnats.EventMsg(typing, "test")
	m.Subject = ghnats.EphemeralUserSubject(uint64(s.user.ID))
	p.in <- m
	p.burst(<-p.in)

	got := readDispatches(t, clients[0], events+1)
	for i, d := range got {
		if i > 0 && d.S < got[i-1].S {
			t.Fatalf("frame %d (%s) has s=%d after s=%d", i+1, d.T, d.S, got[i-1].S)
		}
	}
	if last := got[events]; last.T != guildhall.EventTypingStart {
		t.Fatalf("last frame is %s; want the DM's TYPING_START after the planned messages", last.T)
	}
}

// decodedMessage is a MESSAGE_CREATE as a client decoded it.
type decodedMessage struct {
	T string `json:"t"`
	S uint64 `json:"s"`
	D struct {
		ID      string `json:"id"`
		Content string `json:"content"`
	} `json:"d"`
}

// readPayloads reads n dispatches from c and decodes them as a client with
// this format would.
func readPayloads(t *testing.T, c io.Reader, format wireFormat, payloadZlib bool, n int) []decodedMessage {
	t.Helper()
	if nc, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	}
	br := bufio.NewReader(c)
	var stream bytes.Buffer // transport compression: the messages are one stream
	out := make([]decodedMessage, 0, n)
	for range n {
		p, err := readFrame(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		switch {
		case format.transport != transportNone:
			stream.Write(p)
			continue
		case format.etf:
			if p, err = etf.Decode(p); err != nil {
				t.Fatalf("frame %d is no ETF term: %v", len(out)+1, err)
			}
		case payloadZlib:
			zr, err := zlib.NewReader(bytes.NewReader(p))
			if err != nil {
				t.Fatalf("frame %d is no zlib stream: %v", len(out)+1, err)
			}
			if p, err = io.ReadAll(zr); err != nil {
				t.Fatalf("frame %d does not inflate: %v", len(out)+1, err)
			}
		}
		var d decodedMessage
		if err := json.Unmarshal(p, &d); err != nil {
			t.Fatalf("frame %d: %v: %q", len(out)+1, err, p)
		}
		out = append(out, d)
	}
	if format.transport == transportNone {
		return out
	}
	// The stream is not ended (the connection goes on): decode what it flushed.
	var plain io.Reader
	switch format.transport {
	case transportZlib:
		zr, err := zlib.NewReader(&stream)
		if err != nil {
			t.Fatal(err)
		}
		plain = zr
	case transportZstd:
		zr, err := zstd.NewReader(&stream, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		plain = zr
	}
	dec := json.NewDecoder(plain)
	for range n {
		var d decodedMessage
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("after %d payloads of the stream: %v", len(out), err)
		}
		out = append(out, d)
	}
	return out
}
