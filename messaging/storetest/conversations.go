package storetest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// The contract of ConversationStore and of the reaction writes of ApplyMessages.
//
// Reactions are checked against a model computed from the list of writes (the
// rules of messaging.ReactionWrite), over the same writes applied in order,
// reversed, one by one, twice and shuffled into random batches, each time into a
// fresh channel.

var conversationTests = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	{"MessageRoundTrip", testMessageRoundTrip},
	{"ReactionsOrderFree", testReactionsOrderFree},
	{"ReactionsLateWrites", testReactionsLateWrites},
	{"ReactionUsers", testReactionUsers},
	{"LastMessageIDs", testLastMessageIDs},
	{"ReadStates", testReadStates},
	{"PrivateChannels", testPrivateChannels},
	{"PrivateChannelsNewestFirst", testPrivateChannelsNewestFirst},
	{"LeavePrivateChannel", testLeavePrivateChannel},
}

// testMessageRoundTrip: what a message carries beyond text comes back as it
// was stored: attachments, embeds, the reply's reference and referenced message.
func testMessageRoundTrip(t *testing.T, e *env) {
	ch, g := e.id(), e.id()
	author := guildhall.User{ID: e.id(), Username: "alice", Discriminator: "0"}
	first := guildhall.SnowflakeAt(time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC))
	reply := first + 1<<22
	w, h := 640, 480
	at := time.Date(2024, 5, 1, 8, 0, 1, 0, time.UTC)
	color := 0x00ff00
	orig := guildhall.Message{ID: first, ChannelID: ch, Author: author, Content: "question?", Timestamp: first.Time()}
	m := guildhall.Message{
		ID: reply, ChannelID: ch, Author: author, Content: "answer", Timestamp: reply.Time(), Type: guildhall.MessageTypeReply,
		Attachments: []guildhall.Attachment{{
			ID: e.id(), Filename: "cat.png", Description: "a cat", ContentType: "image/png", Size: 12345,
			URL: "http://cdn.test/attachments/1/2/cat.png?hm=ab", ProxyURL: "http://cdn.test/attachments/1/2/cat.png?hm=ab",
			Width: &w, Height: &h,
		}},
		Embeds: []guildhall.Embed{{
			Title: "t", Type: "rich", Description: "d", URL: "https://example.com", Timestamp: &at, Color: &color,
			Footer: &guildhall.EmbedFooter{Text: "f"}, Author: &guildhall.EmbedAuthor{Name: "a"},
			Fields: []guildhall.EmbedField{{Name: "n", Value: "v", Inline: true}},
		}},
		MessageReference:  &guildhall.MessageReference{MessageID: first, ChannelID: ch, GuildID: g},
		ReferencedMessage: &orig,
	}
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 1, Message: orig}, {Seq: 2, Message: m}}), "ApplyMessages")
	got, err := e.s.Message(e.ctx, ch, reply)
	check(t, err, "Message")
	if d := messageDiff(got, m); len(d) > 0 {
		t.Errorf("Message: %v", d)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"Attachments", got.Attachments, m.Attachments},
		{"Embeds", got.Embeds, m.Embeds},
		{"MessageReference", got.MessageReference, m.MessageReference},
		{"ReferencedMessage.Content", contentOf(got.ReferencedMessage), "question?"},
	} {
		g, _ := json.Marshal(c.got)
		w, _ := json.Marshal(c.want)
		if string(g) != string(w) {
			t.Errorf("Message(%v).%s = %s; want %s", reply, c.what, g, w)
		}
	}
}

func contentOf(m *guildhall.Message) string {
	if m == nil {
		return "<nil>"
	}
	return m.Content
}

// reactionKey identifies one user's reaction with one emoji to one message.
type reactionKey struct {
	msg   guildhall.Snowflake
	emoji string
	user  guildhall.Snowflake
}

// reactionModel is what the rules of messaging.ReactionWrite leave of writes to
// one channel: the live reactions per message, emojis in order of their earliest
// live reaction, and the users of each.
type reactionModel struct {
	live map[guildhall.Snowflake][]guildhall.Reaction // with Me for user me
	// users per message and emoji, ascending
	users map[guildhall.Snowflake]map[string][]guildhall.Snowflake
}

