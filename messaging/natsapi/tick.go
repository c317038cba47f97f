package natsapi

import (
	"context"
	"encoding/json"
	"strings"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// tick publishes a gateway's tick into the stream (ghnats.SubjectAPITick) and
// answers its sequence. Gateways may not publish into the stream: a message
// stored there with headers of the sender's choosing could later be served to
// others by a direct get, looking like what JetStream re-publishes.
func (r *Responder) tick(ctx context.Context, data []byte) any {
	var req guildhall.TickRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.TickReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	if !validNode(req.Node) {
		return guildhall.TickReply{Error: guildhall.FieldError("node", "BASE_TYPE_BAD_LENGTH", "A node name is 1 to 64 characters without '.', '*', '>' or spaces.").Remote()}
	}
	ack, err := r.js.Publish(ctx, ghnats.TickInSubject(req.Node), nil)
	if err != nil {
		return guildhall.TickReply{Error: r.replyError("tick", err)}
	}
	return guildhall.TickReply{Seq: ack.Sequence}
}

// validNode: a gateway's node name is one subject token.
func validNode(n string) bool {
	return n != "" && len(n) <= 64 && !strings.ContainsAny(n, ".*> \t\r\n")
}
