package nats

import (
	"strconv"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RePublished reads a message received on a re-published subject (gh.ev.…): ok
// only if the stream's RePublish made it, for this very subject, and then the
// event's stream sequence and the previous one on its subject.
//
// Nobody may publish on these subjects, but JetStream answers a request on
// whatever reply subject the request names, and a direct get's answer carries a
// Nats-Sequence too: a client allowed to read the stream can have the last event
// of guild A delivered on gh.ev.g.B, or an old user event of one user on another
// user's subject. RePublish's copies are told apart by their headers: one
// Nats-Stream (EVENTS), one Nats-Subject (the input subject of this one), one
// Nats-Sequence, one Nats-Last-Sequence, no Nats-Num-Pending. A direct get adds
// no Nats-Last-Sequence, a batch one adds Nats-Num-Pending, and a stored
// message has none of these headers, as only the api publishes into the stream
// (ticks included), so nothing in the stream can imitate RePublish's.
func RePublished(subject string, h natsgo.Header) (seq, last uint64, ok bool) {
	stream, from := h[jetstream.StreamHeader], h[jetstream.SubjectHeader]
	seqs, lasts := h[jetstream.SequenceHeader], h[jetstream.LastSequenceHeader]
	if len(stream) != 1 || stream[0] != StreamEvents || len(from) != 1 || len(seqs) != 1 || len(lasts) != 1 || len(h[numPendingHeader]) != 0 {
		return 0, 0, false
	}
	// gh.ev.<kind>.<id> comes from gh.in.<kind>.<id>, and no other.
	if len(subjectIn) != len(subjectOut) || !strings.HasPrefix(subject, subjectOut) || !strings.HasPrefix(from[0], subjectIn) ||
		subject[len(subjectOut):] != from[0][len(subjectIn):] {
		return 0, 0, false
	}
	seq, err := strconv.ParseUint(seqs[0], 10, 64)
	if err != nil || seq == 0 {
		return 0, 0, false
	}
	last, err = strconv.ParseUint(lasts[0], 10, 64)
	if err != nil || last >= seq {
		return 0, 0, false
	}
	return seq, last, true
}

// numPendingHeader is what a batch direct get adds and RePublish never does.
const numPendingHeader = "Nats-Num-Pending"
