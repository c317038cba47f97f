package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What a gateway reads of the EVENTS stream without a consumer: batch direct gets
// (JetStream's DIRECT.GET API with multi_last or next_by_subj and a batch), one
// request and a few answers for what would otherwise be a request per event or per
// guild. Any replica of the stream answers a direct get, and a replica may be a
// little behind the leader, so every read says what it must find: a read that ends
// before it was answered by a replica that is behind (ErrReplicaBehind), and the
// caller asks again.

// ErrReplicaBehind: the replica that answered a direct get had not yet stored the
// message the read needed to see.
var ErrReplicaBehind = errors.New("nats: the stream replica that answered is behind")

// MaxLastSequences bounds the subjects of one LastSequences call: the server
// answers a multi_last with at most 1024 messages.
const MaxLastSequences = 1000

// DirectGetSubject is where direct gets of stream go, through js's API prefix (a
// JetStream domain, when js was made with one).
func DirectGetSubject(js jetstream.JetStream, stream string) string {
	return APIPrefix(js) + "DIRECT.GET." + stream
}

// APIPrefix is the subject prefix of js's JetStream API requests: "$JS.API." or
// that of its domain or custom prefix.
func APIPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// LastSequences returns, for each of subjects that has a message with a sequence
// of at most upTo, the sequence of its last such message (one batch direct get).
// witness is a subject whose last message up to upTo is upTo itself (a gateway's
// tick): an answer that does not show it comes from a replica that has not stored
// upTo yet, and is ErrReplicaBehind.
func LastSequences(ctx context.Context, nc *natsgo.Conn, js jetstream.JetStream, subjects []string, witness string, upTo uint64) (map[string]uint64, error) {
	if len(subjects)+1 > MaxLastSequences {
		return nil, fmt.Errorf("nats: %d subjects in one multi_last; at most %d", len(subjects), MaxLastSequences-1)
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		UpToSeq   uint64   `json:"up_to_seq"`
	}{append(subjects[:len(subjects):len(subjects)], witness), upTo})
	if err != nil {
		return nil, err
	}
	last := make(map[string]uint64, len(subjects)+1)
	err = directGet(ctx, nc, js, req, func(m *natsgo.Msg, seq uint64) bool {
		last[m.Header.Get(jetstream.SubjectHeader)] = seq
		return true
	})
	if err != nil {
		return nil, err
	}
	if last[witness] != upTo {
		return nil, ErrReplicaBehind
	}
	delete(last, witness)
	return last, nil
}

// StoredEvent is an event as the stream stored it: its sequence, headers and body.
type StoredEvent struct {
	Seq    uint64
	Header natsgo.Header
	Data   []byte
}

// EventsAfter returns the stored messages of subject with a sequence above after,
// in order: at most max of them, and none past until (0: no bound). more reports
// that the stream holds further ones below until (or at all, without a bound).
// A caller that knows a message must be there treats its absence as
// ErrReplicaBehind.
func EventsAfter(ctx context.Context, nc *natsgo.Conn, js jetstream.JetStream, subject string, after, until uint64, max int) (events []StoredEvent, more bool, err error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{after + 1, subject, max})
	if err != nil {
		return nil, false, err
	}
	err = directGet(ctx, nc, js, req, func(m *natsgo.Msg, seq uint64) bool {
		if until != 0 && seq > until {
			more = false
			return false
		}
		events = append(events, StoredEvent{Seq: seq, Header: m.Header, Data: m.Data})
		pending, _ := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
		more = pending > 0
		return true
	})
	if err != nil {
		return nil, false, err
	}
	return events, more, nil
}

// directGet sends one batch direct get of the EVENTS stream and calls f with each
// message of the answer and its sequence until f returns false or the answer ends.
// A batch that finds nothing ends the same way (no error).
func directGet(ctx context.Context, nc *natsgo.Conn, js jetstream.JetStream, req []byte, f func(m *natsgo.Msg, seq uint64) bool) error {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(DirectGetSubject(js, StreamEvents), inbox, req); err != nil {
		return err
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("nats: direct get: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204", "404": // end of the batch, or nothing matched
			return nil
		default:
			return fmt.Errorf("nats: direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return fmt.Errorf("nats: direct get: message without its sequence")
		}
		if !f(m, seq) {
			return nil
		}
	}
}
