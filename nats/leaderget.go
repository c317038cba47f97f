package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reads from a stream's leader. A direct get (jetstream's GetLastMsgForSubject,
// a KeyValue's Get, on a stream with AllowDirect) is answered by any replica, and
// a replica that lags — a follower a moment behind the quorum, or a node cut off
// from the others or catching up after it — answers with an older message or
// none. What must not miss a write that was just acknowledged (the read barrier, a
// resume's registry entry) asks the leader: when it cannot be reached the call
// fails rather than answering from the past.

// leaderMsg is a stream's last message on a subject as STREAM.MSG.GET answers it.
type leaderMsg struct {
	Seq     uint64    `json:"seq"`
	Headers []byte    `json:"hdrs"`
	Data    []byte    `json:"data"`
	Time    time.Time `json:"time"`
}

// lastMsg is stream's last message on subject from the leader; nil when there is none.
func lastMsg(ctx context.Context, js jetstream.JetStream, stream, subject string) (*leaderMsg, error) {
	return leaderGet(ctx, js, stream, struct {
		LastBySubject string `json:"last_by_subj"`
	}{subject}, "last message of "+subject)
}

// leaderGet asks stream's leader for the message req names; nil when there is none.
func leaderGet(ctx context.Context, js jetstream.JetStream, stream string, req any, what string) (*leaderMsg, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	m, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.MSG.GET."+stream, data)
	if err != nil {
		return nil, fmt.Errorf("nats: %s: %w", what, err)
	}
	var resp struct {
		Message *leaderMsg          `json:"message"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("nats: %s: %w", what, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case resp.Error != nil:
		return nil, fmt.Errorf("nats: %s: %w", what, resp.Error)
	case resp.Message == nil:
		return nil, fmt.Errorf("nats: %s: an empty answer", what)
	}
	return resp.Message, nil
}

// StoredMsg is a message as a stream's leader has it.
type StoredMsg struct {
	Seq  uint64
	Data []byte
	Time time.Time // when the stream stored it
}

// NextMsg is stream's first message at or after seq on subject (wildcards
// allowed), as the stream's leader has it; found is false when there is none.
// For walking what must not be judged from a lagging replica's past.
func NextMsg(ctx context.Context, js jetstream.JetStream, stream, subject string, seq uint64) (m StoredMsg, found bool, err error) {
	lm, err := leaderGet(ctx, js, stream, struct {
		Seq           uint64 `json:"seq"`
		NextBySubject string `json:"next_by_subj"`
	}{seq, subject}, fmt.Sprintf("message of %s from %d", subject, seq))
	if lm == nil || err != nil {
		return StoredMsg{}, false, err
	}
	return StoredMsg{Seq: lm.Seq, Data: lm.Data, Time: lm.Time}, true, nil
}

// LastSequence is the sequence of stream's last message on subject (0: none),
// as the stream's leader has it.
func LastSequence(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	m, err := lastMsg(ctx, js, stream, subject)
	if m == nil || err != nil {
		return 0, err
	}
	return m.Seq, nil
}

// KVEntry is a key's last value as the leader of its bucket's stream has it.
type KVEntry struct {
	Value    []byte
	Revision uint64
	Created  time.Time
}

// LastKV reads key of bucket from the leader. found is false when the key has no
// value or was deleted.
func LastKV(ctx context.Context, js jetstream.JetStream, bucket, key string) (e KVEntry, found bool, err error) {
	m, err := lastMsg(ctx, js, "KV_"+bucket, "$KV."+bucket+"."+key)
	// A delete or purge leaves a marker with an operation header (KV-Operation:
	// DEL or PURGE); a value has none.
	if m == nil || err != nil || bytes.Contains(m.Headers, []byte("KV-Operation:")) {
		return e, false, err
	}
	return KVEntry{Value: m.Data, Revision: m.Seq, Created: m.Time}, true, nil
}
