package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// Direct messages. A DM or group DM channel belongs to no guild. Its events
// travel twice:
//
//   - once on the DM's log, ghnats.DMInSubject(channel): the copy the Writer
//     persists and the read barrier waits on. No gateway subscribes to it.
//   - once per participant, on the participant's user subject
//     (ghnats.UserInSubject): the copies gateways deliver. Every session already
//     receives its user subject live, joins it at its consistent cut and replays
//     it on RESUME, so DM events reach each session exactly once and in order
//     with no subscription per DM, and a participant sees a DM's CHANNEL_CREATE
//     (on the same subject) before its first message.
//
// The log copy is published first and all copies go back to back on one
// connection, which JetStream stores in order: whenever a participant has
// received an event, its log copy is stored too.

// errCannotDM is Discord's refusal to open a DM with someone who shares no guild.
var errCannotDM = &guildhall.Error{Status: 403, Code: 50007, Message: "Cannot send messages to this user"}

// dmAccess is the access layer's rule for DMs: the channel exists
// (ErrUnknownChannel otherwise) and the user takes part in it (ErrMissingAccess
// otherwise). A DM (two people) read once is kept (projection_dms.go); group
// DMs, whose participants change when one leaves, and DMs not kept are read
// from the store (503 while it is down).
func (s *Service) dmAccess(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (*guildhall.PrivateChannel, error) {
	dm, ok := s.proj.dms.get(channelID)
	if !ok {
		read, err := s.store.PrivateChannel(ctx, channelID)
		if errors.Is(err, ErrNotFound) {
			return nil, guildhall.ErrUnknownChannel
		}
		if err != nil {
			return nil, s.storeErr("private channel", err)
		}
		dm = &read
		if dm.Type == guildhall.ChannelTypeDM {
			s.proj.dms.put(dm)
		}
	}
	if !dm.Has(u.ID) {
		return nil, guildhall.ErrMissingAccess
	}
	c := *dm // callers fill LastMessageID; the kept one is shared
	return &c, nil
}

// sharesGuild is the access layer's rule for opening DMs: a and b are members of
// at least one common guild.
func (s *Service) sharesGuild(ctx context.Context, a, b guildhall.Snowflake) (bool, error) {
	ga, err := s.store.UserGuilds(ctx, a)
	if err != nil {
		return false, s.storeErr("user guilds", err)
	}
	gb, err := s.store.UserGuilds(ctx, b)
	if err != nil {
		return false, s.storeErr("user guilds", err)
	}
	for _, g := range ga {
		if _, found := slices.BinarySearch(gb, g); found {
			return true, nil
		}
	}
	return false, nil
}

// dmReachable is the same rule for what is sent in a DM (not a group DM): its
// other participant still shares a guild with u (errCannotDM otherwise), as on
// Discord. Without it, a ban from the only guild two users shared would not
// stop one of them messaging the other in a DM opened before. While the store
// is down the rule cannot be read and DMs go on (as they otherwise do, from
// the projection): refusing every DM for an outage would hurt more.
func (s *Service) dmReachable(ctx context.Context, u guildhall.User, c *conversation) error {
	if c.dm == nil || c.dm.Type != guildhall.ChannelTypeDM {
		return nil
	}
	for _, p := range c.dm.Recipients {
		if p.ID == u.ID {
			continue
		}
		ok, err := s.sharesGuild(ctx, u.ID, p.ID)
		if isUnavailable(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if !ok {
			return errCannotDM
		}
	}
	return nil
}

// OpenDM opens a DM with one recipient, or a group DM with 2 to 9 (10 people
// with the creator), each someone who shares a guild with u (errCannotDM
// otherwise). A DM with someone u has one with already is that one, and nothing
// is published; a new channel is announced with CHANNEL_CREATE to each
// participant's sessions. The channel is returned as u sees it.
func (s *Service) OpenDM(ctx context.Context, u guildhall.User, recipients []guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	ids := make([]guildhall.Snowflake, 0, len(recipients))
	for _, id := range recipients {
		if id != u.ID && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case len(recipients) == 0:
		return guildhall.PrivateChannel{}, guildhall.FieldError("recipient_id", "BASE_TYPE_REQUIRED", "This field is required")
	case len(ids) == 0:
		return guildhall.PrivateChannel{}, errCannotDM // only oneself
	case len(ids)+1 > guildhall.MaxGroupDMRecipients:
		return guildhall.PrivateChannel{}, guildhall.FieldError("recipients", "BASE_TYPE_MAX_LENGTH", "Must be 9 or fewer in length.")
	}
	users := []guildhall.User{u}
	for _, id := range ids {
		r, err := s.store.User(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return guildhall.PrivateChannel{}, guildhall.ErrUnknownUser
		}
		if err != nil {
			return guildhall.PrivateChannel{}, internal("recipient", err)
		}
		ok, err := s.sharesGuild(ctx, u.ID, id)
		if err != nil {
			return guildhall.PrivateChannel{}, err
		}
		if !ok {
			return guildhall.PrivateChannel{}, errCannotDM
		}
		users = append(users, r)
	}
	ch := guildhall.PrivateChannel{ID: s.ids.Next(), Type: guildhall.ChannelTypeDM, Recipients: users}
	if len(ids) > 1 { // repeats and oneself do not make a group
		ch.Type, ch.OwnerID = guildhall.ChannelTypeGroupDM, u.ID
		// Counted before it is made: a creation that then fails has spent its
		// place, which errs on the side of the people being added.
		if err := s.groupDMs.take(ctx, u.ID); err != nil {
			return guildhall.PrivateChannel{}, err
		}
	}
	ch, created, err := s.store.CreatePrivateChannel(ctx, ch)
	if err != nil {
		return guildhall.PrivateChannel{}, internal("create private channel", err)
	}
	if created {
		// Each participant's own copy (the recipients without them); no log copy:
		// the store has the channel already.
		var evs []guildhall.Event
		for _, p := range ch.Recipients {
			data, err := json.Marshal(ch.For(p.ID))
			if err != nil {
				return guildhall.PrivateChannel{}, internal("encode channel", err)
			}
			evs = append(evs, guildhall.Event{Type: guildhall.EventChannelCreate, ChannelID: ch.ID, UserID: p.ID, Data: data})
		}
		if err := s.publishInOrder(ctx, evs...); err != nil {
			return guildhall.PrivateChannel{}, err
		}
	}
	if err := s.fillLastMessageIDs(ctx, []*guildhall.PrivateChannel{&ch}); err != nil {
		return guildhall.PrivateChannel{}, err
	}
	return ch.For(u.ID), nil
}

// PrivateChannels lists the DM and group DM channels u takes part in, as u sees
// them, with their last message ids (READY's private_channels, GET
// /users/@me/channels): the newest MaxPrivateChannels, newest first (by when
// each was opened, its id; the store keeps no per-user order by activity).
func (s *Service) PrivateChannels(ctx context.Context, u guildhall.User) ([]guildhall.PrivateChannel, error) {
	chs, err := s.store.UserPrivateChannels(ctx, u.ID)
	if err != nil {
		return nil, internal("private channels", err)
	}
	// A leave that died between the channel and the list (CQL) leaves the
	// list pointing at a group u is no longer in: not shown.
	chs = slices.DeleteFunc(chs, func(c guildhall.PrivateChannel) bool { return !c.Has(u.ID) })
	ptrs := make([]*guildhall.PrivateChannel, len(chs))
	for i := range chs {
		ptrs[i] = &chs[i]
	}
	if err := s.fillLastMessageIDs(ctx, ptrs); err != nil {
		return nil, err
	}
	for i := range chs {
		chs[i] = chs[i].For(u.ID)
	}
	return chs, nil
}

// errCannotLeaveDM refuses DELETE on a DM between two people: Discord closes
// those (hides them from the list until the next message), which Guildhall
// does not do yet; they cannot be left.
var errCannotLeaveDM = &guildhall.Error{Status: 403, Code: 50003, Message: "Cannot execute action on a DM channel"}

// LeaveGroupDM takes u out of group DM channelID (Discord's DELETE
// /channels/{id} on a group DM) and returns the channel as u saw it. u can no
// longer read it nor post in it, it leaves u's list, u's sessions receive
// CHANNEL_DELETE, the others CHANNEL_RECIPIENT_REMOVE (and CHANNEL_UPDATE when
// u owned it: the group passes to the first remaining recipient). A DM
// between two people cannot be left (errCannotLeaveDM).
func (s *Service) LeaveGroupDM(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	dm, err := s.dmAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.PrivateChannel{}, err
	}
	if dm.Type != guildhall.ChannelTypeGroupDM {
		return guildhall.PrivateChannel{}, errCannotLeaveDM
	}
	after, err := s.store.LeavePrivateChannel(ctx, channelID, u.ID)
	if errors.Is(err, ErrNotFound) {
		return guildhall.PrivateChannel{}, guildhall.ErrUnknownChannel
	}
	if err != nil {
		return guildhall.PrivateChannel{}, s.storeErr("leave private channel", err)
	}
	if err := s.fillLastMessageIDs(ctx, []*guildhall.PrivateChannel{dm}); err != nil {
		return guildhall.PrivateChannel{}, err
	}
	seen := dm.For(u.ID)
	evs := make([]guildhall.Event, 0, 1+2*len(after.Recipients))
	data, err := json.Marshal(seen)
	if err != nil {
		return guildhall.PrivateChannel{}, internal("encode channel", err)
	}
	evs = append(evs, guildhall.Event{Type: guildhall.EventChannelDelete, ChannelID: channelID, UserID: u.ID, Data: data})
	removed, err := json.Marshal(guildhall.ChannelRecipientRemove{ChannelID: channelID, User: u})
	if err != nil {
		return guildhall.PrivateChannel{}, internal("encode recipient", err)
	}
	for _, p := range after.Recipients {
		evs = append(evs, guildhall.Event{Type: guildhall.EventChannelRecipientRemove, ChannelID: channelID, UserID: p.ID, Data: removed})
		if after.OwnerID != dm.OwnerID {
			after.LastMessageID = dm.LastMessageID
			upd, err := json.Marshal(after.For(p.ID))
			if err != nil {
				return guildhall.PrivateChannel{}, internal("encode channel", err)
			}
			evs = append(evs, guildhall.Event{Type: guildhall.EventChannelUpdate, ChannelID: channelID, UserID: p.ID, Data: upd})
		}
	}
	if err := s.publishInOrder(ctx, evs...); err != nil {
		return guildhall.PrivateChannel{}, err
	}
	return seen, nil
}

// PrivateChannel returns a DM channel u takes part in, as u sees it.
func (s *Service) PrivateChannel(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	dm, err := s.dmAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.PrivateChannel{}, err
	}
	if err := s.fillLastMessageIDs(ctx, []*guildhall.PrivateChannel{dm}); err != nil {
		return guildhall.PrivateChannel{}, err
	}
	return dm.For(u.ID), nil
}

