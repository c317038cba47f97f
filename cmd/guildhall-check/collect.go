package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// readStream reads the run's events from the EVENTS stream (as the operator,
// with an ordered consumer of the run's guild and user subjects): the truth
// every session and the history are held to.
func readStream(ctx context.Context, js jetstream.JetStream, guilds, users []guildhall.Snowflake) ([]streamEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var subjects []string
	for _, g := range guilds {
		subjects = append(subjects, ghnats.GuildInSubject(uint64(g)))
	}
	for _, u := range users {
		subjects = append(subjects, ghnats.UserInSubject(uint64(u)))
	}
	s, err := js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	var out []streamEvent
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n, pending := 0, uint64(1)
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			pending = md.NumPending
			out = append(out, toStreamEvent(md.Sequence.Stream, ghnats.DecodeEvent(m.Headers(), m.Data())))
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if pending == 0 || n == 0 {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading the stream: %w after %d events", ctx.Err(), len(out))
		}
	}
}

func toStreamEvent(seq uint64, ev guildhall.Event) streamEvent {
	se := streamEvent{Seq: seq, Type: ev.Type, Guild: ev.GuildID, Channel: ev.ChannelID, User: ev.UserID}
	var d struct {
		ID        guildhall.Snowflake `json:"id"`
		MessageID guildhall.Snowflake `json:"message_id"`
		UserID    guildhall.Snowflake `json:"user_id"`
		ChannelID guildhall.Snowflake `json:"channel_id"`
		Content   string              `json:"content"`
		Emoji     struct {
			Name string `json:"name"`
		} `json:"emoji"`
	}
	switch ev.Type {
	case guildhall.EventMessageCreate, guildhall.EventMessageUpdate, guildhall.EventMessageDelete:
		_ = json.Unmarshal(ev.Data, &d)
		se.Msg, se.Content = d.ID, d.Content
	case eventReactionAdd, eventReactionRemove:
		_ = json.Unmarshal(ev.Data, &d)
		se.Msg, se.Emoji, se.User = d.MessageID, d.Emoji.Name, d.UserID
	}
	if se.Channel == 0 {
		se.Channel = d.ChannelID
	}
	return se
}

// readHistory pages a channel's whole history, newest first, as a client
// scrolling back would (retrying while the api cannot answer).
func readHistory(ctx context.Context, rest *restClient, token string, channel guildhall.Snowflake) ([]histMessage, error) {
	var out []histMessage
	before := ""
	for {
		path := "/channels/" + channel.String() + "/messages?limit=100"
		if before != "" {
			path += "&before=" + before
		}
		var page []histMessage
		if err := rest.must(ctx, 2*time.Minute, "GET", path, token, nil, &page); err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		out = append(out, page...)
		before = page[len(page)-1].ID.String()
	}
}
