package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// ---- messages

func testMessages(t *testing.T, e *env) {
	ch, other, g := e.id(), e.id(), e.id()
	author := guildhall.User{ID: e.id(), Username: "alice", Discriminator: "0", GlobalName: ptr("Alice"), Avatar: ptr("av")}
	mentioned := guildhall.User{ID: e.id(), Username: "bob", Discriminator: "0"}
	id1 := guildhall.SnowflakeAt(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)) + 5
	id2 := id1 + 1<<22 // one millisecond later
	edited := time.Date(2024, 3, 1, 12, 1, 30, 250e6, time.UTC)
	m1 := guildhall.Message{
		ID: id1, ChannelID: ch, GuildID: g, Author: author, Content: "hello <@" + mentioned.ID.String() + ">",
		Timestamp: id1.Time(), EditedTimestamp: &edited, TTS: true, MentionEveryone: true,
		Mentions: []guildhall.User{mentioned}, MentionRoles: []guildhall.Snowflake{g + 1}, Type: 19, Flags: 4,
	}
	// An upsert's Pinned is not stored: pins are PinWrites (testPins).
	pinnedUpsert := m1
	pinnedUpsert.Pinned = true
	m2 := guildhall.Message{ID: id2, ChannelID: ch, GuildID: g, Author: author, Content: "plain", Timestamp: id2.Time()}

	check(t, e.s.ApplyMessages(e.ctx, nil), "ApplyMessages(nil)")
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 1, Message: pinnedUpsert}, {Seq: 2, Message: m2}}), "ApplyMessages")
	for _, want := range []guildhall.Message{m1, m2} {
		got, err := e.s.Message(e.ctx, ch, want.ID)
		check(t, err, "Message(%v, %v)", ch, want.ID)
		if d := messageDiff(got, want); len(d) > 0 {
			t.Errorf("Message(%v, %v): %v", ch, want.ID, d)
		}
	}
	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 50})
	check(t, err, "History")
	if len(hist) != 2 {
		t.Fatalf("History(limit=50) = %v; want [%v %v]", msgIDs(hist), id2, id1)
	}
	for i, want := range []guildhall.Message{m2, m1} {
		if d := messageDiff(hist[i], want); len(d) > 0 {
			t.Errorf("History(limit=50)[%d]: %v", i, d)
		}
	}

	_, err = e.s.Message(e.ctx, ch, id1+1)
	wantErr(t, err, messaging.ErrNotFound, "Message(unknown id)")
	_, err = e.s.Message(e.ctx, other, id1)
	wantErr(t, err, messaging.ErrNotFound, "Message(%v) asked in another channel", id1)
}

