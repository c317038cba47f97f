package gateway

import (
	"io"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Benchmarks of the fan-out path: one event handed to every session of a room and
// written to each session's socket. They build the pump's structures directly (no
// NATS, no WebSocket handshake) so that what is timed is the pump's loop, the
// outboxes, the writer goroutines and the writes. (They keep their names, Hub…,
// from when the pump was called the hub, so that results compare across versions.)
//
//	go test -run '^$' -bench 'Hub' -benchmem ./gateway/
//
// ns/op is per event; ns/recipient divides by the room size. allocs/op counts every
// allocation for one event to every recipient, writers included.

// sinkConn is a net.Conn that counts what is written to it and throws it away.
type sinkConn struct {
	writes *atomic.Int64
}

func (c sinkConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c sinkConn) Write(b []byte) (int, error)      { c.writes.Add(1); return len(b), nil }
func (c sinkConn) Close() error                     { return nil }
func (c sinkConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c sinkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c sinkConn) SetDeadline(time.Time) error      { return nil }
func (c sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (c sinkConn) SetWriteDeadline(time.Time) error { return nil }

const benchGuild = guildhall.Snowflake(1000)
const benchChannel = guildhall.Snowflake(1001)

// benchRoom builds a pump with one room of the sessions on conns, in a guild
// where @everyone may view its one text channel.
func benchRoom(conns []net.Conn, cfg Config) (*pump, *room) {
	return benchRoomFormats(conns, cfg, func(int) wireFormat { return wireFormat{} })
}

// benchRoomFormats is benchRoom with session i's encoding and compression
// format(i).
func benchRoomFormats(conns []net.Conn, cfg Config, format func(i int) wireFormat) (*pump, *room) {
	cfg = cfg.withDefaults()
	// The pump's maps and nothing else: no NATS subscription is taken.
	p := &pump{rooms: map[guildhall.Snowflake]*room{}, users: map[guildhall.Snowflake]*userRoom{}, metrics: cfg.Metrics, log: cfg.Logger}
	state := guildhall.GuildState{
		Guild:    guildhall.Guild{ID: benchGuild, OwnerID: 1},
		Channels: []guildhall.Channel{{ID: benchChannel, GuildID: benchGuild, Type: guildhall.ChannelTypeGuildText, Name: "general"}},
		Roles:    []guildhall.Role{{ID: benchGuild, Name: "@everyone", Permissions: guildhall.PermViewChannel}},
	}
	r := &room{id: benchGuild, state: state}
	p.rooms[r.id] = r
	for i, c := range conns {
		s := newSession(c, format(i), cfg.outbox())
		s.user = guildhall.User{ID: guildhall.Snowflake(10 + i)}
		s.intents = guildhall.IntentsAll
		m := &membership{roles: nil}
		s.guilds = map[guildhall.Snowflake]*membership{r.id: m}
		r.add(s, m, 0)
	}
	return p, r
}

func benchEvent() guildhall.Event {
	d := []byte(`{"id":"1300000000000000000","channel_id":"1001","guild_id":"1000","author":{"id":"12","username":"poster","discriminator":"0","global_name":null,"avatar":null,"bot":true},"content":"ghb:1:1700000000000000000: the quick brown fox jumps over the lazy dog","timestamp":"2026-01-01T00:00:00.000Z","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],"embeds":[],"pinned":false,"type":0}`)
	// Two mentioned users, as the api lists them (Event.Mentions): the fan-out
	// with mention parsing on.
	return guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: benchGuild, ChannelID: benchChannel, Data: d,
		Mentions: []guildhall.Snowflake{12, 13}}
}

func waitFor(n *atomic.Int64, want int64) {
	for n.Load() < want {
		runtime.Gosched()
	}
}

// BenchmarkHubDeliverSink: deliver one framed event to N sessions whose sockets
// discard, and wait until every writer has written it.
func BenchmarkHubDeliverSink(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var writes atomic.Int64
			conns := sinkConns(n, &writes)
			h, r := benchRoom(conns, Config{})
			ev := benchEvent()
			var want int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f := newDispatch(ev, uint64(i+1))
				h.deliverNow(r, ev, f)
				want += int64(n)
				waitFor(&writes, want)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
		})
	}
}

