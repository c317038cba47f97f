package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

// The pump's batching, driven through its real entry point (burst, with
// messages shaped as the stream re-publishes them) and real loopback sockets.

// streamMsg is ev as the pump receives it from NATS: re-published by the EVENTS
// stream with sequence seq, the guild's previous event at last.
func streamMsg(ev guildhall.Event, seq, last uint64) *natsgo.Msg {
	proto := ghnats.EventMsg(ev, "test")
	m := &natsgo.Msg{Header: natsgo.Header{}, Data: proto.Data}
	for k, v := range proto.Header {
		m.Header[k] = v
	}
	if ev.GuildID != 0 {
		m.Subject = ghnats.GuildEventSubject(uint64(ev.GuildID))
	}
	m.Header.Set(jetstream.StreamHeader, ghnats.StreamEvents)
	m.Header.Set(jetstream.SubjectHeader, proto.Subject)
	m.Header.Set(jetstream.SequenceHeader, strconv.FormatUint(seq, 10))
	m.Header.Set(jetstream.LastSequenceHeader, strconv.FormatUint(last, 10))
	return m
}

// received is what a test client read: each dispatch's type, s and d.
type received struct {
	T string          `json:"t"`
	S uint64          `json:"s"`
	D json.RawMessage `json:"d"`
}

