package messaging

import (
	"encoding/json"
	"fmt"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// decodeWrites turns a stream message into its store writes: those of
// decodeWrite, and the message writes of running a community, which go through
// the stream and the Writer like a single delete does (idempotent, order-free):
//
//   - MESSAGE_DELETE_BULK (bulk delete, and a ban's delete_message_seconds): a
//     delete of each id;
//   - CHANNEL_PINS_UPDATE: the pin or unpin its guildhall.MessagePin names.
func decodeWrites(h natsgo.Header, data []byte, seq uint64) ([]MessageWrite, error) {
	ev := ghnats.DecodeEvent(h, data)
	switch ev.Type {
	case guildhall.EventMessageDeleteBulk:
		var d guildhall.MessageDeleteBulk
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", ev.Type, err)
		}
		if d.ChannelID == 0 || len(d.IDs) > MaxBulkDelete {
			return nil, fmt.Errorf("%s: no channel, or %d ids", ev.Type, len(d.IDs))
		}
		out := make([]MessageWrite, 0, len(d.IDs))
		for _, id := range d.IDs {
			if id != 0 {
				out = append(out, MessageWrite{Seq: seq, Delete: true, Message: guildhall.Message{ID: id, ChannelID: d.ChannelID}})
			}
		}
		return out, nil
	case guildhall.EventChannelPinsUpdate:
		if ev.Pin == nil || ev.Pin.MessageID == 0 || ev.ChannelID == 0 {
			return nil, fmt.Errorf("%s: no pin, message or channel", ev.Type)
		}
		return []MessageWrite{{
			Seq:     seq,
			Message: guildhall.Message{ID: ev.Pin.MessageID, ChannelID: ev.ChannelID},
			Pin:     &PinWrite{Pinned: ev.Pin.Pinned, At: ev.Pin.At},
		}}, nil
	}
	mw, ok, err := decodeWrite(h, data, seq)
	if err != nil || !ok {
		return nil, err
	}
	return []MessageWrite{mw}, nil
}
