package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// Bounds of one guildhall.MembersRequest.
const (
	MaxMembersPage = 1000
	MaxMembersScan = 10000
)

// MemberStore is what the members endpoint reads: whether a guild exists, one
// membership, a page of memberships by user id (as messaging.Store documents
// them). Every messaging.Store is one.
type MemberStore interface {
	Guild(ctx context.Context, id guildhall.Snowflake) (guildhall.Guild, error)
	Member(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, error)
	Members(ctx context.Context, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error)
}

// MembersResponder serves ghnats.SubjectAPIMembers from the store. Every api
// process may run one (they share the requests through the responder's queue
// group).
type MembersResponder struct {
	*endpoints
	store MemberStore
}

// NewMembersResponder subscribes the members endpoint on nc with cfg's queue
// group, concurrency, timeout and logger. Stop it with Close.
func NewMembersResponder(store MemberStore, nc *natsgo.Conn, cfg Config) (*MembersResponder, error) {
	if store == nil || nc == nil {
		return nil, errors.New("natsapi: members responder needs a store and a connection")
	}
	r := &MembersResponder{endpoints: newEndpoints(cfg, 16), store: store}
	if err := r.serve(nc, map[string]func(context.Context, []byte) any{ghnats.SubjectAPIMembers: r.handle}); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *MembersResponder) handle(ctx context.Context, data []byte) any {
	var req guildhall.MembersRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return guildhall.MembersReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	rep, err := r.Members(ctx, req)
	if err != nil {
		return guildhall.MembersReply{Error: r.replyError("members of guild "+req.GuildID.String(), err)}
	}
	return rep
}

// Members answers one request (see guildhall.MembersRequest).
func (r *MembersResponder) Members(ctx context.Context, req guildhall.MembersRequest) (guildhall.MembersReply, error) {
	if _, err := r.store.Guild(ctx, req.GuildID); err != nil {
		if errors.Is(err, messaging.ErrNotFound) {
			return guildhall.MembersReply{}, guildhall.ErrUnknownGuild
		}
		return guildhall.MembersReply{}, fmt.Errorf("guild: %w", err)
	}
	limit := req.Limit
	if limit <= 0 || limit > MaxMembersPage {
		limit = MaxMembersPage
	}
	rep := guildhall.MembersReply{Members: []guildhall.Member{}}
	switch {
	case len(req.UserIDs) > 0:
		if len(req.UserIDs) > MaxMembersPage {
			return guildhall.MembersReply{}, guildhall.FieldError("user_ids", "BASE_TYPE_MAX_LENGTH", "Must be 1000 or fewer in length.")
		}
		for _, id := range req.UserIDs {
			m, err := r.store.Member(ctx, req.GuildID, id)
			switch {
			case errors.Is(err, messaging.ErrNotFound):
				rep.NotFound = append(rep.NotFound, id)
			case err != nil:
				return guildhall.MembersReply{}, fmt.Errorf("member: %w", err)
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
				return guildhall.MembersReply{}, fmt.Errorf("members: %w", err)
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
			return guildhall.MembersReply{}, fmt.Errorf("members: %w", err)
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
