package gateway

import (
	"encoding/json"

	guildhall "github.com/guildhall/guildhall"
)

// Opcodes (Discord's).
const (
	OpDispatch            = 0
	OpHeartbeat           = 1
	OpIdentify            = 2
	OpPresenceUpdate      = 3
	OpVoiceStateUpdate    = 4
	OpResume              = 6
	OpReconnect           = 7
	OpRequestGuildMembers = 8
	OpInvalidSession      = 9
	OpHello               = 10
	OpHeartbeatACK        = 11
)

// Close codes (Discord's table).
const (
	CloseUnknownError         = 4000
	CloseUnknownOpcode        = 4001
	CloseDecodeError          = 4002
	CloseNotAuthenticated     = 4003
	CloseAuthenticationFailed = 4004
	CloseAlreadyAuthenticated = 4005
	CloseInvalidSeq           = 4007
	CloseRateLimited          = 4008
	CloseSessionTimedOut      = 4009
	CloseInvalidShard         = 4010
	CloseShardingRequired     = 4011
	CloseInvalidAPIVersion    = 4012
	CloseInvalidIntents       = 4013
	CloseDisallowedIntents    = 4014
)

// MaxClientPayload is Discord's limit on what a client may send in one frame.
const MaxClientPayload = 4096

// clientFrame is a payload from a client.
type clientFrame struct {
	Op *int            `json:"op"`
	D  json.RawMessage `json:"d"`
}

// identifyData is what Guildhall reads of IDENTIFY; properties and
// large_threshold are accepted and ignored.
type identifyData struct {
	Token    string          `json:"token"`
	Compress bool            `json:"compress"`
	Shard    []int           `json:"shard"`
	Presence json.RawMessage `json:"presence"`
	Intents  *int64          `json:"intents"`
}

type resumeData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       uint64 `json:"seq"`
}

type helloData struct {
	HeartbeatInterval int64 `json:"heartbeat_interval"`
}

type unavailableGuild struct {
	ID          guildhall.Snowflake `json:"id"`
	Unavailable bool                `json:"unavailable"`
}

type readyApplication struct {
	ID    guildhall.Snowflake `json:"id"`
	Flags int                 `json:"flags"`
}

// readState is READY's read_state: how far the user has read each channel
// (Discord's clients' shape; entries are guildhall.ReadState).
type readState struct {
	Version int                   `json:"version"`
	Partial bool                  `json:"partial"`
	Entries []guildhall.ReadState `json:"entries"`
}

type readyData struct {
	V                int                        `json:"v"`
	User             guildhall.User             `json:"user"`
	Guilds           []unavailableGuild         `json:"guilds"`
	SessionID        string                     `json:"session_id"`
	SessionType      string                     `json:"session_type"`
	ResumeGatewayURL string                     `json:"resume_gateway_url"`
	Shard            []int                      `json:"shard,omitempty"`
	Application      readyApplication           `json:"application"`
	PrivateChannels  []guildhall.PrivateChannel `json:"private_channels"`
	ReadState        readState                  `json:"read_state"`
	Relationships    []struct{}                 `json:"relationships"`
	UserSettings     struct{}                   `json:"user_settings"`
	Presences        []struct{}                 `json:"presences"`
}
