package guildhall

import (
	"errors"
	"strconv"
	"sync"
	"time"
)

// Epoch is Discord's snowflake epoch, 2015-01-01T00:00:00Z, in Unix milliseconds.
const Epoch int64 = 1420070400000

// Snowflake is a 64-bit id in Discord's layout: 42 bits of milliseconds since Epoch,
// 5 bits of worker id, 5 bits of process id and a 12-bit increment. Ids sort by
// creation time. On the wire a snowflake is a JSON string.
type Snowflake uint64

// ErrInvalidSnowflake: the text is not the canonical decimal spelling of a
// snowflake.
var ErrInvalidSnowflake = errors.New("invalid snowflake")

// ParseSnowflake parses a snowflake in its one canonical spelling, what String
// writes: decimal digits only, no sign, no leading zeros (except "0" itself), at
// most 2^64-1. Every other spelling of a number ("00123", "+123", " 123", "1e3")
// is ErrInvalidSnowflake, so that one id has one spelling everywhere: REST paths
// (a non-canonical id is Unknown X), rate-limit keys, JSON bodies and gateway
// payloads all parse through here.
func ParseSnowflake(s string) (Snowflake, error) {
	if len(s) == 0 || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return 0, ErrInvalidSnowflake
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, ErrInvalidSnowflake
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, ErrInvalidSnowflake // overflow
		}
		v = v*10 + d
	}
	return Snowflake(v), nil
}

// SnowflakeAt returns the smallest snowflake of the millisecond t; history queries use
// it to turn times into id bounds.
func SnowflakeAt(t time.Time) Snowflake {
	ms := t.UnixMilli() - Epoch
	if ms < 0 {
		ms = 0
	}
	return Snowflake(uint64(ms) << 22)
}

func (s Snowflake) String() string { return strconv.FormatUint(uint64(s), 10) }

// Time is the creation time encoded in the id.
func (s Snowflake) Time() time.Time { return time.UnixMilli(int64(s>>22) + Epoch).UTC() }

// MarshalJSON writes the id as a JSON string, as Discord does.
func (s Snowflake) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 22)
	b = append(b, '"')
	b = strconv.AppendUint(b, uint64(s), 10)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts a JSON string or number holding a canonical snowflake
// (see ParseSnowflake); null leaves zero.
func (s *Snowflake) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = 0
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	v, err := ParseSnowflake(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// BucketWindow is the width of one history bucket: messages of a channel are
// partitioned by (channel, bucket) where the bucket is the snowflake's time divided
// by this window, as Discord does.
const BucketWindow = 10 * 24 * time.Hour

// Bucket is the history bucket the id falls in.
func (s Snowflake) Bucket() int64 {
	return int64(s>>22) / BucketWindow.Milliseconds()
}

// BucketStart is the smallest snowflake of bucket b.
func BucketStart(b int64) Snowflake { return Snowflake(uint64(b*BucketWindow.Milliseconds()) << 22) }

// SnowflakeGenerator hands out unique ids for one (worker, process) pair. Pairs are
// leased, not configured, so that two processes never share one (see nats.LeaseWorker).
type SnowflakeGenerator struct {
	mu     sync.Mutex
	node   uint64 // worker<<5 | process, 10 bits
	lastMs int64
	inc    uint64
	now    func() time.Time
}

// NewSnowflakeGenerator returns a generator for worker and process ids in 0..31.
func NewSnowflakeGenerator(worker, process int) *SnowflakeGenerator {
	return &SnowflakeGenerator{node: uint64(worker&31)<<5 | uint64(process&31), now: time.Now}
}

// NewSnowflakeGeneratorForNode takes the combined 10-bit node number (0..1023).
func NewSnowflakeGeneratorForNode(node int) *SnowflakeGenerator {
	return NewSnowflakeGenerator(node>>5, node)
}

// Next returns a new id. Within one millisecond it counts up to 4096 ids, then waits
// for the next millisecond; if the clock steps back it keeps the last millisecond so
// ids never repeat.
func (g *SnowflakeGenerator) Next() Snowflake {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.now().UnixMilli() - Epoch
	if ms < g.lastMs {
		ms = g.lastMs
	}
	if ms == g.lastMs {
		g.inc++
		if g.inc >= 4096 {
			for ms <= g.lastMs {
				time.Sleep(100 * time.Microsecond)
				ms = g.now().UnixMilli() - Epoch
			}
			g.inc = 0
		}
	} else {
		g.inc = 0
	}
	g.lastMs = ms
	return Snowflake(uint64(ms)<<22 | g.node<<12 | g.inc)
}