func modelReactions(writes []messaging.MessageWrite, me guildhall.Snowflake) reactionModel {
	decided := map[reactionKey]messaging.MessageWrite{}
	clearAll := map[guildhall.Snowflake]uint64{}
	clearEmoji := map[[2]string]uint64{}
	deleted := map[guildhall.Snowflake]bool{}
	for _, w := range writes {
		m := w.Message.ID
		if w.Reaction == nil {
			if w.Delete {
				deleted[m] = true
			}
			continue
		}
		r := w.Reaction
		switch r.Op {
		case messaging.ReactionAdd, messaging.ReactionRemove:
			k := reactionKey{m, r.Emoji, r.UserID}
			if cur, ok := decided[k]; !ok || w.Seq > cur.Seq {
				decided[k] = w
			}
		case messaging.ReactionRemoveEmoji:
			k := [2]string{m.String(), r.Emoji}
			clearEmoji[k] = max(clearEmoji[k], w.Seq)
		case messaging.ReactionRemoveAll:
			clearAll[m] = max(clearAll[m], w.Seq)
		}
	}
	type tally struct {
		r     guildhall.Reaction
		first uint64
		users []guildhall.Snowflake
	}
	per := map[guildhall.Snowflake]map[string]*tally{}
	for k, w := range decided {
		if w.Reaction.Op != messaging.ReactionAdd || deleted[k.msg] ||
			w.Seq <= clearAll[k.msg] || w.Seq <= clearEmoji[[2]string{k.msg.String(), k.emoji}] {
			continue
		}
		if per[k.msg] == nil {
			per[k.msg] = map[string]*tally{}
		}
		t := per[k.msg][k.emoji]
		if t == nil {
			t = &tally{r: guildhall.NewReaction(k.emoji), first: w.Seq}
			per[k.msg][k.emoji] = t
		}
		t.r.Count++
		t.r.CountDetails.Normal++
		t.r.Me = t.r.Me || k.user == me
		t.first = min(t.first, w.Seq)
		t.users = append(t.users, k.user)
	}
	out := reactionModel{live: map[guildhall.Snowflake][]guildhall.Reaction{}, users: map[guildhall.Snowflake]map[string][]guildhall.Snowflake{}}
	for m, byEmoji := range per {
		var ts []*tally
		out.users[m] = map[string][]guildhall.Snowflake{}
		for emoji, t := range byEmoji {
			ts = append(ts, t)
			slices.Sort(t.users)
			out.users[m][emoji] = t.users
		}
		slices.SortFunc(ts, func(a, b *tally) int { return cmp.Compare(a.first, b.first) })
		for _, t := range ts {
			out.live[m] = append(out.live[m], t.r)
		}
	}
	return out
}

func reactionsString(rs []guildhall.Reaction) string {
	b, _ := json.Marshal(rs)
	return string(b)
}

// checkReactions compares a channel's reactions (for user me) and reaction users
// with the model.
func checkReactions(t *testing.T, e *env, ch guildhall.Snowflake, msgs []guildhall.Snowflake, emojis []string, want reactionModel, me guildhall.Snowflake, how string) {
	t.Helper()
	got, err := e.s.Reactions(e.ctx, ch, msgs, me)
	check(t, err, "%s: Reactions", how)
	for _, m := range msgs {
		if g, w := reactionsString(got[m]), reactionsString(want.live[m]); g != w {
			t.Errorf("%s: Reactions of %v = %s; want %s", how, m, g, w)
		}
		for _, emoji := range emojis {
			users, err := e.s.ReactionUsers(e.ctx, ch, m, emoji, 0, 100)
			check(t, err, "%s: ReactionUsers", how)
			w := want.users[m][emoji]
			if w == nil {
				w = []guildhall.Snowflake{}
			}
			if fmt.Sprint(users) != fmt.Sprint(w) {
				t.Errorf("%s: ReactionUsers(%v, %q) = %v; want %v", how, m, emoji, users, w)
			}
		}
	}
	if extra := len(got) - len(want.live); extra != 0 {
		t.Errorf("%s: Reactions has %d messages; want %d", how, len(got), len(want.live))
	}
}