func msgIDs(ms []guildhall.Message) []guildhall.Snowflake {
	out := make([]guildhall.Snowflake, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// liveIn is the model of ApplyMessages: per message (channel and id), a delete is
// final, and otherwise the upsert with the highest Seq decides. It returns the
// live messages of channel ch.
func liveIn(writes []messaging.MessageWrite, ch guildhall.Snowflake) map[guildhall.Snowflake]guildhall.Message {
	best := map[guildhall.Snowflake]messaging.MessageWrite{}
	for _, w := range writes {
		if w.Message.ChannelID != ch {
			continue
		}
		cur, ok := best[w.Message.ID]
		if !ok || (w.Delete && !cur.Delete) || (w.Delete == cur.Delete && w.Seq > cur.Seq) {
			best[w.Message.ID] = w
		}
	}
	live := map[guildhall.Snowflake]guildhall.Message{}
	for id, w := range best {
		if !w.Delete {
			live[id] = w.Message
		}
	}
	return live
}

// inChannel returns copies of writes moved to channel ch.
func inChannel(writes []messaging.MessageWrite, ch guildhall.Snowflake) []messaging.MessageWrite {
	out := slices.Clone(writes)
	for i := range out {
		out[i].Message.ChannelID = ch
	}
	return out
}

// checkState compares a channel with the model: every id's Message, and the
// whole History.
func checkState(t *testing.T, e *env, ch guildhall.Snowflake, ids []guildhall.Snowflake, live map[guildhall.Snowflake]guildhall.Message, how string) {
	t.Helper()
	var wantIDs []guildhall.Snowflake
	for _, id := range ids {
		got, err := e.s.Message(e.ctx, ch, id)
		want, ok := live[id]
		switch {
		case !ok:
			if !errors.Is(err, messaging.ErrNotFound) {
				t.Errorf("%s: Message(%v) = %q, %v; want ErrNotFound (deleted)", how, id, got.Content, err)
			}
		case err != nil:
			t.Errorf("%s: Message(%v): %v; want %q", how, id, err, want.Content)
		default:
			want.ChannelID = ch
			if d := messageDiff(got, want); len(d) > 0 {
				t.Errorf("%s: Message(%v): %v", how, id, d)
			}
		}
		if ok {
			wantIDs = append(wantIDs, id)
		}
	}
	slices.SortFunc(wantIDs, func(a, b guildhall.Snowflake) int { return cmpID(b, a) })
	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 100})
	check(t, err, "%s: History", how)
	if got := msgIDs(hist); !slices.Equal(got, wantIDs) {
		t.Errorf("%s: History(limit=100) = %v; want %v", how, got, wantIDs)
	}
	for _, m := range hist {
		if want, ok := live[m.ID]; ok && m.Content != want.Content {
			t.Errorf("%s: History(limit=100) has %v with content %q; want %q", how, m.ID, m.Content, want.Content)
		}
	}
}

func testVersioningOrder(t *testing.T, e *env) {
	t0 := time.Date(2024, 6, 9, 23, 0, 0, 0, time.UTC) // near a bucket edge: ids span two buckets
	var ids []guildhall.Snowflake
	for i := range 8 {
		ids = append(ids, guildhall.SnowflakeAt(t0.Add(time.Duration(i)*7*time.Hour)))
	}
	author := guildhall.User{ID: e.id(), Username: "alice"}
	msg := func(i int, content string, edited bool) guildhall.Message {
		m := guildhall.Message{ID: ids[i], GuildID: 1, Author: author, Content: content, Timestamp: ids[i].Time()}
		if edited {
			m.EditedTimestamp = ptr(ids[i].Time().Add(time.Minute))
		}
		return m
	}
	del := func(i int) guildhall.Message { return guildhall.Message{ID: ids[i]} }
	writes := []messaging.MessageWrite{
		{Seq: 1, Message: msg(0, "m0 v1", false)},
		{Seq: 5, Message: msg(0, "m0 v2", true)}, // edit wins
		{Seq: 2, Message: msg(1, "m1", false)},
		{Seq: 6, Delete: true, Message: del(1)}, // deleted
		{Seq: 3, Message: msg(2, "m2", false)},
		{Seq: 4, Delete: true, Message: del(2)},    // deleted...
		{Seq: 2, Message: msg(2, "m2 late", true)}, // ...and a lower-Seq upsert does not resurrect it
		{Seq: 7, Delete: true, Message: del(3)},    // delete of a message never seen
		{Seq: 3, Message: msg(3, "m3 ghost", false)},
		{Seq: 8, Message: msg(4, "m4 v1", false)},
		{Seq: 9, Message: msg(4, "m4 v2", true)},
		{Seq: 10, Message: msg(4, "m4 v3", true)},
		{Seq: 11, Message: msg(5, "m5 v1", false)},
		{Seq: 12, Delete: true, Message: del(5)},
		{Seq: 13, Message: msg(5, "m5 edit after delete", true)}, // a delete is final
		{Seq: 14, Message: msg(6, "m6", false)},
		{Seq: 15, Message: msg(7, "m7", false)},
	}
	live := liveIn(inChannel(writes, 1), 1)
	if len(live) != 4 { // guard the model itself
		t.Fatalf("model: %d live messages; want 4", len(live))
	}

	apply := func(ch guildhall.Snowflake, batches ...[]messaging.MessageWrite) {
		t.Helper()
		for _, b := range batches {
			check(t, e.s.ApplyMessages(e.ctx, inChannel(b, ch)), "ApplyMessages")
		}
	}
	reversed := slices.Clone(writes)
	slices.Reverse(reversed)

	ch := e.id()
	apply(ch, writes)
	checkState(t, e, ch, ids, live, "in order, one batch")

	ch = e.id()
	apply(ch, reversed)
	checkState(t, e, ch, ids, live, "reversed, one batch")

	ch = e.id()
	for _, w := range reversed {
		apply(ch, []messaging.MessageWrite{w})
	}
	checkState(t, e, ch, ids, live, "reversed, one write per batch")

	ch = e.id()
	apply(ch, writes, writes)
	checkState(t, e, ch, ids, live, "twice")

	ch = e.id()
	apply(ch, append(slices.Clone(writes), writes...)) // duplicates inside one batch
	checkState(t, e, ch, ids, live, "twice in one batch")

	for seed := range uint64(5) {
		r := rand.New(rand.NewPCG(seed, 42))
		shuffled := append(slices.Clone(writes), writes[r.IntN(len(writes))], writes[r.IntN(len(writes))])
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		ch = e.id()
		for len(shuffled) > 0 { // random batch sizes
			n := min(len(shuffled), 1+r.IntN(5))
			apply(ch, shuffled[:n])
			shuffled = shuffled[n:]
		}
		checkState(t, e, ch, ids, live, fmt.Sprintf("shuffled (seed %d)", seed))
	}
}

