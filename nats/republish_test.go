package nats_test

import (
	"testing"

	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rePublishHeader is what RePublish adds to an event of guild 7 stored at
// sequence 42, the guild's previous one at 40.
func rePublishHeader() natsgo.Header {
	return natsgo.Header{
		jetstream.StreamHeader:       {ghnats.StreamEvents},
		jetstream.SubjectHeader:      {ghnats.GuildInSubject(7)},
		jetstream.SequenceHeader:     {"42"},
		"Nats-Time-Stamp":            {"2026-01-01T00:00:00Z"},
		jetstream.LastSequenceHeader: {"40"},
		ghnats.HeaderType:            {"MESSAGE_CREATE"},
	}
}

func TestRePublished(t *testing.T) {
	subject := ghnats.GuildEventSubject(7)
	if seq, last, ok := ghnats.RePublished(subject, rePublishHeader()); !ok || seq != 42 || last != 40 {
		t.Fatalf("RePublished(genuine) = %d, %d, %v; want 42, 40, true", seq, last, ok)
	}
	for name, change := range map[string]func(h natsgo.Header){
		"a direct get (no last sequence)": func(h natsgo.Header) { delete(h, jetstream.LastSequenceHeader) },
		"a batch direct get":              func(h natsgo.Header) { h.Set("Nats-Num-Pending", "3") },
		"another guild's event":           func(h natsgo.Header) { h.Set(jetstream.SubjectHeader, ghnats.GuildInSubject(8)) },
		"a user event on a guild subject": func(h natsgo.Header) { h.Set(jetstream.SubjectHeader, ghnats.UserInSubject(7)) },
		"another stream":                  func(h natsgo.Header) { h.Set(jetstream.StreamHeader, "KV_gh_sessions") },
		"a stored Nats-Sequence":          func(h natsgo.Header) { h.Add(jetstream.SequenceHeader, "99") },
		"a stored Nats-Subject":           func(h natsgo.Header) { h[jetstream.SubjectHeader] = []string{"x", ghnats.GuildInSubject(7)} },
		"no stream headers (a core publish)": func(h natsgo.Header) {
			for _, k := range []string{jetstream.StreamHeader, jetstream.SubjectHeader, jetstream.SequenceHeader, jetstream.LastSequenceHeader} {
				delete(h, k)
			}
		},
		"a last sequence not before it": func(h natsgo.Header) { h.Set(jetstream.LastSequenceHeader, "42") },
		"a sequence that is no number":  func(h natsgo.Header) { h.Set(jetstream.SequenceHeader, "4x") },
	} {
		h := rePublishHeader()
		change(h)
		if seq, _, ok := ghnats.RePublished(subject, h); ok {
			t.Errorf("RePublished(%s) = %d, true; want false", name, seq)
		}
	}
	if _, _, ok := ghnats.RePublished(ghnats.GuildEventSubject(8), rePublishHeader()); ok {
		t.Error("guild 7's event accepted on guild 8's subject")
	}
	if _, _, ok := ghnats.RePublished(ghnats.EphemeralGuildSubject(7), rePublishHeader()); ok {
		t.Error("an event accepted on a subject that is not re-published")
	}
}

// The check runs once per event per gateway on the fan-out path (not per
// recipient).
func BenchmarkRePublished(b *testing.B) {
	h, subject := rePublishHeader(), ghnats.GuildEventSubject(7)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, ok := ghnats.RePublished(subject, h); !ok {
			b.Fatal("not accepted")
		}
	}
}
