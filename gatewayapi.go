package guildhall

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// What gateways ask the api over NATS request-reply (subjects in package nats:
// SubjectAPIIdentify, SubjectAPIGuild, SubjectAPIMembers, SubjectAPIReplay,
// SubjectAPITick). Gateways never open the
// store; these replies are everything they learn outside the event stream. A
// reply that failed carries a RemoteError, matched with errors.Is.

// IdentifyRequest asks who a token belongs to and what the user may see. It
// carries the token's TokenHash, never the token: what crosses the bus is not
// usable as a REST credential.
type IdentifyRequest struct {
	TokenHash string `json:"token_sha256"`
}

// TokenHash is what the api keys a token by and what a gateway sends it: the
// token's SHA-256, in lowercase hex. A token has 256 random bits, so a fast hash
// is enough. A token given as "Bot <token>" (discordgo identifies with it, as it
// authorizes REST, and Discord accepts both) hashes as the token.
func TokenHash(token string) string {
	if t, ok := strings.CutPrefix(token, "Bot "); ok {
		token = strings.TrimSpace(t)
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ValidTokenHash reports whether h has the shape of a TokenHash.
func ValidTokenHash(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IdentifyReply is the user, each guild the user is a member of, and the user's
// membership in each (Members[i] belongs to Guilds[i]). Error is set instead when
// the token is not valid (ErrUnauthorized) or the api failed.
type IdentifyReply struct {
	User    User         `json:"user"`
	Guilds  []GuildState `json:"guilds"`
	Members []Member     `json:"members"`
	// PrivateChannels are the user's DMs as the user sees them, and ReadStates
	// how far the user has read each channel (READY's private_channels and
	// read_state).
	PrivateChannels []PrivateChannel `json:"private_channels,omitempty"`
	ReadStates      []ReadState      `json:"read_states,omitempty"`
	Error           *RemoteError     `json:"error,omitempty"`
}

// GuildRequest asks for a guild's current state, and optionally one user's
// membership in it.
type GuildRequest struct {
	GuildID Snowflake `json:"guild_id"`
	UserID  Snowflake `json:"user_id,omitempty"`
}

// GuildReply is a guild snapshot; Member is set when GuildRequest.UserID was and the
// user is a member. Error is set instead when the guild does not exist.
type GuildReply struct {
	State  GuildState   `json:"state"`
	Member *Member      `json:"member,omitempty"`
	Error  *RemoteError `json:"error,omitempty"`
}

// MembersRequest asks the api's members endpoint (nats.SubjectAPIMembers) for
// members of a guild, for a gateway answering op 8 REQUEST_GUILD_MEMBERS with
// GUILD_MEMBERS_CHUNK. Gateways
// check that the asking session is a member; this endpoint trusts them, like
// identify and guild snapshots. One of three forms:
//
//   - UserIDs (at most messaging.MaxMembersPage): those members; the others in
//     NotFound.
//   - Query: members whose username (or nick) starts with Query, ignoring case,
//     after After, at most Limit of them, reading at most Scan members (there is
//     no username index: the guild is paged through in id order). Next and Done
//     say where to go on.
//   - neither: the page of at most Limit members after After, in id order.
//
// No form loads more than one page of messaging.MaxMembersPage members at a time.
type MembersRequest struct {
	GuildID Snowflake   `json:"guild_id"`
	UserIDs []Snowflake `json:"user_ids,omitempty"`
	Query   string      `json:"query,omitempty"`
	After   Snowflake   `json:"after,omitempty"`
	Limit   int         `json:"limit"`
	// Scan bounds the members a query reads; zero value means
	// messaging.MaxMembersScan.
	Scan int `json:"scan,omitempty"`
}

// MembersReply answers a MembersRequest. Next is the id to continue after; Done
// says the guild has no members after the ones read; Scanned is how many a query
// read. Error is set instead when the guild does not exist or the store failed.
type MembersReply struct {
	Members  []Member     `json:"members"`
	NotFound []Snowflake  `json:"not_found,omitempty"`
	Next     Snowflake    `json:"next,omitempty"`
	Scanned  int          `json:"scanned,omitempty"`
	Done     bool         `json:"done"`
	Error    *RemoteError `json:"error,omitempty"`
}

// GuildCreate is the payload of the GUILD_CREATE dispatch (Discord's shape, the
// fields Guildhall fills).
type GuildCreate struct {
	Guild
	Roles                    []Role     `json:"roles"`
	Channels                 []Channel  `json:"channels"`
	Members                  []Member   `json:"members"`
	JoinedAt                 time.Time  `json:"joined_at"`
	Large                    bool       `json:"large"`
	Unavailable              bool       `json:"unavailable"`
	Emojis                   []struct{} `json:"emojis"`
	Features                 []string   `json:"features"`
	Threads                  []struct{} `json:"threads"`
	Presences                []struct{} `json:"presences"`
	VoiceStates              []struct{} `json:"voice_states"`
	StageInstances           []struct{} `json:"stage_instances"`
	ApproximatePresenceCount int        `json:"approximate_presence_count,omitempty"`
}

// LargeThreshold is Discord's default: a guild with more members is "large", and its
// GUILD_CREATE carries only the session's own member.
const LargeThreshold = 250

// CreatePayload builds GUILD_CREATE for the session of member self: the guild, its
// roles and the channels self may view.
func (g *GuildState) CreatePayload(self Member) GuildCreate {
	gc := GuildCreate{
		Guild:          g.Guild,
		Roles:          g.Roles,
		Channels:       make([]Channel, 0, len(g.Channels)),
		Members:        []Member{self},
		JoinedAt:       self.JoinedAt,
		Large:          g.Guild.MemberCount > LargeThreshold,
		Emojis:         []struct{}{},
		Features:       []string{},
		Threads:        []struct{}{},
		Presences:      []struct{}{},
		VoiceStates:    []struct{}{},
		StageInstances: []struct{}{},
	}
	if gc.Roles == nil {
		gc.Roles = []Role{}
	}
	for _, c := range g.Channels {
		if g.CanView(c, self.User.ID, self.Roles) {
			gc.Channels = append(gc.Channels, c)
		}
	}
	return gc
}

// ReplayRequest asks the api for a consumer that replays, from stream sequence
// After+1 on, the events of Guilds and the user events of User: a gateway
// replaying what a resumed session missed. Gateways may not create consumers
// themselves (see package nats, Permissions).
type ReplayRequest struct {
	Guilds []Snowflake `json:"guilds"`
	User   Snowflake   `json:"user"`
	After  uint64      `json:"after"`
}

// ReplayReply names the consumer: a pull consumer without acks that the gateway
// fetches from and deletes when done (it also goes by itself when idle). Error is
// set instead when the request is out of bounds or the api failed.
type ReplayReply struct {
	Consumer string       `json:"consumer,omitempty"`
	Error    *RemoteError `json:"error,omitempty"`
}

// TickRequest asks the api to publish a tick for gateway Node into the stream
// (see package gateway, join.go): gateways publish nothing into the stream, so
// that everything in it comes from the api.
type TickRequest struct {
	Node string `json:"node"`
}

// TickReply is the tick's stream sequence, or Error.
type TickReply struct {
	Seq   uint64       `json:"seq,omitempty"`
	Error *RemoteError `json:"error,omitempty"`
}