func testReactionsOrderFree(t *testing.T, e *env) {
	t0 := time.Date(2024, 6, 9, 23, 0, 0, 0, time.UTC) // messages in two buckets
	var msgs []guildhall.Snowflake
	for i := range 4 {
		msgs = append(msgs, guildhall.SnowflakeAt(t0.Add(time.Duration(i)*9*time.Hour)))
	}
	alice, bob, carol := e.id(), e.id(), e.id()
	emojis := []string{"👍", "🔥", "🇫🇷", "👨‍👩‍👧"}
	r := func(seq uint64, msg int, op messaging.ReactionOp, emoji string, user guildhall.Snowflake) messaging.MessageWrite {
		return messaging.MessageWrite{Seq: seq, Message: guildhall.Message{ID: msgs[msg]},
			Reaction: &messaging.ReactionWrite{Op: op, Emoji: emoji, UserID: user}}
	}
	add, rem := messaging.ReactionAdd, messaging.ReactionRemove
	writes := []messaging.MessageWrite{
		{Seq: 1, Message: guildhall.Message{ID: msgs[0], Content: "m0", Timestamp: msgs[0].Time()}},
		{Seq: 2, Message: guildhall.Message{ID: msgs[1], Content: "m1", Timestamp: msgs[1].Time()}},
		{Seq: 3, Message: guildhall.Message{ID: msgs[2], Content: "m2", Timestamp: msgs[2].Time()}},
		{Seq: 4, Message: guildhall.Message{ID: msgs[3], Content: "m3", Timestamp: msgs[3].Time()}},
		// m0: three emojis, one removed and added back, one removed for good.
		r(10, 0, add, "🔥", alice),
		r(11, 0, add, "👍", bob),
		r(12, 0, add, "👍", alice),
		r(13, 0, rem, "👍", bob),
		r(14, 0, add, "👍", bob), // back, after the remove
		r(15, 0, add, "🇫🇷", carol),
		r(16, 0, rem, "🇫🇷", carol),
		r(17, 0, add, "👨‍👩‍👧", carol),
		// m1: everything cleared at 23; one add before it stays cleared, one after counts.
		r(20, 1, add, "🔥", alice),
		r(21, 1, add, "👍", bob),
		r(22, 1, add, "👍", carol),
		{Seq: 23, Message: guildhall.Message{ID: msgs[1]}, Reaction: &messaging.ReactionWrite{Op: messaging.ReactionRemoveAll}},
		r(24, 1, add, "👍", alice),
		// m2: one emoji cleared at 32; the other stays.
		r(30, 2, add, "🔥", alice),
		r(31, 2, add, "👍", bob),
		{Seq: 32, Message: guildhall.Message{ID: msgs[2]}, Reaction: &messaging.ReactionWrite{Op: messaging.ReactionRemoveEmoji, Emoji: "🔥"}},
		r(33, 2, add, "🔥", carol),
		// m3: reacted, then the message is deleted; a late add stays gone.
		r(40, 3, add, "🔥", alice),
		{Seq: 41, Delete: true, Message: guildhall.Message{ID: msgs[3]}},
		r(42, 3, add, "👍", bob),
	}
	for _, me := range []guildhall.Snowflake{alice, bob} {
		want := modelReactions(writes, me)
		if len(want.live[msgs[0]]) != 3 || len(want.live[msgs[1]]) != 1 || len(want.live[msgs[2]]) != 2 || len(want.live[msgs[3]]) != 0 {
			t.Fatalf("model: %v", want.live) // guard the model itself
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
		checkReactions(t, e, ch, msgs, emojis, want, me, "in order")
		ch = e.id()
		apply(ch, reversed)
		checkReactions(t, e, ch, msgs, emojis, want, me, "reversed")
		ch = e.id()
		for _, w := range reversed {
			apply(ch, []messaging.MessageWrite{w})
		}
		checkReactions(t, e, ch, msgs, emojis, want, me, "reversed, one per batch")
		ch = e.id()
		apply(ch, writes, writes, append(slices.Clone(writes), writes...))
		checkReactions(t, e, ch, msgs, emojis, want, me, "repeated")
		for seed := range uint64(4) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			shuffled := append(slices.Clone(writes), writes[rnd.IntN(len(writes))])
			rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			ch = e.id()
			for len(shuffled) > 0 {
				n := min(len(shuffled), 1+rnd.IntN(6))
				apply(ch, shuffled[:n])
				shuffled = shuffled[n:]
			}
			checkReactions(t, e, ch, msgs, emojis, want, me, fmt.Sprintf("shuffled (seed %d)", seed))
		}
	}
}