// testVersioningLateWrites applies writes in separate calls, the way a writer
// that retries and redelivers would.
func testVersioningLateWrites(t *testing.T, e *env) {
	ch := e.id()
	at := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	a, b, c := guildhall.SnowflakeAt(at), guildhall.SnowflakeAt(at.Add(time.Second)), guildhall.SnowflakeAt(at.Add(2*time.Second))
	m := func(id guildhall.Snowflake, content string) guildhall.Message {
		return guildhall.Message{ID: id, ChannelID: ch, Content: content, Timestamp: id.Time()}
	}
	apply := func(ws ...messaging.MessageWrite) {
		t.Helper()
		check(t, e.s.ApplyMessages(e.ctx, ws), "ApplyMessages")
	}
	contentIs := func(when string, id guildhall.Snowflake, want string) {
		t.Helper()
		got, err := e.s.Message(e.ctx, ch, id)
		if want == "" {
			if !errors.Is(err, messaging.ErrNotFound) {
				t.Errorf("Message(%v) %s = %q, %v; want ErrNotFound", id, when, got.Content, err)
			}
			return
		}
		if err != nil || got.Content != want {
			t.Errorf("Message(%v) %s = %q, %v; want %q", id, when, got.Content, err, want)
		}
	}

	apply(messaging.MessageWrite{Seq: 10, Message: m(a, "a")})
	apply(messaging.MessageWrite{Seq: 20, Delete: true, Message: guildhall.Message{ID: a, ChannelID: ch}})
	apply(messaging.MessageWrite{Seq: 15, Message: m(a, "a edited late")})
	apply(messaging.MessageWrite{Seq: 10, Message: m(a, "a redelivered")})
	contentIs("after delete (20) and late upserts (15, 10)", a, "")

	apply(messaging.MessageWrite{Seq: 31, Message: m(b, "b v2")})
	apply(messaging.MessageWrite{Seq: 30, Message: m(b, "b v1")})
	contentIs("after edit (31) then late create (30)", b, "b v2")
	apply(messaging.MessageWrite{Seq: 32, Message: m(b, "b v3")})
	apply(messaging.MessageWrite{Seq: 31, Message: m(b, "b v2")})
	contentIs("after edit (32) and redelivery (31)", b, "b v3")

	apply(messaging.MessageWrite{Seq: 41, Delete: true, Message: guildhall.Message{ID: c, ChannelID: ch}})
	apply(messaging.MessageWrite{Seq: 40, Message: m(c, "c")})
	contentIs("after delete (41) before its create (40)", c, "")
	// An edit that raced the delete lands after it in the stream: the delete is
	// final all the same.
	apply(messaging.MessageWrite{Seq: 42, Message: m(c, "c edited after delete")})
	contentIs("after an edit (42) later than the delete (41)", c, "")

	hist, err := e.s.History(e.ctx, ch, messaging.HistoryQuery{Limit: 100})
	check(t, err, "History")
	if got := msgIDs(hist); fmt.Sprint(got) != fmt.Sprint([]guildhall.Snowflake{b}) {
		t.Errorf("History(limit=100) = %v; want [%v]", got, b)
	}
	for _, q := range []messaging.HistoryQuery{{Around: a, Limit: 3}, {After: a - 1, Limit: 3}, {Before: c + 1, Limit: 3}} {
		hist, err := e.s.History(e.ctx, ch, q)
		check(t, err, "History(%s)", describe(q))
		if got := msgIDs(hist); fmt.Sprint(got) != fmt.Sprint([]guildhall.Snowflake{b}) {
			t.Errorf("History(%s) = %v; want [%v] (deleted messages must not appear)", describe(q), got, b)
		}
	}
}

