package presence

import (
	"context"
	"encoding/json"
	"fmt"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reader reads the presences of many users at once: one JetStream batch direct
// get (multi_last) per 900 users, answered by the bucket's stream without a
// consumer. It is what GUILD_MEMBERS_CHUNK's presences cost: one or two requests
// per chunk, not one per member. Each request also reads the gateways'
// heartbeats, so parts of dead gateways count as offline.
type Reader struct {
	nc      *natsgo.Conn
	subject string // the bucket's batch direct get, in js's domain
}

// maxMultiGet leaves room under the server's bound on one multi_last answer
// (1024 messages) for the heartbeat keys (live gateways and recent markers).
const maxMultiGet = 900

// NewReader binds the presence bucket.
func NewReader(ctx context.Context, nc *natsgo.Conn, js jetstream.JetStream) (*Reader, error) {
	if _, err := openBucket(ctx, js); err != nil {
		return nil, err
	}
	return &Reader{nc: nc, subject: ghnats.KVDirectGetSubject(js, ghnats.BucketPresence)}, nil
}

// Presences returns the presence of each of users who is not offline (invisible
// users are offline to others), in no particular order.
func (r *Reader) Presences(ctx context.Context, users []guildhall.Snowflake) ([]Presence, error) {
	out := []Presence{}
	for len(users) > 0 {
		n := min(len(users), maxMultiGet)
		part, err := r.batch(ctx, users[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, part...)
		users = users[n:]
	}
	return out, nil
}

func (r *Reader) batch(ctx context.Context, users []guildhall.Snowflake) ([]Presence, error) {
	subjects := make([]string, len(users), len(users)+1)
	for i, u := range users {
		subjects[i] = ghnats.KVSubject(ghnats.BucketPresence, Key(u))
	}
	subjects = append(subjects, ghnats.KVSubject(ghnats.BucketPresence, NodeKey(">")))
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjects})
	if err != nil {
		return nil, err
	}
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := r.nc.PublishRequest(r.subject, inbox, req); err != nil {
		return nil, err
	}
	nodes := Nodes{}
	entries := map[guildhall.Snowflake]Entry{}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("presence: batch get: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204", "404": // end of batch, or none of the keys exists
			var out []Presence
			for uid, e := range entries {
				if st := e.Visible(nodes); st != Offline {
					out = append(out, NewPresence(uid, 0, st, e.Activities))
				}
			}
			return out, nil
		default:
			return nil, fmt.Errorf("presence: batch get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		if m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" || len(m.Data) == 0 {
			continue // deleted or expired
		}
		key, ok := ghnats.KVKey(ghnats.BucketPresence, m.Header.Get(jetstream.SubjectHeader))
		if !ok {
			continue
		}
		if node, ok := nodeOfKey(key); ok {
			nodes[node] = string(m.Data)
			continue
		}
		uid, ok := userOfKey(key)
		if !ok {
			continue
		}
		var e Entry
		if json.Unmarshal(m.Data, &e) == nil {
			entries[uid] = e
		}
	}
}