// testReactionsLateWrites applies writes one call at a time, the way a writer
// that redelivers would, and checks after each step.
func testReactionsLateWrites(t *testing.T, e *env) {
	ch := e.id()
	m := guildhall.SnowflakeAt(time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC))
	u1, u2 := e.id(), e.id()
	apply := func(seq uint64, op messaging.ReactionOp, emoji string, user guildhall.Snowflake) {
		t.Helper()
		check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: seq, Message: guildhall.Message{ID: m, ChannelID: ch},
			Reaction: &messaging.ReactionWrite{Op: op, Emoji: emoji, UserID: user}}}), "ApplyMessages")
	}
	count := func(when, emoji string, want int) {
		t.Helper()
		got, err := e.s.Reactions(e.ctx, ch, []guildhall.Snowflake{m}, u1)
		check(t, err, "Reactions")
		n := 0
		for _, r := range got[m] {
			if r.Emoji.Name == emoji {
				n = r.Count
			}
		}
		if n != want {
			t.Errorf("%s: count of %s = %d; want %d (reactions %s)", when, emoji, n, want, reactionsString(got[m]))
		}
	}
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 1, Message: guildhall.Message{ID: m, ChannelID: ch, Content: "x", Timestamp: m.Time()}}}), "create")
	apply(10, messaging.ReactionRemove, "👍", u1)
	apply(9, messaging.ReactionAdd, "👍", u1)
	count("remove (10) then its earlier add (9)", "👍", 0)
	apply(11, messaging.ReactionAdd, "👍", u1)
	apply(12, messaging.ReactionAdd, "👍", u2)
	count("adds 11, 12", "👍", 2)
	apply(20, messaging.ReactionRemoveEmoji, "👍", 0)
	apply(13, messaging.ReactionAdd, "👍", u1)
	count("emoji cleared (20), late add (13)", "👍", 0)
	apply(21, messaging.ReactionAdd, "👍", u2)
	count("add after the clear (21)", "👍", 1)
	apply(30, messaging.ReactionRemoveAll, "", 0)
	apply(22, messaging.ReactionAdd, "🔥", u1)
	count("all cleared (30), late add (22)", "🔥", 0)
	count("all cleared (30)", "👍", 0)
	apply(31, messaging.ReactionAdd, "🔥", u1)
	apply(31, messaging.ReactionAdd, "🔥", u1) // a redelivery
	count("add after clear-all (31), twice", "🔥", 1)
}

func testReactionUsers(t *testing.T, e *env) {
	ch := e.id()
	m := guildhall.SnowflakeAt(time.Date(2024, 9, 2, 0, 0, 0, 0, time.UTC))
	var users []guildhall.Snowflake
	var writes []messaging.MessageWrite
	for i := range 7 {
		u := e.id()
		users = append(users, u)
		writes = append(writes, messaging.MessageWrite{Seq: uint64(10 + i), Message: guildhall.Message{ID: m, ChannelID: ch},
			Reaction: &messaging.ReactionWrite{Op: messaging.ReactionAdd, Emoji: "🎉", UserID: u}})
	}
	// Another emoji and another message with the same users must not leak in.
	writes = append(writes,
		messaging.MessageWrite{Seq: 30, Message: guildhall.Message{ID: m, ChannelID: ch}, Reaction: &messaging.ReactionWrite{Op: messaging.ReactionAdd, Emoji: "🎉🎉", UserID: users[0]}},
		messaging.MessageWrite{Seq: 31, Message: guildhall.Message{ID: m + 1, ChannelID: ch}, Reaction: &messaging.ReactionWrite{Op: messaging.ReactionAdd, Emoji: "🎉", UserID: e.id()}},
		messaging.MessageWrite{Seq: 32, Message: guildhall.Message{ID: m, ChannelID: ch}, Reaction: &messaging.ReactionWrite{Op: messaging.ReactionRemove, Emoji: "🎉", UserID: users[3]}},
	)
	check(t, e.s.ApplyMessages(e.ctx, writes), "ApplyMessages")
	want := slices.Delete(slices.Clone(users), 3, 4)
	var got []guildhall.Snowflake
	after := guildhall.Snowflake(0)
	for range 10 {
		page, err := e.s.ReactionUsers(e.ctx, ch, m, "🎉", after, 2)
		check(t, err, "ReactionUsers(after %v, 2)", after)
		if len(page) > 2 {
			t.Fatalf("ReactionUsers(limit 2) = %v", page)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ReactionUsers paged by 2 = %v; want %v", got, want)
	}
	none, err := e.s.ReactionUsers(e.ctx, ch, m, "🙂", 0, 100)
	check(t, err, "ReactionUsers(unused emoji)")
	if len(none) != 0 {
		t.Errorf("ReactionUsers(unused emoji) = %v; want none", none)
	}
}

func testLastMessageIDs(t *testing.T, e *env) {
	a, b, empty := e.id(), e.id(), e.id()
	t0 := time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC)
	m1, m2, m3 := guildhall.SnowflakeAt(t0), guildhall.SnowflakeAt(t0.Add(time.Hour)), guildhall.SnowflakeAt(t0.Add(400*time.Hour))
	msg := func(ch, id guildhall.Snowflake) guildhall.Message {
		return guildhall.Message{ID: id, ChannelID: ch, Content: "x", Timestamp: id.Time()}
	}
	// Out of order, with a delete of the newest, and a reaction and a pin of
	// something newer: neither is a message written.
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{
		{Seq: 3, Message: msg(a, m3)},
		{Seq: 1, Message: msg(a, m1)},
		{Seq: 4, Delete: true, Message: guildhall.Message{ID: m3, ChannelID: a}},
		{Seq: 2, Message: msg(b, m2)},
		{Seq: 5, Message: guildhall.Message{ID: m3 + 5, ChannelID: b}, Reaction: &messaging.ReactionWrite{Op: messaging.ReactionAdd, Emoji: "👍", UserID: 1}},
		pinWrite(6, guildhall.Message{ID: m3 + 6, ChannelID: b}, t0),
	}), "ApplyMessages")
	check(t, e.s.ApplyMessages(e.ctx, []messaging.MessageWrite{{Seq: 2, Message: msg(b, m1)}}), "ApplyMessages (older)")
	got, err := e.s.LastMessageIDs(e.ctx, []guildhall.Snowflake{a, b, empty})
	check(t, err, "LastMessageIDs")
	want := map[guildhall.Snowflake]guildhall.Snowflake{a: m3, b: m2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LastMessageIDs = %v; want %v (a deleted message stays the last, as on Discord)", got, want)
	}
}

