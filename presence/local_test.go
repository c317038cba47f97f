package presence_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/presence"
)

// clock is a test's time: it moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func newLocal(c *clock) *presence.LocalUsers[string] {
	return presence.NewLocalUsers[string](presence.LocalConfig{MinUpdateInterval: time.Second, Now: c.now})
}

// write runs one queued write of uid's key the way a gateway's worker does, with
// the small guilds given when the machine asks for them, and returns what was
// written.
func write(t *testing.T, l *presence.LocalUsers[string], uid guildhall.Snowflake, guilds []guildhall.Snowflake, err error) (presence.State, []string) {
	t.Helper()
	w, ok := l.Begin(uid)
	if !ok {
		t.Fatalf("Begin(%d): user gone", uid)
	}
	sessions := slices.Clone(w.Sessions)
	slices.Sort(sessions)
	if w.Sessions != nil {
		l.SetGuilds(w, guilds)
	}
	st, k := l.State(w)
	if err == nil {
		k = presence.Known{Rev: k.Rev + 1, Exists: st.Sessions > 0}
		if st.Update != nil {
			k.Entry.Status = st.Update.Status
		}
	}
	l.Done(w, k, err)
	return st, sessions
}

// Sessions starting and ending each make the user's key due once; the write
// carries the session count, the presence IDENTIFY set, and the small guilds,
// recomputed only when the sessions changed; a user whose last session left is
// forgotten once written.
func TestLocalUsersSessions(t *testing.T) {
	l := newLocal(newClock())
	const alice = guildhall.Snowflake(7)
	dnd := &presence.Update{Status: presence.DND}
	if !l.Started("s1", alice, dnd) || l.Started("s1", alice, nil) {
		t.Fatal("Started: want a write for a new session and none for the same session again")
	}
	if !l.Queue(alice) || l.Queue(alice) {
		t.Fatal("Queue: want one queued write per user at a time")
	}
	st, sessions := write(t, l, alice, []guildhall.Snowflake{100}, nil)
	if st.Sessions != 1 || st.Update != dnd || !st.GuildsKnown || !slices.Equal(st.Guilds, []guildhall.Snowflake{100}) || !slices.Equal(sessions, []string{"s1"}) {
		t.Fatalf("first write = %+v (guilds asked for %v)", st, sessions)
	}

	if !l.Started("s2", alice, nil) || !l.Queue(alice) {
		t.Fatal("a second session makes the key due")
	}
	st, sessions = write(t, l, alice, []guildhall.Snowflake{100, 200}, nil)
	if st.Sessions != 2 || st.Update != nil || !slices.Equal(st.Guilds, []guildhall.Snowflake{100, 200}) || !slices.Equal(sessions, []string{"s1", "s2"}) {
		t.Fatalf("second write = %+v (guilds asked for %v); want 2 sessions, the status kept (no update), guilds recomputed", st, sessions)
	}
	// Nothing changed: a write (a retry) reuses the guilds it knows.
	if !l.Queue(alice) {
		t.Fatal("Queue after the write")
	}
	if st, sessions = write(t, l, alice, nil, nil); sessions != nil || !slices.Equal(st.Guilds, []guildhall.Snowflake{100, 200}) {
		t.Fatalf("unchanged write = %+v, asked for guilds of %v; want the known guilds, none recomputed", st, sessions)
	}

	if uid, due := l.Ended("unknown"); due || uid != 0 {
		t.Fatalf("Ended(unknown) = %d, %v", uid, due)
	}
	for _, s := range []string{"s1", "s2"} {
		if uid, due := l.Ended(s); uid != alice || !due {
			t.Fatalf("Ended(%s) = %d, %v; want %d, true", s, uid, due, alice)
		}
	}
	if !l.Queue(alice) {
		t.Fatal("the last session leaving makes the key due")
	}
	if st, _ := write(t, l, alice, nil, nil); st.Sessions != 0 {
		t.Fatalf("last write = %+v; want 0 sessions", st)
	}
	if l.Queue(alice) {
		t.Fatal("a user with no session and nothing pending is still known")
	}
}

