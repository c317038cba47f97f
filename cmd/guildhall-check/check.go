package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// history is everything a run recorded: what the clients sent and were told,
// the run's events as the EVENTS stream holds them at the end, the final
// message history read over REST, and what every session received.
type history struct {
	Posts     []*post
	Reactions []*reaction
	// Stream is the run's events in the stream (its guilds' and users'
	// subjects), in stream order.
	Stream []streamEvent
	// Channels is every channel of the run, and History their messages as
	// GET /channels/{id}/messages pages them at the end.
	Channels []guildhall.Snowflake
	History  map[guildhall.Snowflake][]histMessage
	// Guilds maps each user to the guilds it is a member of (all through the run).
	Guilds   map[guildhall.Snowflake][]guildhall.Snowflake
	Sessions []sessionLog
	// Ignore are messages of the run that are not posts (the setup's probe).
	Ignore map[guildhall.Snowflake]bool
}

// streamEvent is one event of the EVENTS stream, as much as the checker needs.
type streamEvent struct {
	Seq     uint64
	Type    string
	Guild   guildhall.Snowflake // zero for a user event
	User    guildhall.Snowflake // a user event's user; a reaction's user
	Channel guildhall.Snowflake
	Msg     guildhall.Snowflake // MESSAGE_*: the message; reactions: the message reacted to
	Content string              // MESSAGE_CREATE, MESSAGE_UPDATE
	Emoji   string              // reactions
}

// histMessage is a message as history returns it.
type histMessage struct {
	ID        guildhall.Snowflake `json:"id"`
	ChannelID guildhall.Snowflake `json:"channel_id"`
	Content   string              `json:"content"`
	Reactions []struct {
		Count int `json:"count"`
		Emoji struct {
			Name string `json:"name"`
		} `json:"emoji"`
	} `json:"reactions"`
}

// sessionLog is what one client session recorded.
type sessionLog struct {
	Index  int
	User   guildhall.Snowflake
	Conns  int
	Closes map[string]int
	Epochs []epoch
}

// violation is one broken invariant.
type violation struct {
	Kind   string
	Detail string
}

// Kinds of violations.
const (
	vLost            = "acknowledged post lost"     // acked, not in the stream or not in history
	vRefusedStored   = "refused change stored"      // a failed post, edit or reaction exists
	vPhantom         = "phantom"                    // something nobody sent
	vDuplicate       = "stored twice"               // a post stored under two ids, an id twice in history
	vWrongID         = "acknowledged id differs"    // the id the api answered is not the stored message's
	vLastEdit        = "last edit wrong"            // history's content is not the last acknowledged edit
	vEditLost        = "acknowledged edit lost"     // an acked edit not in the stream
	vHistoryMissing  = "stored event missing"       // in the stream, not (or stale) in history
	vReactions       = "reactions wrong"            // history's reaction counts differ from the stream's
	vSessionGap      = "session missed events"      // an event of its guilds between its cut and its end not received
	vSessionDup      = "session got an event twice" // the same sequence twice in one session
	vSessionOrder    = "session got events out of order"
	vSessionForeign  = "session got a wrong dispatch" // a message dispatch that is no event of the stream, or of another guild
	vSessionWrongSeq = "event under another sequence" // an event delivered with an s that is not its own
	vSessionInvalid  = "session invalidated"          // INVALID_SESSION to a resume within the window
	vReadYourWrites  = "acknowledged post unknown"    // the api answered Unknown Message for a post it had acknowledged
)

// strictTypes are dispatches that only ever come from the stream: one that is
// no event of the stream is wrong.
var strictTypes = map[string]bool{
	guildhall.EventMessageCreate: true, guildhall.EventMessageUpdate: true, guildhall.EventMessageDelete: true,
	eventReactionAdd: true, eventReactionRemove: true,
}

// result is the checker's verdict and what it counted on the way.
type result struct {
	Violations []violation
	// Posts by outcome, and the unknown ones that turned out stored.
	PostsOK, PostsFailed, PostsUnknown, UnknownStored int
	EditsOK, EditsFailed, EditsUnknown                int
	ReactionsOK, ReactionsFailed, ReactionsUnknown    int
	// StreamEvents of the run; Messages in history.
	StreamEvents, Messages int
	// Sessions: epochs (identified sessions), connections, RESUMED received,
	// stream events delivered and checked.
	Epochs, Conns, Resumed, Deliveries int
	Closes                             map[string]int
}