func testReadStates(t *testing.T, e *env) {
	user, other := e.id(), e.id()
	c1, c2 := e.id(), e.id()
	put := func(u, ch, msg guildhall.Snowflake, version int64) {
		t.Helper()
		check(t, e.s.PutReadState(e.ctx, u, guildhall.ReadState{ChannelID: ch, LastMessageID: msg, Version: version}), "PutReadState")
	}
	put(user, c1, 500, 20)
	put(user, c1, 400, 10) // older ack, applied late: loses
	put(user, c1, 300, 30) // newer ack to an older message (marked unread): wins
	put(user, c2, 100, 5)
	put(user, c2, 200, 5) // same version: the higher message wins
	put(user, c2, 150, 5)
	put(other, c1, 999, 99)
	got, err := e.s.ReadStates(e.ctx, user)
	check(t, err, "ReadStates")
	type rs struct {
		ch, msg guildhall.Snowflake
		v       int64
	}
	var flat []rs
	for _, r := range got {
		flat = append(flat, rs{r.ChannelID, r.LastMessageID, r.Version})
	}
	want := []rs{{c1, 300, 30}, {c2, 200, 5}}
	if fmt.Sprint(flat) != fmt.Sprint(want) {
		t.Errorf("ReadStates = %v; want %v", flat, want)
	}
	none, err := e.s.ReadStates(e.ctx, e.id())
	check(t, err, "ReadStates(nobody)")
	if len(none) != 0 {
		t.Errorf("ReadStates(a user without acks) = %v", none)
	}
}

