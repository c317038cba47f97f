package nats

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxReplayGuilds bounds the guilds of one replay consumer (a user is in at most
// 100 guilds; Discord's bound for everyone, 200, leaves room).
const MaxReplayGuilds = 200

// ReplayIdle is how long a replay consumer lives unused: the gateway deletes it
// when done, and this cleans up after one that could not.
const ReplayIdle = 10 * time.Second

// ReplayConsumerConfig is the consumer the api creates for a gateway's replay
// (SubjectAPIReplay): a pull consumer of the events of req's guilds and user from
// req.After+1 on, in memory, without acks, gone after ReplayIdle unused. Its name
// is random: the gateway it is given to may fetch from it and delete it, and
// nobody who does not know the name can.
func ReplayConsumerConfig(req guildhall.ReplayRequest) (jetstream.ConsumerConfig, error) {
	if len(req.Guilds) > MaxReplayGuilds {
		return jetstream.ConsumerConfig{}, errors.New("nats: too many guilds for one replay")
	}
	if req.User == 0 {
		return jetstream.ConsumerConfig{}, errors.New("nats: a replay needs its user")
	}
	subjects := make([]string, 0, len(req.Guilds)+1)
	seen := make(map[guildhall.Snowflake]bool, len(req.Guilds))
	for _, g := range req.Guilds {
		if g == 0 || seen[g] {
			return jetstream.ConsumerConfig{}, errors.New("nats: a replay's guilds must be distinct ids")
		}
		seen[g] = true
		subjects = append(subjects, GuildInSubject(uint64(g)))
	}
	subjects = append(subjects, UserInSubject(uint64(req.User)))
	var name [16]byte
	if _, err := rand.Read(name[:]); err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	return jetstream.ConsumerConfig{
		Name:              "replay_" + hex.EncodeToString(name[:]),
		Description:       "a gateway's replay of a resumed session",
		FilterSubjects:    subjects,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       req.After + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: ReplayIdle,
		MemoryStorage:     true,
		Replicas:          1,
	}, nil
}
