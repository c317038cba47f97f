package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// MembersRequest and MembersReply are the wire types of ghnats.SubjectAPIMembers,
// shared with gateways through the root package.
type (
	MembersRequest = guildhall.MembersRequest
	MembersReply   = guildhall.MembersReply
)

// Bounds of one MembersRequest.
const (
	MaxMembersPage = 1000
	MaxMembersScan = 10000
)

// MembersResponder serves ghnats.SubjectAPIMembers from the store. Every api
// process may run one (they share the requests through the responder's queue
// group).
type MembersResponder struct {
	*endpoints
	store Store
}

// NewMembersResponder subscribes the members endpoint on nc, with cfg's queue
// group, concurrency (zero value means 16: member pages are the heavy requests),
// timeout and logger (see ResponderConfig). Stop it with Close.
func NewMembersResponder(store Store, nc *natsgo.Conn, cfg ResponderConfig) (*MembersResponder, error) {
	if store == nil || nc == nil {
		return nil, errors.New("messaging: members responder needs a store and a connection")
	}
	r := &MembersResponder{endpoints: newEndpoints(cfg, 16), store: store}
	if err := r.serve(nc, map[string]func(context.Context, []byte) any{ghnats.SubjectAPIMembers: r.handle}); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *MembersResponder) handle(ctx context.Context, data []byte) any {
	var req MembersRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return MembersReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	rep, err := r.Members(ctx, req)
	if err != nil {
		return MembersReply{Error: r.replyError("members of guild "+req.GuildID.String(), err)}
	}
	return rep
}

// Members answers one request (see MembersRequest).
func (r *MembersResponder) Members(ctx context.Context, req MembersRequest) (MembersReply, error) {
	if _, err := r.store.Guild(ctx, req.GuildID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return MembersReply{}, guildhall.ErrUnknownGuild
		}
		return MembersReply{}, internal("guild", err)
	}
	limit := req.Limit
	if limit <= 0 || limit > MaxMembersPage {
		limit = MaxMembersPage
	}
	rep := MembersReply{Members: []guildhall.Member{}}
	switch {
	case len(req.UserIDs) > 0:
		if len(req.UserIDs) > MaxMembersPage {
			return MembersReply{}, guildhall.FieldError("user_ids", "BASE_TYPE_MAX_LENGTH", "Must be 1000 or fewer in length.")
		}
		for _, id := range req.UserIDs {
			m, err := r.store.Member(ctx, req.GuildID, id)
			switch {
			case errors.Is(err, ErrNotFound):
				rep.NotFound = append(rep.NotFound, id)
			case err != nil:
				return MembersReply{}, internal("member", err)
			default:
				rep.Members = append(rep.Members, m)
			}
		}
		rep.Done = true
		return rep, nil

	case req.Query != "":
		q := strings.ToLower(req.Query)
		scan := req.Scan
		if scan <= 0 || scan > MaxMembersScan {
			scan = MaxMembersScan
		}
		after := req.After
	pages:
		for rep.Scanned < scan {
			want := min(MaxMembersPage, scan-rep.Scanned)
			page, err := r.store.Members(ctx, req.GuildID, after, want)
			if err != nil {
				return MembersReply{}, internal("members", err)
			}
			for _, m := range page {
				rep.Scanned++
				after = m.User.ID
				if matches(m, q) {
					rep.Members = append(rep.Members, m)
					if len(rep.Members) == limit {
						break pages // go on after this one next time
					}
				}
			}
			if len(page) < want {
				rep.Done = true
				break
			}
		}
		rep.Next = after
		return rep, nil

	default:
		page, err := r.store.Members(ctx, req.GuildID, req.After, limit)
		if err != nil {
			return MembersReply{}, internal("members", err)
		}
		rep.Members = page
		if len(page) > 0 {
			rep.Next = page[len(page)-1].User.ID
		}
		rep.Done = len(page) < limit
		return rep, nil
	}
}

// matches reports whether the member's username or nick starts with q (lower
// case).
func matches(m guildhall.Member, q string) bool {
	if strings.HasPrefix(strings.ToLower(m.User.Username), q) {
		return true
	}
	return m.Nick != nil && strings.HasPrefix(strings.ToLower(*m.Nick), q)
}
