package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

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
	store   Store
	sem     chan struct{}
	timeout time.Duration
	log     *slog.Logger
	sub     *natsgo.Subscription
}

// NewMembersResponder subscribes the members endpoint on nc, with cfg's queue
// group, concurrency, timeout and logger (see ResponderConfig). Stop it with
// Close.
func NewMembersResponder(store Store, nc *natsgo.Conn, cfg ResponderConfig) (*MembersResponder, error) {
	if store == nil || nc == nil {
		return nil, errors.New("messaging: members responder needs a store and a connection")
	}
	r := &MembersResponder{store: store, timeout: cfg.Timeout, log: cfg.Logger}
	queue := cfg.Queue
	if queue == "" {
		queue = "api"
	}
	n := cfg.Concurrency
	if n <= 0 {
		n = 16
	}
	r.sem = make(chan struct{}, n)
	if r.timeout <= 0 {
		r.timeout = 10 * time.Second
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	sub, err := nc.QueueSubscribe(ghnats.SubjectAPIMembers, queue, r.handle)
	if err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	r.sub = sub
	return r, nil
}

// Close drains the subscription and waits for requests in flight.
func (r *MembersResponder) Close() {
	_ = r.sub.Drain()
	deadline := time.Now().Add(r.timeout)
	for r.sub.IsValid() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for range cap(r.sem) {
		r.sem <- struct{}{}
	}
	for range cap(r.sem) {
		<-r.sem
	}
}

func (r *MembersResponder) handle(m *natsgo.Msg) {
	if m.Reply == "" {
		return
	}
	r.sem <- struct{}{}
	go func() {
		defer func() { <-r.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		defer cancel()
		var rep MembersReply
		var req MembersRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = guildhall.ErrInvalidJSON
		} else if rep, err = r.Members(ctx, req); err != nil {
			var ge *guildhall.Error
			if !errors.As(err, &ge) {
				r.log.Error("members responder", "guild", req.GuildID, "err", err)
				ge = guildhall.ErrInternal
			}
			rep = MembersReply{Error: ge}
		}
		b, err := json.Marshal(rep)
		if err != nil {
			r.log.Error("members responder: encode", "err", err)
			return
		}
		if err := m.Respond(b); err != nil {
			r.log.Warn("members responder: reply", "err", err)
		}
	}()
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