// readDispatches reads n frames from c.
func readDispatches(t *testing.T, c net.Conn, n int) []received {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	out := make([]received, 0, n)
	for range n {
		p, err := readFrame(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		var d received
		if err := json.Unmarshal(p, &d); err != nil {
			t.Fatalf("frame %d: %v", len(out)+1, err)
		}
		out = append(out, d)
	}
	return out
}

// expectNothingMore fails if c has anything more to read.
func expectNothingMore(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var b [1]byte
	if n, _ := c.Read(b[:]); n > 0 {
		t.Fatal("more frames than expected")
	}
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func messageEvent(i int, channel guildhall.Snowflake) guildhall.Event {
	ev := benchEvent()
	ev.ChannelID = channel
	ev.Data = []byte(fmt.Sprintf(`{"id":"%d","channel_id":"%d","guild_id":"%d","content":"m%d"}`, 2000+i, channel, ev.GuildID, i))
	return ev
}

// Ten messages waiting when the pump comes to its inbox leave as one write per
// session, each session's frames complete and in stream order; one message at a
// time is one write per frame, sent at once.
func TestBatchOnlyUnderLoad(t *testing.T) {
	const sessions, events = 20, 10
	cfg := Config{Metrics: NewMetrics(nil)}
	servers, clients := loopbackPairs(t, sessions)
	p, _ := benchRoom(servers, cfg)
	p.in = make(chan *natsgo.Msg, 64)
	for i := 1; i <= events; i++ {
		p.in <- streamMsg(messageEvent(i, benchChannel), uint64(i), uint64(i-1))
	}
	p.burst(<-p.in)
	for _, c := range clients {
		got := readDispatches(t, c, events)
		for i, d := range got {
			if d.S != uint64(i+1) || d.T != guildhall.EventMessageCreate {
				t.Fatalf("frame %d: %s s=%d; want MESSAGE_CREATE s=%d", i+1, d.T, d.S, i+1)
			}
		}
	}
	frames, writes := counter(t, cfg.Metrics.FramesWritten), counter(t, cfg.Metrics.SocketWrites)
	if frames != sessions*events || writes != sessions {
		t.Fatalf("under load: %v frames in %v writes; want %d frames in %d writes (one per session)", frames, writes, sessions*events, sessions)
	}

	// At low load each message is alone in the inbox: one frame, one write.
	for i := events + 1; i <= 2*events; i++ {
		p.in <- streamMsg(messageEvent(i, benchChannel), uint64(i), uint64(i-1))
		p.burst(<-p.in)
		for _, c := range clients {
			if d := readDispatches(t, c, 1)[0]; d.S != uint64(i) {
				t.Fatalf("got s=%d; want %d", d.S, i)
			}
		}
	}
	frames2, writes2 := counter(t, cfg.Metrics.FramesWritten)-frames, counter(t, cfg.Metrics.SocketWrites)-writes
	if frames2 != sessions*events || writes2 != frames2 {
		t.Fatalf("at low load: %v frames in %v writes; want %d in as many writes", frames2, writes2, sessions*events)
	}
}

// twoRooms builds a pump with guilds A and B: sessions[0] in both, sessions[1]
// in A only, sessions[2] in B only.
func twoRooms(t *testing.T, cfg Config) (*pump, []net.Conn) {
	t.Helper()
	servers, clients := loopbackPairs(t, 3)
	p, a := benchRoom(servers[:2], cfg)
	cfg = cfg.withDefaults()
	const guildB = benchGuild + 100
	b := &room{id: guildB, state: guildhall.GuildState{
		Guild:    guildhall.Guild{ID: guildB, OwnerID: 1},
		Channels: []guildhall.Channel{{ID: guildB + 1, GuildID: guildB, Type: guildhall.ChannelTypeGuildText}},
		Roles:    []guildhall.Role{{ID: guildB, Permissions: guildhall.PermViewChannel}},
	}}
	p.rooms[b.id] = b
	both := a.members[0].s
	m := &membership{}
	both.guilds[b.id] = m
	b.add(both, m, 0)
	only := newSession(servers[2], wireFormat{}, cfg.outbox())
	only.user = guildhall.User{ID: 99}
	only.intents = guildhall.IntentsAll
	m = &membership{}
	only.guilds = map[guildhall.Snowflake]*membership{b.id: m}
	b.add(only, m, 0)
	return p, clients
}

// Events of two rooms interleaved in the inbox: a session in both rooms gets
// every event once with s rising; those in one room get theirs. Consecutive
// events of a room still go out together.
func TestBatchKeepsStreamOrderAcrossRooms(t *testing.T) {
	cfg := Config{Metrics: NewMetrics(nil)}
	p, clients := twoRooms(t, cfg)
	const guildB = benchGuild + 100
	// A A B A A A B B A: seq 1..9.
	rooms := "AABAAABBA"
	p.in = make(chan *natsgo.Msg, 64)
	var lastA, lastB uint64
	wantA, wantB := []uint64{}, []uint64{}
	for i, c := range rooms {
		seq := uint64(i + 1)
		ev := messageEvent(i, benchChannel)
		last := &lastA
		if c == 'B' {
			ev.GuildID, ev.ChannelID = guildB, guildB+1
			last = &lastB
			wantB = append(wantB, seq)
		} else {
			wantA = append(wantA, seq)
		}
		p.in <- streamMsg(ev, seq, *last)
		*last = seq
	}
	p.burst(<-p.in)
	check := func(c net.Conn, want []uint64) {
		t.Helper()
		got := readDispatches(t, c, len(want))
		for i, d := range got {
			if d.S != want[i] {
				t.Fatalf("frame %d has s=%d; want %v in order", i+1, d.S, want)
			}
		}
		expectNothingMore(t, c)
	}
	check(clients[0], []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9})
	check(clients[1], wantA)
	check(clients[2], wantB)
	// Runs AA B AAA BB A: the session in both rooms gets 5 writes, A's other
	// session 3, B's 2.
	if frames, writes := counter(t, cfg.Metrics.FramesWritten), counter(t, cfg.Metrics.SocketWrites); frames != 9+6+3 || writes != 5+3+2 {
		t.Fatalf("%v frames in %v writes; want 18 in 10", frames, writes)
	}
}

// A batch ends before an event that changes the room: a member whose role is
// taken away still gets the restricted messages from before the change, and
// none after, and members without the role never see them.
func TestBatchVisibilityAtEachEvent(t *testing.T) {
	const staffRole, staffChannel = benchGuild + 10, benchGuild + 11
	cfg := Config{Metrics: NewMetrics(nil)}
	servers, clients := loopbackPairs(t, 2)
	p, r := benchRoom(servers, cfg)
	r.state.Roles = append(r.state.Roles, guildhall.Role{ID: staffRole, Name: "staff"})
	r.state.Channels = append(r.state.Channels, guildhall.Channel{
		ID: staffChannel, GuildID: benchGuild, Type: guildhall.ChannelTypeGuildText, Name: "staff",
		PermissionOverwrites: []guildhall.PermissionOverwrite{
			{ID: benchGuild, Type: guildhall.OverwriteRole, Deny: guildhall.PermViewChannel},
			{ID: staffRole, Type: guildhall.OverwriteRole, Allow: guildhall.PermViewChannel},
		},
	})
	staff := r.members[0]
	staff.m.roles, staff.m.roleKey = []guildhall.Snowflake{staffRole}, roleKey([]guildhall.Snowflake{staffRole})

	demote, _ := json.Marshal(guildhall.Member{User: staff.s.user, Roles: []guildhall.Snowflake{}})
	evs := []guildhall.Event{
		messageEvent(1, benchChannel),
		messageEvent(2, staffChannel),
		messageEvent(3, staffChannel),
		{Type: guildhall.EventGuildMemberUpdate, GuildID: benchGuild, Data: demote},
		messageEvent(5, staffChannel),
		messageEvent(6, benchChannel),
	}
	p.in = make(chan *natsgo.Msg, 64)
	for i, ev := range evs {
		p.in <- streamMsg(ev, uint64(i+1), uint64(i))
	}
	p.burst(<-p.in)
	seqs := func(c net.Conn, n int) []uint64 {
		var s []uint64
		for _, d := range readDispatches(t, c, n) {
			s = append(s, d.S)
		}
		expectNothingMore(t, c)
		return s
	}
	if got := seqs(clients[0], 5); fmt.Sprint(got) != "[1 2 3 4 6]" {
		t.Fatalf("the demoted member got s=%v; want [1 2 3 4 6]", got)
	}
	if got := seqs(clients[1], 3); fmt.Sprint(got) != "[1 4 6]" {
		t.Fatalf("the member without the role got s=%v; want [1 4 6]", got)
	}
	// The three messages before the update left together for the staff member.
	if frames, writes := counter(t, cfg.Metrics.FramesWritten), counter(t, cfg.Metrics.SocketWrites); writes >= frames {
		t.Fatalf("%v frames in %v writes; want fewer writes than frames", frames, writes)
	}
}