func testPrivateChannels(t *testing.T, e *env) {
	alice := guildhall.User{ID: e.id(), Username: "alice", Discriminator: "0"}
	bob := guildhall.User{ID: e.id(), Username: "bob", Discriminator: "0"}
	carol := guildhall.User{ID: e.id(), Username: "carol", Discriminator: "0"}
	dm := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeDM, Recipients: []guildhall.User{alice, bob}}
	got, created, err := e.s.CreatePrivateChannel(e.ctx, dm)
	check(t, err, "CreatePrivateChannel(DM)")
	if !created || got.ID != dm.ID {
		t.Fatalf("CreatePrivateChannel(DM) = %v, created %v; want %v, created", got.ID, created, dm.ID)
	}
	// The same pair, either way round: the existing DM.
	again := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeDM, Recipients: []guildhall.User{bob, alice}}
	got, created, err = e.s.CreatePrivateChannel(e.ctx, again)
	check(t, err, "CreatePrivateChannel(DM again)")
	if created || got.ID != dm.ID || len(got.Recipients) != 2 {
		t.Errorf("CreatePrivateChannel(same pair) = %v (%d recipients), created %v; want the existing %v", got.ID, len(got.Recipients), created, dm.ID)
	}
	name := "trio"
	group := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeGroupDM, Recipients: []guildhall.User{alice, bob, carol}, Name: &name, OwnerID: alice.ID}
	_, created, err = e.s.CreatePrivateChannel(e.ctx, group)
	check(t, err, "CreatePrivateChannel(group)")
	if !created {
		t.Errorf("CreatePrivateChannel(group) not created")
	}
	g, err := e.s.PrivateChannel(e.ctx, group.ID)
	check(t, err, "PrivateChannel(group)")
	if g.Type != guildhall.ChannelTypeGroupDM || g.OwnerID != alice.ID || g.Name == nil || *g.Name != name || len(g.Recipients) != 3 || !g.Has(carol.ID) {
		t.Errorf("PrivateChannel(group) = %+v", g)
	}
	list := func(u guildhall.User) []guildhall.Snowflake {
		chs, err := e.s.UserPrivateChannels(e.ctx, u.ID)
		check(t, err, "UserPrivateChannels(%s)", u.Username)
		var ids []guildhall.Snowflake
		for _, c := range chs {
			ids = append(ids, c.ID)
		}
		return ids
	}
	if got, want := list(alice), []guildhall.Snowflake{group.ID, dm.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("UserPrivateChannels(alice) = %v; want %v", got, want)
	}
	if got, want := list(carol), []guildhall.Snowflake{group.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("UserPrivateChannels(carol) = %v; want %v", got, want)
	}
	_, err = e.s.PrivateChannel(e.ctx, e.id())
	if !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("PrivateChannel(unknown) err = %v; want ErrNotFound", err)
	}
}

// privateChannelIDs lists a user's private channels by id, in the store's order.
func privateChannelIDs(t *testing.T, e *env, userID guildhall.Snowflake) []guildhall.Snowflake {
	t.Helper()
	chs, err := e.s.UserPrivateChannels(e.ctx, userID)
	check(t, err, "UserPrivateChannels(%v)", userID)
	ids := make([]guildhall.Snowflake, 0, len(chs))
	for _, c := range chs {
		ids = append(ids, c.ID)
	}
	return ids
}

// testPrivateChannelsNewestFirst: a user in more than MaxPrivateChannels
// channels is listed the newest ones, newest first; the oldest drop off, never
// a new one (what someone who adds a user to group after group would want).
func testPrivateChannelsNewestFirst(t *testing.T, e *env) {
	victim := guildhall.User{ID: e.id(), Username: "victim", Discriminator: "0"}
	flooder := guildhall.User{ID: e.id(), Username: "flooder", Discriminator: "0"}
	neighbour := guildhall.User{ID: e.id(), Username: "neighbour", Discriminator: "0"} // listed around the victim's key range
	_, _, err := e.s.CreatePrivateChannel(e.ctx, guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeGroupDM,
		Recipients: []guildhall.User{neighbour, flooder}, OwnerID: flooder.ID})
	check(t, err, "CreatePrivateChannel(neighbour's)")
	var ids []guildhall.Snowflake
	for range messaging.MaxPrivateChannels + 1 {
		ch := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeGroupDM, Recipients: []guildhall.User{flooder, victim}, OwnerID: flooder.ID}
		_, _, err := e.s.CreatePrivateChannel(e.ctx, ch)
		check(t, err, "CreatePrivateChannel(group %d)", len(ids))
		ids = append(ids, ch.ID)
	}
	real := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeDM, Recipients: []guildhall.User{victim, neighbour}}
	_, _, err = e.s.CreatePrivateChannel(e.ctx, real)
	check(t, err, "CreatePrivateChannel(the victim's real DM)")
	ids = append(ids, real.ID)
	slices.Reverse(ids)
	want := ids[:messaging.MaxPrivateChannels]
	got := privateChannelIDs(t, e, victim.ID)
	if len(got) != len(want) || got[0] != real.ID || !slices.Equal(got, want) {
		t.Fatalf("UserPrivateChannels(victim): %d channels, first %v; want the newest %d, first %v (the real DM), by id descending",
			len(got), got[:min(1, len(got))], len(want), real.ID)
	}
	if got := privateChannelIDs(t, e, neighbour.ID); len(got) != 2 || got[0] != real.ID {
		t.Errorf("UserPrivateChannels(neighbour) = %v; want the real DM, then the neighbour's group", got)
	}
}

