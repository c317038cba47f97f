package main

import (
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// A small run's history that breaks nothing: user 1 is in guild 10 (channel
// 100) and guild 20 (channel 200), user 2 in guild 10 only. Three posts were
// acknowledged, one refused, one unknown and not stored; post 1001 was edited
// twice (the second answer lost, and it was applied); user 2 reacted to it.
// Each user's session got every event of its guilds after its cut (s=1),
// user 1's across a resume.
func cleanHistory() *history {
	t0 := time.Now()
	ok := request{Start: t0, End: t0.Add(time.Millisecond), Outcome: outcomeOK}
	p1 := &post{request: ok, User: 1, Guild: 10, Channel: 100, Content: "r p0", ID: 1001, Edits: []*edit{
		{request: ok, Content: "r p0 edit1"},
		{request: request{Outcome: outcomeUnknown}, Content: "r p0 edit2"},
	}}
	p2 := &post{request: ok, User: 2, Guild: 10, Channel: 100, Content: "r p1", ID: 1002}
	p3 := &post{request: ok, User: 1, Guild: 20, Channel: 200, Content: "r p2", ID: 2001}
	refused := &post{request: request{Outcome: outcomeFailed, Status: 400}, User: 1, Guild: 10, Channel: 100, Content: "r p3"}
	lost := &post{request: request{Outcome: outcomeUnknown}, User: 2, Guild: 10, Channel: 100, Content: "r p4"}
	stream := []streamEvent{
		{Seq: 2, Type: guildhall.EventMessageCreate, Guild: 10, Channel: 100, Msg: 1001, Content: "r p0"},
		{Seq: 3, Type: guildhall.EventMessageCreate, Guild: 10, Channel: 100, Msg: 1002, Content: "r p1"},
		{Seq: 4, Type: guildhall.EventMessageUpdate, Guild: 10, Channel: 100, Msg: 1001, Content: "r p0 edit1"},
		{Seq: 5, Type: guildhall.EventMessageCreate, Guild: 20, Channel: 200, Msg: 2001, Content: "r p2"},
		{Seq: 6, Type: eventReactionAdd, Guild: 10, Channel: 100, Msg: 1001, User: 2, Emoji: "👍"},
		{Seq: 7, Type: guildhall.EventMessageUpdate, Guild: 10, Channel: 100, Msg: 1001, Content: "r p0 edit2"},
	}
	thumbs := histMessage{ID: 1001, ChannelID: 100, Content: "r p0 edit2"}
	thumbs.Reactions = append(thumbs.Reactions, struct {
		Count int `json:"count"`
		Emoji struct {
			Name string `json:"name"`
		} `json:"emoji"`
	}{Count: 1})
	thumbs.Reactions[0].Emoji.Name = "👍"
	d := func(ev streamEvent) delivery {
		return delivery{T: ev.Type, Seq: ev.Seq, Msg: ev.Msg, What: streamWhat(ev), At: t0}
	}
	return &history{
		Posts:     []*post{p1, p2, p3, refused, lost},
		Reactions: []*reaction{{request: ok, User: 2, Message: 1001, Channel: 100, Emoji: "👍"}},
		Stream:    stream,
		Channels:  []guildhall.Snowflake{100, 200},
		History: map[guildhall.Snowflake][]histMessage{
			100: {{ID: 1002, ChannelID: 100, Content: "r p1"}, thumbs},
			200: {{ID: 2001, ChannelID: 200, Content: "r p2"}},
		},
		Guilds: map[guildhall.Snowflake][]guildhall.Snowflake{1: {10, 20}, 2: {10}},
		Sessions: []sessionLog{
			{Index: 0, User: 1, Conns: 2, Epochs: []epoch{{SessionID: "a", Start: 1, Conns: 2, Resumed: 1, Received: []delivery{
				{T: guildhall.EventGuildCreate, Seq: 1}, // at identify: not a stream event
				d(stream[0]), d(stream[1]), d(stream[2]), d(stream[3]), d(stream[4]), d(stream[5]),
			}}}},
			{Index: 1, User: 2, Conns: 1, Epochs: []epoch{{SessionID: "b", Start: 1, Conns: 1, Received: []delivery{
				d(stream[0]), d(stream[1]), d(stream[2]), d(stream[4]), d(stream[5]),
			}}}},
		},
	}
}

func TestCheckCleanHistory(t *testing.T) {
	r := check(cleanHistory())
	if len(r.Violations) != 0 {
		t.Fatalf("check(clean) = %v; want no violations", r.Violations)
	}
	if r.PostsOK != 3 || r.PostsFailed != 1 || r.PostsUnknown != 1 || r.Deliveries != 11 || r.Messages != 3 {
		t.Fatalf("check(clean) counted %+v", r)
	}
}

// Each broken invariant, made by changing the clean history, is found and
// named.
func TestCheckFindsViolations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(h *history)
		want   string // the violation kind
		detail string // part of its detail
	}{
		{"a gap in a session", func(h *history) {
			e := &h.Sessions[1].Epochs[0]
			e.Received = append(e.Received[:1], e.Received[2:]...) // s=3 missed
		}, vSessionGap, "s=1 not received: 3"},
		{"the last event never arrives", func(h *history) {
			e := &h.Sessions[1].Epochs[0]
			e.Received = e.Received[:len(e.Received)-1]
		}, vSessionGap, ": 7"},
		{"an event twice in a session", func(h *history) {
			e := &h.Sessions[0].Epochs[0]
			e.Received = append(e.Received, e.Received[3])
		}, vSessionDup, "s=4"},
		{"events out of order across a resume", func(h *history) {
			e := &h.Sessions[0].Epochs[0]
			e.Received[2], e.Received[3] = e.Received[3], e.Received[2]
		}, vSessionOrder, "s=3 (MESSAGE_CREATE) received after s=4"},
		{"a message of a guild the user is not in", func(h *history) {
			e := &h.Sessions[1].Epochs[0]
			e.Received = append(e.Received, delivery{T: guildhall.EventMessageCreate, Seq: 5, Msg: 2001, What: "r p2"})
		}, vSessionForeign, "an event of guild 20"},
		{"a message that is in no stream", func(h *history) {
			e := &h.Sessions[1].Epochs[0]
			e.Received = append(e.Received, delivery{T: guildhall.EventMessageCreate, Seq: 8, Msg: 1999, What: "r p9"})
		}, vSessionForeign, "message 1999 is no event"},
		{"a missed event filled in late under the sequence of the one that showed the gap", func(h *history) {
			e := &h.Sessions[1].Epochs[0]
			late := e.Received[1] // s=3
			late.Seq = 7
			e.Received = append(append(e.Received[:1:1], e.Received[2:]...), late)
		}, vSessionWrongSeq, "MESSAGE_CREATE s=3 delivered as s=7"},
		{"…which is out of stream order too", func(h *history) {
			e := &h.Sessions[1].Epochs[0]
			late := e.Received[1]
			late.Seq = 7
			e.Received = append(append(e.Received[:1:1], e.Received[2:]...), late)
		}, vSessionOrder, "s=3 (MESSAGE_CREATE) received after s=7 of the same guild 10"},
		{"a session invalidated", func(h *history) {
			h.Sessions[1].Epochs[0].Ended = "invalid session"
		}, vSessionInvalid, "invalid session"},
		{"an acknowledged post not in the stream", func(h *history) {
			h.Stream = append(h.Stream[:1], h.Stream[2:]...)
			h.Sessions = nil
		}, vLost, `post "r p1"`},
		{"an acknowledged post not in history", func(h *history) {
			h.History[200] = nil
		}, vLost, "message 2001"},
		{"a refused post stored", func(h *history) {
			h.Stream = append(h.Stream, streamEvent{Seq: 8, Type: guildhall.EventMessageCreate, Guild: 10, Channel: 100, Msg: 1003, Content: "r p3"})
			h.History[100] = append(h.History[100], histMessage{ID: 1003, ChannelID: 100, Content: "r p3"})
			h.Sessions = nil
		}, vRefusedStored, `post "r p3"`},
		{"a message nobody posted", func(h *history) {
			h.History[200] = append(h.History[200], histMessage{ID: 2002, ChannelID: 200, Content: "who?"})
		}, vPhantom, "2002"},
		{"a post stored twice", func(h *history) {
			h.Stream = append(h.Stream, streamEvent{Seq: 8, Type: guildhall.EventMessageCreate, Guild: 20, Channel: 200, Msg: 2002, Content: "r p2"})
			h.History[200] = append(h.History[200], histMessage{ID: 2002, ChannelID: 200, Content: "r p2"})
			h.Sessions = nil
		}, vDuplicate, "two messages"},
		{"a message twice in history", func(h *history) {
			h.History[200] = append(h.History[200], h.History[200][0])
		}, vDuplicate, "twice in the history"},
		{"history stuck before the last edit", func(h *history) {
			h.History[100][1].Content = "r p0 edit1"
		}, vLastEdit, `reads "r p0 edit1"`},
		{"an acknowledged edit lost", func(h *history) {
			h.Stream[2].Content = "r p0 something else"
			h.Sessions = nil
		}, vEditLost, `"r p0 edit1"`},
		{"the stream ends on an older edit than the acknowledged one", func(h *history) {
			h.Posts[0].Edits[1].Outcome = outcomeOK
			h.Stream = h.Stream[:len(h.Stream)-1]
			h.History[100][1].Content = "r p0 edit1"
			h.Sessions = nil
		}, vLastEdit, `ends as "r p0 edit1"`},
		{"a reaction lost from history", func(h *history) {
			h.History[100][1].Reactions = nil
		}, vReactions, "message 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := cleanHistory()
			tc.break_(h)
			r := check(h)
			for _, v := range r.Violations {
				if v.Kind == tc.want && strings.Contains(v.Detail, tc.detail) {
					return
				}
			}
			t.Fatalf("check = %v; want a %q violation mentioning %q", r.Violations, tc.want, tc.detail)
		})
	}
}

func TestSeqRanges(t *testing.T) {
	if got := seqRanges([]uint64{3, 5, 6, 7, 9}); got != "3,5-7,9" {
		t.Errorf("seqRanges = %q; want 3,5-7,9", got)
	}
}
