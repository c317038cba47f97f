package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	"github.com/guildhall/guildhall/messaging/storetest"
)

func openBolt(t testing.TB, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBoltStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) messaging.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "store.db"))
	})
}

func TestBoltReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "store.db") // parents are created
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	user := guildhall.User{ID: 10, Username: "Alice"}
	id := guildhall.SnowflakeAt(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	steps := []error{
		s.CreateUser(ctx, messaging.UserRecord{User: user, PasswordHash: "h"}),
		s.PutGuild(ctx, guildhall.Guild{ID: 20, Name: "g", OwnerID: 10}),
		s.PutMember(ctx, guildhall.Member{GuildID: 20, User: guildhall.User{ID: 10}}),
		s.ApplyMessages(ctx, []messaging.MessageWrite{
			{Seq: 1, Message: guildhall.Message{ID: id, ChannelID: 30, Content: "kept"}},
			{Seq: 2, Message: guildhall.Message{ID: id + 1, ChannelID: 30, Content: "deleted"}},
			{Seq: 3, Delete: true, Message: guildhall.Message{ID: id + 1, ChannelID: 30}},
		}),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openBolt(t, path)
	if rec, err := s.UserByName(ctx, "alice"); err != nil || rec.User.ID != 10 {
		t.Errorf("after reopen: UserByName(alice) = %+v, %v; want user 10", rec, err)
	}
	if g, err := s.Guild(ctx, 20); err != nil || g.MemberCount != 1 {
		t.Errorf("after reopen: Guild(20) = %+v, %v; want 1 member", g, err)
	}
	if m, err := s.Message(ctx, 30, id); err != nil || m.Content != "kept" {
		t.Errorf("after reopen: Message(%v) = %q, %v; want %q", id, m.Content, err, "kept")
	}
	// The tombstone survived too: a redelivered create stays deleted.
	if err := s.ApplyMessages(ctx, []messaging.MessageWrite{{Seq: 2, Message: guildhall.Message{ID: id + 1, ChannelID: 30, Content: "deleted"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(ctx, 30, id+1); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("after reopen and redelivery: Message(%v) err = %v; want ErrNotFound", id+1, err)
	}
}

// TestBoltSecondOpenFails: flock is per open file description, so a second
// Open in the same process stands in for a second process. It waits out the
// one-second lock timeout.
func TestBoltSecondOpenFails(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	first, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	second, err := bolt.Open(path)
	if !errors.Is(err, bolt.ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open on an open file: err = %v; want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	openBolt(t, path) // free again once the owner closed it
}

// TestBoltApplyMessagesAtomic: a batch with a bad write leaves nothing behind,
// so the writer can retry the whole batch without reasoning about a prefix.
func TestBoltApplyMessagesAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"))
	id := guildhall.SnowflakeAt(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	err := s.ApplyMessages(ctx, []messaging.MessageWrite{
		{Seq: 1, Message: guildhall.Message{ID: id, ChannelID: 30, Content: "good"}},
		{Seq: 2, Message: guildhall.Message{ID: 0, ChannelID: 30, Content: "no id"}},
	})
	if err == nil {
		t.Fatal("ApplyMessages with a zero id: no error")
	}
	if _, err := s.Message(ctx, 30, id); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("Message(%v) after a failed batch: err = %v; want ErrNotFound", id, err)
	}
}

func TestBoltHistoryRejectsBadQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"))
	for _, q := range []messaging.HistoryQuery{{Limit: 0}, {Limit: 101}, {Before: 5, After: 3, Limit: 10}} {
		if _, err := s.History(ctx, 1, q); err == nil {
			t.Errorf("History(%+v): no error", q)
		}
	}
}

func benchMessage(ch guildhall.Snowflake, id guildhall.Snowflake) guildhall.Message {
	return guildhall.Message{
		ID: id, ChannelID: ch, GuildID: 1, Timestamp: id.Time(),
		Author:  guildhall.User{ID: 42, Username: "alice", Discriminator: "0"},
		Content: "a message of typical length, about as long as a sentence or two in a busy channel",
	}
}

// BenchmarkBoltApplyMessages: one op is a batch of 100 new messages (one
// transaction, one fsync), as the writer sends them.
func BenchmarkBoltApplyMessages(b *testing.B) {
	ctx := context.Background()
	s := openBolt(b, filepath.Join(b.TempDir(), "store.db"))
	next := guildhall.SnowflakeAt(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	seq := uint64(0)
	batch := make([]messaging.MessageWrite, 100)
	for b.Loop() {
		for i := range batch {
			seq++
			next += 1 << 22 // one message per millisecond
			batch[i] = messaging.MessageWrite{Seq: seq, Message: benchMessage(guildhall.Snowflake(1+seq%8), next)}
		}
		if err := s.ApplyMessages(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seq), "ns/msg")
}

// BenchmarkBoltHistoryLatest50: the newest page of a channel holding 20,000
// messages over about 200 days, among other channels.
func BenchmarkBoltHistoryLatest50(b *testing.B) {
	ctx := context.Background()
	s := openBolt(b, filepath.Join(b.TempDir(), "store.db"))
	start := guildhall.SnowflakeAt(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	seq := uint64(0)
	for range 200 {
		batch := make([]messaging.MessageWrite, 0, 300)
		for range 300 {
			seq++
			id := start + guildhall.Snowflake(seq)*(300_000<<22) // every 5 minutes
			batch = append(batch, messaging.MessageWrite{Seq: seq, Message: benchMessage(guildhall.Snowflake(1+seq%3), id)})
		}
		if err := s.ApplyMessages(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		got, err := s.History(ctx, 2, messaging.HistoryQuery{Limit: 50})
		if err != nil || len(got) != 50 {
			b.Fatal(fmt.Sprint(len(got), err))
		}
	}
}
