package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LastSequence is the sequence of stream's last message on subject (0: none),
// as the stream's leader has it. A direct get (jetstream's GetLastMsgForSubject
// on a stream with AllowDirect) is answered by any replica, and a replica that
// lags — a follower a moment behind the quorum, or a node cut off from the
// others — answers with an older message or none. What must not miss a write
// that was just acknowledged (the read barrier) asks the leader: when it cannot
// be reached the call fails rather than answering from the past.
func LastSequence(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return 0, err
	}
	m, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.MSG.GET."+stream, req)
	if err != nil {
		return 0, fmt.Errorf("nats: last message of %s: %w", subject, err)
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("nats: last message of %s: %w", subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("nats: last message of %s: %w", subject, resp.Error)
	case resp.Message == nil:
		return 0, fmt.Errorf("nats: last message of %s: an empty answer", subject)
	}
	return resp.Message.Seq, nil
}

// KVEntry is a key's last value as the leader of its bucket's stream has it.
type KVEntry struct {
	Value    []byte
	Revision uint64
	Created  time.Time
}

// LastKV reads key of bucket from the leader (see LastSequence for why a direct
// get, which a KeyValue's Get is, may answer from the past: a replica cut off by a
// partition, or one catching up after it, answers "no such key" for a key that
// exists). found is false when the key has no value or was deleted.
func LastKV(ctx context.Context, js jetstream.JetStream, bucket, key string) (e KVEntry, found bool, err error) {
	subject := "$KV." + bucket + "." + key
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return e, false, err
	}
	m, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return e, false, fmt.Errorf("nats: %s: %w", subject, err)
	}
	var resp struct {
		Message *struct {
			Seq     uint64    `json:"seq"`
			Headers []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return e, false, fmt.Errorf("nats: %s: %w", subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return e, false, nil
	case resp.Error != nil:
		return e, false, fmt.Errorf("nats: %s: %w", subject, resp.Error)
	case resp.Message == nil:
		return e, false, fmt.Errorf("nats: %s: an empty answer", subject)
	}
	// A delete or purge leaves a marker with an operation header (KV-Operation:
	// DEL or PURGE); a value has none.
	if bytes.Contains(resp.Message.Headers, []byte("KV-Operation:")) {
		return e, false, nil
	}
	return KVEntry{Value: resp.Message.Data, Revision: resp.Message.Seq, Created: resp.Message.Time}, true, nil
}