// ---- history

// modelHistory answers q from the ascending list of live ids, as HistoryQuery
// documents it.
func modelHistory(asc []guildhall.Snowflake, q messaging.HistoryQuery) []guildhall.Snowflake {
	newestFirst := func(s []guildhall.Snowflake) []guildhall.Snowflake {
		out := slices.Clone(s)
		slices.Reverse(out)
		return out
	}
	// below returns the ids < x, ascending; atOrAbove the ids >= x.
	split := func(x guildhall.Snowflake) (below, atOrAbove []guildhall.Snowflake) {
		i, _ := slices.BinarySearchFunc(asc, x, cmpID)
		return asc[:i], asc[i:]
	}
	newest := func(s []guildhall.Snowflake, n int) []guildhall.Snowflake { return newestFirst(s[max(0, len(s)-n):]) }
	oldest := func(s []guildhall.Snowflake, n int) []guildhall.Snowflake { return newestFirst(s[:min(n, len(s))]) }
	switch {
	case q.Before != 0:
		below, _ := split(q.Before)
		return newest(below, q.Limit)
	case q.After != 0:
		_, above := split(q.After + 1)
		return oldest(above, q.Limit)
	case q.Around != 0:
		below, above := split(q.Around)
		return append(oldest(above, q.Limit-q.Limit/2), newest(below, q.Limit/2)...)
	default:
		return newest(asc, q.Limit)
	}
}

func describe(q messaging.HistoryQuery) string {
	switch {
	case q.Before != 0:
		return fmt.Sprintf("before=%v, limit=%d", q.Before, q.Limit)
	case q.After != 0:
		return fmt.Sprintf("after=%v, limit=%d", q.After, q.Limit)
	case q.Around != 0:
		return fmt.Sprintf("around=%v, limit=%d", q.Around, q.Limit)
	}
	return fmt.Sprintf("limit=%d", q.Limit)
}

// checkHistory runs every query mode at every cursor and limit against the
// model and checks that each returned message is the one written to ch.
func checkHistory(t *testing.T, e *env, ch guildhall.Snowflake, live map[guildhall.Snowflake]guildhall.Message, cursors []guildhall.Snowflake, limits []int) {
	t.Helper()
	asc := make([]guildhall.Snowflake, 0, len(live))
	for id := range live {
		asc = append(asc, id)
	}
	slices.SortFunc(asc, cmpID)
	var queries []messaging.HistoryQuery
	for _, l := range limits {
		queries = append(queries, messaging.HistoryQuery{Limit: l})
		for _, c := range cursors {
			queries = append(queries,
				messaging.HistoryQuery{Before: c, Limit: l},
				messaging.HistoryQuery{After: c, Limit: l},
				messaging.HistoryQuery{Around: c, Limit: l})
		}
	}
	failures := 0
	for _, q := range queries {
		got, err := e.s.History(e.ctx, ch, q)
		check(t, err, "History(%s)", describe(q))
		want := modelHistory(asc, q)
		if ids := msgIDs(got); !slices.Equal(ids, want) {
			t.Errorf("History(%s) = %v; want %v", describe(q), ids, want)
			failures++
		}
		for _, m := range got {
			w, ok := live[m.ID]
			if m.ChannelID != ch || !ok || m.Content != w.Content {
				t.Errorf("History(%s) returned %v in channel %v with content %q; want only channel %v's messages", describe(q), m.ID, m.ChannelID, m.Content, ch)
				failures++
			}
		}
		if failures >= 10 {
			t.Fatalf("too many History failures, stopping (%d queries in all)", len(queries))
		}
	}
}