// testLeavePrivateChannel: a leaver is out of the group and off their own
// list, the others keep it, the owner's leave passes the group on, leaves at
// once all count, and DMs cannot be left.
func testLeavePrivateChannel(t *testing.T, e *env) {
	alice := guildhall.User{ID: e.id(), Username: "alice", Discriminator: "0"}
	bob := guildhall.User{ID: e.id(), Username: "bob", Discriminator: "0"}
	carol := guildhall.User{ID: e.id(), Username: "carol", Discriminator: "0"}
	dave := guildhall.User{ID: e.id(), Username: "dave", Discriminator: "0"}
	name := "four"
	group := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeGroupDM, Name: &name,
		Recipients: []guildhall.User{alice, bob, carol, dave}, OwnerID: alice.ID}
	_, _, err := e.s.CreatePrivateChannel(e.ctx, group)
	check(t, err, "CreatePrivateChannel(group)")

	after, err := e.s.LeavePrivateChannel(e.ctx, group.ID, alice.ID)
	check(t, err, "LeavePrivateChannel(alice)")
	if after.Has(alice.ID) || len(after.Recipients) != 3 || after.OwnerID != bob.ID {
		t.Errorf("LeavePrivateChannel(owner alice) = %d recipients, owner %v, has alice %v; want 3, owner bob %v, no alice",
			len(after.Recipients), after.OwnerID, after.Has(alice.ID), bob.ID)
	}
	stored, err := e.s.PrivateChannel(e.ctx, group.ID)
	check(t, err, "PrivateChannel(group)")
	if stored.Has(alice.ID) || stored.OwnerID != bob.ID || stored.Name == nil || *stored.Name != name || len(stored.Recipients) != 3 {
		t.Errorf("PrivateChannel(group) after alice left = %+v", stored)
	}
	if got := privateChannelIDs(t, e, alice.ID); len(got) != 0 {
		t.Errorf("UserPrivateChannels(alice) after leaving = %v; want none", got)
	}
	if got := privateChannelIDs(t, e, bob.ID); !slices.Equal(got, []guildhall.Snowflake{group.ID}) {
		t.Errorf("UserPrivateChannels(bob) = %v; want [%v]", got, group.ID)
	}
	again, err := e.s.LeavePrivateChannel(e.ctx, group.ID, alice.ID)
	check(t, err, "LeavePrivateChannel(alice again)")
	if len(again.Recipients) != 3 || again.OwnerID != bob.ID {
		t.Errorf("LeavePrivateChannel(alice again) = %+v; want it unchanged", again)
	}

	// Two leaves at once: neither undoes the other.
	errs := make(chan error, 2)
	for _, u := range []guildhall.User{carol, dave} {
		go func() {
			_, err := e.s.LeavePrivateChannel(e.ctx, group.ID, u.ID)
			errs <- err
		}()
	}
	for range 2 {
		check(t, <-errs, "LeavePrivateChannel(carol or dave)")
	}
	stored, err = e.s.PrivateChannel(e.ctx, group.ID)
	check(t, err, "PrivateChannel(group)")
	if len(stored.Recipients) != 1 || !stored.Has(bob.ID) {
		t.Errorf("PrivateChannel(group) after carol and dave left at once = %v; want bob alone", stored.Recipients)
	}

	dm := guildhall.PrivateChannel{ID: e.id(), Type: guildhall.ChannelTypeDM, Recipients: []guildhall.User{alice, bob}}
	_, _, err = e.s.CreatePrivateChannel(e.ctx, dm)
	check(t, err, "CreatePrivateChannel(DM)")
	if _, err := e.s.LeavePrivateChannel(e.ctx, dm.ID, alice.ID); err == nil {
		t.Errorf("LeavePrivateChannel(a DM) = nil error; want refused")
	}
	if d, err := e.s.PrivateChannel(e.ctx, dm.ID); err != nil || !d.Has(alice.ID) {
		t.Errorf("PrivateChannel(DM) after a refused leave = %v, %v; want alice still in it", d.Recipients, err)
	}
	if _, err := e.s.LeavePrivateChannel(e.ctx, e.id(), alice.ID); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("LeavePrivateChannel(unknown) err = %v; want ErrNotFound", err)
	}
}
