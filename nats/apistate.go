package nats

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketAPIState holds what api processes share and no other role may touch:
// login throttles (per account, per client address) and the short locks that
// make count caps atomic across api processes (guilds per user, channels and
// invites per guild), and each user's count of group DMs created this hour.
// Keys carry their own TTL; the bucket's TTL is a backstop.
const BucketAPIState = "gh_api_state"

func (t Topology) apiStateBucket() jetstream.KeyValueConfig {
	return t.bucket(BucketAPIState, "api-only state: login throttles, count-cap locks", 24*time.Hour)
}