var historyLimits = []int{1, 3, 50, 100}

func testHistory(t *testing.T, e *env) {
	// Neighbouring channel ids on both sides, with messages over the same time
	// range and beyond, catch scans that run past their channel.
	lo, ch, hi := e.id(), e.id(), e.id()
	t0 := time.Date(2024, 1, 3, 5, 7, 11, 0, time.UTC)
	var writes []messaging.MessageWrite
	seq := uint64(0)
	add := func(c, id guildhall.Snowflake) {
		seq++
		writes = append(writes, messaging.MessageWrite{Seq: seq, Message: guildhall.Message{
			ID: id, ChannelID: c, GuildID: 1, Content: fmt.Sprintf("%v in %v", id, c), Timestamp: id.Time(),
		}})
	}
	// 240 messages of ch, three per millisecond (the increment bits differ),
	// every 11 hours: about 37 days, so 4 or 5 buckets.
	var ids []guildhall.Snowflake
	for i := range 240 {
		id := guildhall.SnowflakeAt(t0.Add(time.Duration(i/3)*11*time.Hour)) + guildhall.Snowflake(i%3)
		ids = append(ids, id)
		add(ch, id)
	}
	// Messages right on both sides of bucket edges.
	firstBucket, lastBucket := ids[0].Bucket(), ids[len(ids)-1].Bucket()
	if lastBucket-firstBucket < 3 {
		t.Fatalf("test data spans buckets %d..%d; want at least 3", firstBucket, lastBucket)
	}
	var edges []guildhall.Snowflake
	for b := firstBucket + 1; b <= lastBucket; b++ {
		edges = append(edges, guildhall.BucketStart(b), guildhall.BucketStart(b)-1)
	}
	for _, id := range edges {
		ids = append(ids, id)
		add(ch, id)
	}
	// Neighbours: same millisecond as some of ch's messages, plus older and newer.
	for i, id := range ids {
		if i%5 == 0 {
			add(lo, id+7)
			add(hi, id+7)
		}
	}
	for _, c := range []guildhall.Snowflake{lo, hi} {
		add(c, guildhall.SnowflakeAt(t0.AddDate(-1, 0, 0)))
		add(c, guildhall.SnowflakeAt(t0.AddDate(1, 0, 0)))
	}
	// Delete every 10th message of ch (a later Seq).
	var deleted []guildhall.Snowflake
	for i, id := range ids {
		if i%10 == 4 {
			deleted = append(deleted, id)
			seq++
			writes = append(writes, messaging.MessageWrite{Seq: seq, Delete: true, Message: guildhall.Message{ID: id, ChannelID: ch}})
		}
	}
	// Written in shuffled batches of 50, the way nothing guarantees order.
	shuffled := slices.Clone(writes)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for len(shuffled) > 0 {
		n := min(50, len(shuffled))
		check(t, e.s.ApplyMessages(e.ctx, shuffled[:n]), "ApplyMessages")
		shuffled = shuffled[n:]
	}

	live := liveIn(writes, ch)

	slices.SortFunc(ids, cmpID)
	var cursors []guildhall.Snowflake
	for i := 0; i < len(ids); i += 11 {
		cursors = append(cursors, ids[i], ids[i]+1)
	}
	cursors = append(cursors, deleted...)
	cursors = append(cursors, edges...)
	for b := firstBucket; b <= lastBucket+1; b++ {
		cursors = append(cursors, guildhall.BucketStart(b))
	}
	last := ids[len(ids)-1]
	cursors = append(cursors,
		1, ids[0]-1, ids[0], ids[1], last-1, last, last+1,
		guildhall.SnowflakeAt(t0.AddDate(0, 6, 0)),  // later, in an empty bucket
		guildhall.SnowflakeAt(t0.AddDate(-1, 0, 0)), // earlier: where lo and hi have messages
		guildhall.SnowflakeAt(time.Date(2070, 1, 1, 0, 0, 0, 0, time.UTC)),
	)
	checkHistory(t, e, ch, live, cursors, historyLimits)
}