// check judges a run's history.
func check(h *history) *result {
	r := &result{Closes: map[string]int{}}
	add := func(kind, format string, args ...any) {
		r.Violations = append(r.Violations, violation{Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	byContent := map[string]*post{}
	for _, p := range h.Posts {
		byContent[p.Content] = p
		switch p.Outcome {
		case outcomeOK:
			r.PostsOK++
		case outcomeFailed:
			r.PostsFailed++
		default:
			r.PostsUnknown++
		}
		for _, e := range p.Edits {
			switch e.Outcome {
			case outcomeOK:
				r.EditsOK++
			case outcomeFailed:
				r.EditsFailed++
			default:
				r.EditsUnknown++
			}
		}
	}

	// The stream: every message created once, by a post somebody sent.
	r.StreamEvents = len(h.Stream)
	created := map[guildhall.Snowflake]streamEvent{}                             // message → its MESSAGE_CREATE
	final := map[guildhall.Snowflake]string{}                                    // message → content after its last update
	updates := map[guildhall.Snowflake][]string{}                                // message → contents of its updates, in order
	reacted := map[guildhall.Snowflake]map[string]map[guildhall.Snowflake]bool{} // message → emoji → users
	bySeq := make(map[uint64]streamEvent, len(h.Stream))
	contentID := map[string]guildhall.Snowflake{}
	for _, ev := range h.Stream {
		bySeq[ev.Seq] = ev
		switch ev.Type {
		case guildhall.EventMessageCreate:
			if h.Ignore[ev.Msg] {
				continue
			}
			if prev, ok := created[ev.Msg]; ok {
				add(vDuplicate, "message %d created twice in the stream (s=%d and s=%d)", ev.Msg, prev.Seq, ev.Seq)
				continue
			}
			created[ev.Msg] = ev
			final[ev.Msg] = ev.Content
			if other, ok := contentID[ev.Content]; ok {
				add(vDuplicate, "post %q stored as two messages, %d and %d", ev.Content, other, ev.Msg)
			}
			contentID[ev.Content] = ev.Msg
			p := byContent[ev.Content]
			switch {
			case p == nil:
				add(vPhantom, "the stream has message %d (%q) that no client posted", ev.Msg, ev.Content)
			case p.Outcome == outcomeFailed:
				add(vRefusedStored, "post %q was refused (%s) but the stream has it as message %d", p.Content, p.Err, ev.Msg)
			case p.Outcome == outcomeOK && p.ID != ev.Msg:
				add(vWrongID, "post %q was acknowledged as message %d but stored as %d", p.Content, p.ID, ev.Msg)
			case p.Outcome == outcomeUnknown:
				r.UnknownStored++
			}
		case guildhall.EventMessageUpdate:
			if h.Ignore[ev.Msg] {
				continue
			}
			if _, ok := created[ev.Msg]; !ok {
				add(vPhantom, "the stream updates message %d (s=%d) before or without creating it", ev.Msg, ev.Seq)
				continue
			}
			final[ev.Msg] = ev.Content
			updates[ev.Msg] = append(updates[ev.Msg], ev.Content)
		case eventReactionAdd:
			if h.Ignore[ev.Msg] {
				continue
			}
			if reacted[ev.Msg] == nil {
				reacted[ev.Msg] = map[string]map[guildhall.Snowflake]bool{}
			}
			if reacted[ev.Msg][ev.Emoji] == nil {
				reacted[ev.Msg][ev.Emoji] = map[guildhall.Snowflake]bool{}
			}
			reacted[ev.Msg][ev.Emoji][ev.User] = true
		}
	}

	// Every acknowledged post in the stream, with its acknowledged edits, and
	// ending with the last acknowledged one (or a later one whose answer was lost).
	for _, p := range h.Posts {
		if p.Outcome != outcomeOK {
			continue
		}
		if _, ok := created[p.ID]; !ok {
			add(vLost, "post %q acknowledged at %s as message %d is not in the stream", p.Content, p.End.Format(time.TimeOnly), p.ID)
			continue
		}
		allowed := []string{p.Content}
		for _, e := range p.Edits {
			switch e.Outcome {
			case outcomeOK:
				allowed = []string{e.Content}
				if !slices.Contains(updates[p.ID], e.Content) {
					add(vEditLost, "edit %q of message %d acknowledged at %s is not in the stream", e.Content, p.ID, e.End.Format(time.TimeOnly))
				}
			case outcomeUnknown:
				allowed = append(allowed, e.Content)
			case outcomeFailed:
				if slices.Contains(updates[p.ID], e.Content) {
					add(vRefusedStored, "edit %q of message %d was refused (%s) but the stream has it", e.Content, p.ID, e.Err)
				}
			}
		}
		if !slices.Contains(allowed, final[p.ID]) {
			add(vLastEdit, "message %d ends as %q in the stream; want one of %q", p.ID, final[p.ID], allowed)
		}
	}

	// History: every message of the stream once, with its last content, and
	// nothing else.
	inHistory := map[guildhall.Snowflake]histMessage{}
	for _, ch := range h.Channels {
		for _, m := range h.History[ch] {
			if h.Ignore[m.ID] {
				continue
			}
			r.Messages++
			if _, ok := inHistory[m.ID]; ok {
				add(vDuplicate, "message %d twice in the history of channel %d", m.ID, ch)
				continue
			}
			inHistory[m.ID] = m
			ev, ok := created[m.ID]
			switch {
			case !ok:
				add(vPhantom, "history of channel %d has message %d (%q) that is not in the stream", ch, m.ID, m.Content)
			case ev.Channel != 0 && ev.Channel != ch:
				add(vPhantom, "message %d of channel %d is in the history of channel %d", m.ID, ev.Channel, ch)
			}
		}
	}
	for id, ev := range created {
		m, ok := inHistory[id]
		if !ok {
			what := vHistoryMissing
			if p := byContent[ev.Content]; p != nil && p.Outcome == outcomeOK {
				what = vLost
			}
			add(what, "message %d (%q, s=%d) is in the stream but not in history", id, ev.Content, ev.Seq)
			continue
		}
		if m.Content != final[id] {
			add(vLastEdit, "message %d reads %q in history; its last edit in the stream is %q", id, m.Content, final[id])
		}
		want := map[string]int{}
		for emoji, users := range reacted[id] {
			want[emoji] = len(users)
		}
		got := map[string]int{}
		for _, rc := range m.Reactions {
			got[rc.Emoji.Name] = rc.Count
		}
		if !mapsEqual(want, got) {
			add(vReactions, "message %d has reactions %v in history; the stream has %v", id, got, want)
		}
	}

	// Reactions: acknowledged ones stored, refused ones not.
	for _, rc := range h.Reactions {
		in := reacted[rc.Message][rc.Emoji][rc.User]
		switch rc.Outcome {
		case outcomeOK:
			r.ReactionsOK++
			if !in {
				add(vLost, "reaction %s of user %d to message %d acknowledged at %s is not in the stream", rc.Emoji, rc.User, rc.Message, rc.End.Format(time.TimeOnly))
			}
		case outcomeFailed:
			r.ReactionsFailed++
			if in {
				add(vRefusedStored, "reaction %s of user %d to message %d was refused (%s) but is stored", rc.Emoji, rc.User, rc.Message, rc.Err)
			}
		default:
			r.ReactionsUnknown++
		}
	}

	// Sessions: each identified session got every event of its guilds after its
	// cut, once, in stream order per guild, each under its own sequence, across
	// all its connections. A message dispatch is known by what it carries (the
	// message, its content or the reaction), so one sent under another event's
	// sequence is found as that; others by their sequence.
	var last uint64
	if n := len(h.Stream); n > 0 {
		last = h.Stream[n-1].Seq
	}
	byWhat := map[string]streamEvent{}
	for _, ev := range h.Stream {
		if ev.Msg != 0 {
			byWhat[eventKey(ev.Type, ev.Msg, streamWhat(ev))] = ev
		}
	}
	relevantTo := func(u guildhall.Snowflake, ev streamEvent) bool {
		if ev.Guild == 0 {
			return ev.User == u
		}
		return slices.Contains(h.Guilds[u], ev.Guild)
	}
	for _, s := range h.Sessions {
		r.Conns += s.Conns
		for why, n := range s.Closes {
			r.Closes[why] += n
		}
		for ei, e := range s.Epochs {
			r.Epochs++
			r.Resumed += e.Resumed
			name := fmt.Sprintf("session %d (user %d) epoch %d %s", s.Index, s.User, ei, e.SessionID)
			if e.Ended != "" {
				add(vSessionInvalid, "%s: %s after %d connections", name, e.Ended, e.Conns)
			}
			seen := map[uint64]bool{}
			lastOf := map[guildhall.Snowflake]uint64{} // per guild (or user): the last sequence received
			var maxSeq uint64
			for _, d := range e.Received {
				var ev streamEvent
				var ok bool
				if d.Msg != 0 {
					ev, ok = byWhat[eventKey(d.T, d.Msg, d.What)]
				} else {
					ev, ok = bySeq[d.Seq]
					ok = ok && ev.Type == d.T
				}
				if !ok {
					if strictTypes[d.T] {
						add(vSessionForeign, "%s: %s s=%d of message %d is no event of the run's stream", name, d.T, d.Seq, d.Msg)
					}
					continue
				}
				if !relevantTo(s.User, ev) {
					add(vSessionForeign, "%s: got %s s=%d, an event of %s", name, d.T, d.Seq, describe(ev))
					continue
				}
				r.Deliveries++
				if ev.Seq != d.Seq {
					add(vSessionWrongSeq, "%s: %s s=%d delivered as s=%d", name, ev.Type, ev.Seq, d.Seq)
				}
				if seen[ev.Seq] {
					add(vSessionDup, "%s: s=%d (%s) received twice", name, ev.Seq, ev.Type)
					continue
				}
				stream := ev.Guild
				if stream == 0 {
					stream = ev.User
				}
				switch {
				case ev.Seq <= e.Start:
					add(vSessionOrder, "%s: s=%d (%s) is from before its cut s=%d", name, ev.Seq, ev.Type, e.Start)
				case ev.Seq < lastOf[stream]:
					add(vSessionOrder, "%s: s=%d (%s) received after s=%d of the same %s", name, ev.Seq, ev.Type, lastOf[stream], describeStream(ev))
				}
				seen[ev.Seq] = true
				lastOf[stream] = max(lastOf[stream], ev.Seq)
				maxSeq = max(maxSeq, ev.Seq)
			}
			end := last
			if e.Ended != "" {
				end = maxSeq
			}
			var missing []uint64
			for _, ev := range h.Stream {
				if ev.Seq > e.Start && ev.Seq <= end && relevantTo(s.User, ev) && !seen[ev.Seq] {
					missing = append(missing, ev.Seq)
				}
			}
			if len(missing) > 0 {
				add(vSessionGap, "%s: %d events of its guilds after its cut s=%d not received: %s", name, len(missing), e.Start, seqRanges(missing))
			}
		}
	}
	// Read-your-writes: the author edits a post the api acknowledged.
	for _, p := range h.Posts {
		for _, e := range p.Edits {
			if e.Status == 404 && strings.Contains(e.Err, "10008") {
				add(vReadYourWrites, "edit of message %d (%q), acknowledged at %s, answered %s at %s", p.ID, p.Content,
					p.End.Format("15:04:05.000"), e.Err, e.Start.Format("15:04:05.000"))
			}
		}
	}
	sort.SliceStable(r.Violations, func(i, j int) bool { return r.Violations[i].Kind < r.Violations[j].Kind })
	return r
}

func describe(ev streamEvent) string { return describeStream(ev) }

// describeStream names the guild or user an event belongs to.
func describeStream(ev streamEvent) string {
	if ev.Guild != 0 {
		return fmt.Sprintf("guild %d", ev.Guild)
	}
	return fmt.Sprintf("user %d", ev.User)
}

// eventKey names a message's event by what it carries.
func eventKey(t string, msg guildhall.Snowflake, what string) string {
	return t + " " + msg.String() + " " + what
}

// streamWhat is what tells a stream event of a message apart (see delivery.What).
func streamWhat(ev streamEvent) string {
	switch ev.Type {
	case eventReactionAdd, eventReactionRemove:
		return reactionWhat(ev.User, ev.Emoji)
	}
	return ev.Content
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// seqRanges writes sorted sequences as ranges: "5-9,12".
func seqRanges(seqs []uint64) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if b.Len() > 200 {
			b.WriteString("…")
			break
		}
		if i == j {
			fmt.Fprintf(&b, "%d", seqs[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
		}
		i = j + 1
	}
	return b.String()
}
