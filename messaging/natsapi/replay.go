package natsapi

import (
	"context"
	"encoding/json"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// replay creates a gateway's replay consumer (ghnats.SubjectAPIReplay): gateways
// may not create consumers, since a consumer can deliver stored events to any
// subject. The api makes only the pull consumer ReplayConsumerConfig describes.
func (r *Responder) replay(ctx context.Context, data []byte) any {
	var req guildhall.ReplayRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.ReplayReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	cfg, err := ghnats.ReplayConsumerConfig(req)
	if err != nil {
		return guildhall.ReplayReply{Error: guildhall.FieldError("guilds", "BASE_TYPE_BAD_LENGTH", err.Error()).Remote()}
	}
	c, err := r.js.CreateConsumer(ctx, ghnats.StreamEvents, cfg)
	if err != nil {
		return guildhall.ReplayReply{Error: r.replyError("replay consumer", err)}
	}
	return guildhall.ReplayReply{Consumer: c.CachedInfo().Name}
}