// A change sooner than MinUpdateInterval after the last one waits; another one
// meanwhile replaces it, and the latest is what gets written once it is due.
func TestLocalUsersSpacesChanges(t *testing.T) {
	c := newClock()
	l := newLocal(c)
	const bob = guildhall.Snowflake(8)
	l.Started("s", bob, &presence.Update{Status: presence.Online})
	l.Queue(bob)
	write(t, l, bob, nil, nil)

	c.add(300 * time.Millisecond)
	idle := presence.Update{Status: presence.Idle}
	if uid, due, wait := l.Set("s", idle); uid != bob || due || wait != 700*time.Millisecond {
		t.Fatalf("Set 300ms after IDENTIFY's presence = %d, %v, %v; want to wait 700ms", uid, due, wait)
	}
	c.add(100 * time.Millisecond)
	dnd := presence.Update{Status: presence.DND}
	if _, due, wait := l.Set("s", dnd); due || wait != 0 {
		t.Fatalf("Set while a change waits = %v, %v; want neither (the waiting one is replaced)", due, wait)
	}
	c.add(600 * time.Millisecond)
	if !l.Due(bob) || !l.Queue(bob) {
		t.Fatal("the waiting change is not due")
	}
	if st, _ := write(t, l, bob, nil, nil); st.Update == nil || st.Update.Status != presence.DND {
		t.Fatalf("written %+v; want the latest change, dnd", st.Update)
	}
	c.add(time.Second)
	if _, due, wait := l.Set("s", idle); !due || wait != 0 {
		t.Fatalf("Set a whole interval later = %v, %v; want due now", due, wait)
	}
	if _, due, _ := l.Set("unknown", idle); due {
		t.Fatal("a change from an unknown session is due")
	}
}

// A change that arrives while its predecessor is being written stays pending:
// the write in flight does not clear it.
func TestLocalUsersChangeDuringWrite(t *testing.T) {
	c := newClock()
	l := newLocal(c)
	const u = guildhall.Snowflake(9)
	l.Started("s", u, nil)
	l.Queue(u)
	w, _ := l.Begin(u)
	c.add(2 * time.Second)
	if _, due, _ := l.Set("s", presence.Update{Status: presence.Idle}); !due {
		t.Fatal("Set not due")
	}
	st, k := l.State(w)
	l.Done(w, presence.Known{Rev: k.Rev + 1, Exists: true}, nil)
	if st.Update != nil {
		t.Fatalf("the write in flight carries %+v; it began before the change", st.Update)
	}
	if !l.Queue(u) {
		t.Fatal("Queue")
	}
	if st, _ := write(t, l, u, nil, nil); st.Update == nil || st.Update.Status != presence.Idle {
		t.Fatalf("next write = %+v; want the change made during the last one", st.Update)
	}
}

// A failed write keeps the user until a write succeeds, even with no session
// left; the refresh lists it, and rewrites keys whose guilds changed, that are
// old, or all of them when the heartbeat was lost.
func TestLocalUsersRefresh(t *testing.T) {
	c := newClock()
	l := newLocal(c)
	const a, b, gone = guildhall.Snowflake(1), guildhall.Snowflake(2), guildhall.Snowflake(3)
	for i, uid := range []guildhall.Snowflake{a, b, gone} {
		l.Started(string(rune('a'+i)), uid, nil)
		l.Queue(uid)
		write(t, l, uid, []guildhall.Snowflake{100}, nil)
	}
	l.Ended("c")
	l.Queue(gone)
	write(t, l, gone, nil, errors.New("nats: timeout"))

	snap := l.Snapshot()
	if len(snap) != 3 || !slices.Equal(snap[a], []string{"a"}) || snap[gone] != nil {
		t.Fatalf("Snapshot = %v; want a and b with their sessions, gone (failed) with none", snap)
	}
	c.add(time.Minute)
	guilds := map[guildhall.Snowflake][]guildhall.Snowflake{a: {100}, b: {100, 200}, gone: nil}
	got := l.Rewrite(guilds, false, time.Time{})
	slices.Sort(got)
	if !slices.Equal(got, []guildhall.Snowflake{b, gone}) {
		t.Fatalf("Rewrite = %v; want b (guilds changed) and gone (failed)", got)
	}
	got = l.Rewrite(guilds, false, c.now().Add(-30*time.Second))
	slices.Sort(got)
	if !slices.Equal(got, []guildhall.Snowflake{a, b, gone}) {
		t.Fatalf("Rewrite of keys older than 30s = %v; want all three", got)
	}
	if got := l.Rewrite(map[guildhall.Snowflake][]guildhall.Snowflake{a: {100}}, true, time.Time{}); !slices.Equal(got, []guildhall.Snowflake{a}) {
		t.Fatalf("Rewrite(all) = %v; want a", got)
	}

	l.Queue(gone)
	write(t, l, gone, nil, nil)
	if l.Queue(gone) {
		t.Fatal("a user with no session is kept after its write succeeded")
	}
}

func TestLocalUsersInvisible(t *testing.T) {
	l := newLocal(newClock())
	l.Started("a", 1, &presence.Update{Status: presence.Invisible})
	l.Started("b", 2, &presence.Update{Status: presence.Idle})
	for _, uid := range []guildhall.Snowflake{1, 2} {
		l.Queue(uid)
		write(t, l, uid, nil, nil)
	}
	if got := l.Invisible(); len(got) != 1 || !got[1] {
		t.Fatalf("Invisible() = %v; want user 1", got)
	}
}