func (s *Service) fillLastMessageIDs(ctx context.Context, chs []*guildhall.PrivateChannel) error {
	for chunk := range slices.Chunk(chs, MaxLastMessageQuery) {
		ids := make([]guildhall.Snowflake, len(chunk))
		for i, c := range chunk {
			ids[i] = c.ID
		}
		last, err := s.store.LastMessageIDs(ctx, ids)
		if err != nil {
			return internal("last message ids", err)
		}
		for _, c := range chunk {
			if id, ok := last[c.ID]; ok {
				c.LastMessageID = &id
			}
		}
	}
	return nil
}

// publishDM publishes an event of a DM: the log copy (Nats-Msg-Id id), which
// the Writer persists, then one copy per participant on its user subject
// (Nats-Msg-Id id.user).
func (s *Service) publishDM(ctx context.Context, dm *guildhall.PrivateChannel, ev guildhall.Event, id string) error {
	log := ghnats.EventMsg(ev, id)
	log.Subject = ghnats.DMInSubject(uint64(dm.ID))
	msgs := []*natsgo.Msg{log}
	for _, p := range dm.Recipients {
		copyEv := ev
		copyEv.GuildID, copyEv.UserID = 0, p.ID
		copyEv.Attachments = nil // the Writer's business, on the log copy
		msgs = append(msgs, ghnats.EventMsg(copyEv, id+"."+p.ID.String()))
	}
	return s.publishMsgs(ctx, msgs...)
}

// SubjectBarrier is a ReadBarrier that also waits for one subject of the
// stream (Barrier is one): DM reads need it for their logs.
type SubjectBarrier interface {
	WaitSubject(ctx context.Context, subject string) error
}

// waitDM is the read barrier of a DM: its log's last event is in the store.
// A ReadBarrier that cannot wait for a subject (a test's) does not wait.
func (s *Service) waitDM(ctx context.Context, channelID guildhall.Snowflake) error {
	if b, ok := s.barrier.(SubjectBarrier); ok {
		return b.WaitSubject(ctx, ghnats.DMInSubject(uint64(channelID)))
	}
	return nil
}