func testHistorySparse(t *testing.T, e *env) {
	lo, ch, hi := e.id(), e.id(), e.id()
	early := time.Date(2023, 2, 1, 10, 0, 0, 0, time.UTC)
	late := early.AddDate(2, 0, 0)
	var writes []messaging.MessageWrite
	var oldIDs, newIDs []guildhall.Snowflake
	for i := range 30 {
		a := guildhall.SnowflakeAt(early.Add(time.Duration(i) * time.Minute))
		b := guildhall.SnowflakeAt(late.Add(time.Duration(i) * time.Minute))
		oldIDs, newIDs = append(oldIDs, a), append(newIDs, b)
		for _, id := range []guildhall.Snowflake{a, b} {
			writes = append(writes, messaging.MessageWrite{Seq: uint64(len(writes) + 1), Message: guildhall.Message{
				ID: id, ChannelID: ch, Content: fmt.Sprint("sparse ", id), Timestamp: id.Time(),
			}})
		}
	}
	if newIDs[0].Bucket()-oldIDs[len(oldIDs)-1].Bucket() < 70 {
		t.Fatalf("sparse data: buckets %d and %d are not far apart", oldIDs[0].Bucket(), newIDs[0].Bucket())
	}
	// The neighbours fill the gap that ch leaves empty.
	for d := 0; d < 730; d += 9 {
		id := guildhall.SnowflakeAt(early.AddDate(0, 0, d).Add(12 * time.Hour))
		for _, c := range []guildhall.Snowflake{lo, hi} {
			writes = append(writes, messaging.MessageWrite{Seq: uint64(len(writes) + 1), Message: guildhall.Message{
				ID: id, ChannelID: c, Content: "neighbour", Timestamp: id.Time(),
			}})
		}
	}
	check(t, e.s.ApplyMessages(e.ctx, writes), "ApplyMessages")

	live := liveIn(writes, ch)
	gap := guildhall.SnowflakeAt(early.AddDate(1, 0, 0))
	cursors := []guildhall.Snowflake{
		1, oldIDs[0] - 1, oldIDs[0], oldIDs[15], oldIDs[29], oldIDs[29] + 1,
		gap, newIDs[0] - 1, newIDs[0], newIDs[1], newIDs[15], newIDs[29], newIDs[29] + 1,
		guildhall.SnowflakeAt(late.AddDate(1, 0, 0)),
	}
	checkHistory(t, e, ch, live, cursors, historyLimits)
}

func testHistoryEmpty(t *testing.T, e *env) {
	ch, other := e.id(), e.id()
	id := guildhall.SnowflakeAt(time.Date(2024, 4, 4, 0, 0, 0, 0, time.UTC))
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 1, Message: guildhall.Message{ID: id, ChannelID: other, Content: "x", Timestamp: id.Time()}}}), "ApplyMessages")
	for _, q := range []messaging.HistoryQuery{{Limit: 50}, {Before: id + 1, Limit: 50}, {After: 1, Limit: 50}, {Around: id, Limit: 50}} {
		got, err := e.s.History(e.ctx, ch, q)
		check(t, err, "History(%s)", describe(q))
		if len(got) != 0 {
			t.Errorf("History(%s) of an empty channel = %v; want none", describe(q), msgIDs(got))
		}
	}
}