// BenchmarkHubDeliverOnly: the pump's side alone: hand the frame to N outboxes (the
// writers run concurrently and are not waited for, except between iterations).
func BenchmarkHubDeliverOnly(b *testing.B) {
	const n = 10000
	var writes atomic.Int64
	conns := sinkConns(n, &writes)
	h, r := benchRoom(conns, Config{})
	ev := benchEvent()
	f := newDispatch(ev, 1)
	var want int64
	b.ReportAllocs()
	var inDeliver time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		h.deliverNow(r, ev, f)
		inDeliver += time.Since(t0)
		want += n
		b.StopTimer()
		waitFor(&writes, want)
		b.StartTimer()
	}
	b.ReportMetric(float64(inDeliver.Nanoseconds())/float64(b.N)/n, "ns/recipient")
}

// BenchmarkHubDeliverLoopback: deliver to N sessions over real loopback TCP
// sockets, each drained by a reader goroutine; one event is done when every
// reader has read it. N stays well under the open-file limit (two fds a session).
//
// direct: frames written by the pump itself when nothing is pending (the default);
// writer: every frame through the session's writer goroutine (NoDirectWrites).
func BenchmarkHubDeliverLoopback(b *testing.B) {
	for _, mode := range []string{"direct", "writer"} {
		for _, n := range []int{1000, 5000} {
			b.Run(mode+"/"+strconv.Itoa(n), func(b *testing.B) { benchLoopback(b, n, Config{NoDirectWrites: mode == "writer"}) })
		}
	}
}

// BenchmarkHubDeliverBatchLoopback: batches of k events (what the pump delivers
// together when k messages were waiting) to 1,000 sessions over loopback TCP:
// ns and CPU per frame fall as k rises (k=1 is the path at low load).
func BenchmarkHubDeliverBatchLoopback(b *testing.B) {
	for _, k := range []int{1, 4, 16, 64} {
		b.Run("events="+strconv.Itoa(k), func(b *testing.B) { benchLoopbackBatch(b, 1000, k, Config{}) })
	}
}

func benchLoopback(b *testing.B, n int, cfg Config) { benchLoopbackBatch(b, n, 1, cfg) }

func benchLoopbackBatch(b *testing.B, n, k int, cfg Config) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ev := benchEvent()
	frameLen := int64(len(dispatchFrame(ev.Type, 1, ev.Data).wire))
	var read atomic.Int64
	conns := make([]net.Conn, n)
	var clients []net.Conn
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = sc
		go func() {
			buf := make([]byte, 4096)
			for {
				k, err := c.Read(buf)
				read.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		for i := range conns {
			conns[i].Close()
			clients[i].Close()
		}
	}()
	h, r := benchRoom(conns, cfg)
	var want int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		for range k {
			// Same length every time: s stays at one digit.
			h.deliver(r, ev, newDispatch(ev, 1), nil, false)
		}
		h.flush()
		want += int64(n*k) * frameLen
		waitFor(&read, want)
	}
	// Per frame: one recipient's copy of one event.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*k), "ns/recipient")
	// CPU, the readers' included (the same in both modes): on a shared machine
	// this moves less than wall time does.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N)/float64(n*k), "cpu-ns/recipient")
}

// BenchmarkHubHandle: one message as it comes from NATS (subject, stream headers,
// encoded event) through the pump: decode, order check, frame once, deliver to
// 10,000 discarding sessions.
func BenchmarkHubHandle(b *testing.B) {
	const n = 10000
	var writes atomic.Int64
	conns := sinkConns(n, &writes)
	h, _ := benchRoom(conns, Config{})
	ev := benchEvent()
	proto := ghnats.EventMsg(ev, "bench")
	subject := ghnats.GuildEventSubject(uint64(benchGuild))
	var want int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := &natsgo.Msg{Subject: subject, Header: natsgo.Header{}, Data: proto.Data}
		for k, v := range proto.Header {
			m.Header[k] = v
		}
		// What the stream's RePublish adds (the pump believes nothing else).
		m.Header.Set(jetstream.StreamHeader, ghnats.StreamEvents)
		m.Header.Set(jetstream.SubjectHeader, proto.Subject)
		m.Header.Set(jetstream.SequenceHeader, strconv.Itoa(i+1))
		m.Header.Set(jetstream.LastSequenceHeader, strconv.Itoa(i))
		h.burst(m)
		want += n
		waitFor(&writes, want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/recipient")
}

// BenchmarkDispatchFrame: encoding one event's frame, done once per event.
func BenchmarkDispatchFrame(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = dispatchFrame(ev.Type, uint64(i), ev.Data)
	}
}

// sinkConns returns n connections that discard what is written and count it.
func sinkConns(n int, writes *atomic.Int64) []net.Conn {
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = sinkConn{writes: writes}
	}
	return conns
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
