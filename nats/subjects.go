package nats

import (
	"crypto/rand"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// The wire contract: every subject Guildhall publishes or subscribes to is built
// here, and every subject a process must tell apart is parsed here. No other
// package spells a subject.
//
//	gh.in.g.<guild>         the api publishes a guild event; the EVENTS stream stores it
//	gh.in.u.<user>          the api publishes an event for one user (joined a guild)
//	gh.in.t.<node>          a gateway publishes a tick (a marker of its consistent cut)
//	gh.ev.g.<guild>         the stream re-publishes a stored guild event (core NATS)
//	gh.ev.u.<user>          … a stored user event
//	gh.ev.t.<node>          … a tick, back to the gateway that published it
//	gh.in.d.<channel>       the api publishes the log copy of a DM event (the copy the
//	                        writer persists; participants get theirs on gh.in.u.<user>)
//	gh.in.rv.<user>         the api publishes a revocation of a user's tokens
//	gh.in.m.<node>          an api process marks its place in the stream (projection.go
//	                        of package messaging: how fresh its projection is)
//	gh.ev.rv.<user>         … re-published: gateways close the tokens' sessions
//	gh.eph.g.<guild>        typing and presence of a guild: core NATS, never stored
//	gh.eph.u.<user>         typing in a DM, to one participant: core NATS, never stored
//	gh.eph.presence.counts  gateways' online counts to the presence aggregators
//	gh.api.<endpoint>       request-reply endpoints of the api (identify, guild, members,
//	                        replay, tick; admin.bot and admin.token.revoke for operators)
//	gh.gw.<node>.kick       a gateway closes a session another gateway has resumed
//	$KV.<bucket>.<key>      a key of a JetStream KV bucket (presence heartbeats and batch reads)
//	$O.<bucket>.C.<nuid>    the chunks of an object (attachment files, read chunk by chunk)
const (
	subjectIn        = "gh.in."
	subjectOut       = "gh.ev."
	subjectGateway   = "gh.gw."
	subjectDirect    = "DIRECT.GET."
	subjectKV        = "$KV."
	kindGuild        = "g."
	kindUser         = "u."
	kindTick         = "t."
	kindDM           = "d."
	subjectObject    = "$O."
	kindRevocation   = "rv."
	kindMark         = "m."
	kickSuffix       = ".kick"
	kvStreamPrefix   = "KV_"
	SubjectInAll     = subjectIn + ">"
	SubjectInGuild   = subjectIn + kindGuild + "*"
	SubjectInDM      = subjectIn + kindDM + "*"
	SubjectEvAll     = subjectOut + ">"
	republishSource  = subjectIn + "*.*"
	republishToEvent = subjectOut + "{{wildcard(1)}}.{{wildcard(2)}}"

	// SubjectAPI prefixes the api's request-reply endpoints that gateways and
	// tools call (see package messaging).
	SubjectAPI = "gh.api."
	// SubjectEphemeral prefixes pub/sub that is never stored: typing, presence.
	SubjectEphemeral = "gh.eph."
)

// API endpoints (request-reply) that the api role serves for gateways and tools.
const (
	SubjectAPIIdentify = SubjectAPI + "identify" // guildhall.IdentifyRequest → IdentifyReply
	SubjectAPIGuild    = SubjectAPI + "guild"    // guildhall.GuildRequest → GuildReply
	// SubjectAPIAdmin prefixes the operators' endpoints: only RoleOperator may
	// publish under it.
	SubjectAPIAdmin = SubjectAPI + "admin."
	SubjectAPIBot   = SubjectAPIAdmin + "bot"
	// SubjectAPIReplay creates a short-lived consumer for a gateway's replay
	// (guildhall.ReplayRequest → ReplayReply): gateways may not create consumers.
	SubjectAPIReplay = SubjectAPI + "replay"
	// SubjectAPITick publishes a gateway's tick into the stream
	// (guildhall.TickRequest → TickReply): gateways publish nothing into it.
	SubjectAPITick = SubjectAPI + "tick"
	// SubjectAPIMembers pages a guild's members for GUILD_MEMBERS_CHUNK
	// (guildhall.MembersRequest → MembersReply).
	SubjectAPIMembers = SubjectAPI + "members"
)

// Subjects the permissions (permissions.go) name beyond the ones the code
// publishes on: wildcard forms of the subjects above, and those of NATS itself
// ($JS.*, $KV.*), which are NATS's wire contract.
const (
	jsAPI      = "$JS.API."
	jsInDomain = "$JS.*.API." // jsAPI through any JetStream domain
	jsACK      = "$JS.ACK."
	jsFlowCtl  = "$JS.FC.>"
	allSubject = ">"

	subjectGuildInAll  = subjectIn + kindGuild + "*"
	subjectUserInAll   = subjectIn + kindUser + "*"
	subjectTickInAll   = subjectIn + kindTick + "*"
	subjectEphGuildAll = SubjectEphemeral + kindGuild + "*"
	subjectDMInAll     = subjectIn + kindDM + "*"
	subjectEphUserAll  = SubjectEphemeral + kindUser + "*"
	attachmentsAll     = subjectObject + BucketAttachments + "." + allSubject
	subjectAPIAll      = SubjectAPI + allSubject
	subjectAPIAdminAll = SubjectAPIAdmin + allSubject
	subjectGatewayAll  = subjectGateway + allSubject
)

// Token revocations (guildhall.TokenRevocation) travel in the EVENTS stream on a
// subject kind of their own, so that they are durable and ordered, and that only
// what the stream re-published is believed: api processes read them with an
// ordered consumer on SubjectRevocationsIn (nothing is lost across reconnects),
// gateways subscribe to SubjectRevocationsEv. Neither the writer (guild events
// only) nor a session's replay (its guilds' and its user's subjects) sees them.
const (
	// SubjectRevocationsIn filters every revocation in the stream.
	SubjectRevocationsIn = subjectIn + kindRevocation + "*"
	// SubjectRevocationsEv is where the stream re-publishes them.
	SubjectRevocationsEv = subjectOut + kindRevocation + "*"
	// SubjectAPIRevoke is the operators' endpoint that revokes tokens
	// (`guildhall token revoke`): an admin subject, like SubjectAPIBot.
	SubjectAPIRevoke = SubjectAPIAdmin + "token.revoke"
	// RevocationWatcherPrefix names the ordered consumer each api process reads
	// revocations with (see WatcherPrefix): long-lived ephemeral consumers
	// that are not replays.
	RevocationWatcherPrefix = "revocations"
)

// WatcherPrefix is the name prefix of one api process's long-lived ordered
// consumer of the EVENTS stream of kind (RevocationWatcherPrefix,
// ProjectionWatcherPrefix): the kind, then 128 random bits; the ordered
// consumer appends its serial ({kind}_{random}_{n}). A gateway may fetch from
// and delete any consumer of the stream whose name it knows (that is how it
// uses its replays, whose names are random too), so no other consumer's name
// may be guessable: not from a process's node (which its mark subject shows
// to anyone who reads the stream's info), nor from a time.
func WatcherPrefix(kind string) string { return kind + "_" + rand.Text() }

// RevocationInSubject is where the api publishes a revocation of user's tokens.
func RevocationInSubject(user uint64) string { return subjectIn + kindRevocation + itoa(user) }

// An api process keeps a projection of the guild events (package messaging)
// with an ordered consumer of its own, and learns how fresh it is from marks it
// publishes on a subject only it reads: when its consumer delivers a mark, every
// event stored before the mark was sent has been applied. Gateways cannot
// publish marks (they publish nothing into the stream); the writer and replays
// never read them.
const (
	// SubjectMarksIn filters every api process's marks.
	SubjectMarksIn = subjectIn + kindMark + "*"
	// ProjectionWatcherPrefix names the ordered consumer each api process
	// reads guild events and its marks with (see WatcherPrefix).
	ProjectionWatcherPrefix = "projection"
)

// MarkInSubject is where api process node publishes its marks. node must be a
// subject token (SubjectToken).
func MarkInSubject(node string) string { return subjectIn + kindMark + node }

// SubjectPresenceCounts carries each gateway's periodic per-guild online counts to
// the presence aggregators (presence.CountReport); core NATS, never stored.
const SubjectPresenceCounts = SubjectEphemeral + "presence.counts"

// GuildInSubject is where the api publishes events of guild id.
func GuildInSubject(id uint64) string { return subjectIn + kindGuild + itoa(id) }

// GuildEventSubject is where gateways receive events of guild id.
func GuildEventSubject(id uint64) string { return subjectOut + kindGuild + itoa(id) }

// UserInSubject is where the api publishes events for user id alone.
func UserInSubject(id uint64) string { return subjectIn + kindUser + itoa(id) }

// UserEventSubject is where gateways receive events for user id.
func UserEventSubject(id uint64) string { return subjectOut + kindUser + itoa(id) }

// TickInSubject is where gateway node publishes ticks to the stream: markers that
// come back to the node in stream order and so tell it when it has seen every event
// before them (see the gateway's consistent cut). The writer ignores them. node must
// be a subject token (SubjectToken).
func TickInSubject(node string) string { return subjectIn + kindTick + node }

// TickEventSubject is where node receives its ticks back.
func TickEventSubject(node string) string { return subjectOut + kindTick + node }

// EphemeralGuildSubject carries typing and presence of guild id; never stored.
func EphemeralGuildSubject(id uint64) string { return SubjectEphemeral + kindGuild + itoa(id) }

// DMInSubject is where the api publishes the log copy of an event of DM channel
// id: the copy the writer persists and the read barrier waits on; no gateway
// listens (each participant receives its copy on its user subject).
func DMInSubject(id uint64) string { return subjectIn + kindDM + itoa(id) }

// EphemeralUserSubject carries what user id alone receives and nothing stores:
// typing in a DM.
func EphemeralUserSubject(id uint64) string { return SubjectEphemeral + kindUser + itoa(id) }

// ObjectChunkSubject is the subject of the chunks of the object with nuid in
// object store bucket (JetStream's layout), for reading an object chunk by
// chunk with direct gets; nuid ">" names every object's chunks.
func ObjectChunkSubject(bucket, nuid string) string { return subjectObject + bucket + ".C." + nuid }

// ObjectMetaAll matches the metadata subjects of an object store bucket.
func objectMetaAll(bucket string) string { return subjectObject + bucket + ".M.*" }

// ObjectMetaSubjects matches the metadata subjects of every object of an
// object store bucket (JetStream's layout): one message per object, its latest
// metadata (a rollup), for walking a bucket one message at a time.
func ObjectMetaSubjects(bucket string) string { return objectMetaAll(bucket) }

// KickSubject is where gateway node hears that another gateway resumed one of its
// sessions (the message is the session id).
func KickSubject(node string) string { return subjectGateway + node + kickSuffix }

// KVSubject is the subject of key in a KV bucket: publishing to it writes the key
// (with options a KeyValue cannot give, such as a per-message TTL with an expected
// last sequence), and batch reads name it.
func KVSubject(bucket, key string) string { return subjectKV + bucket + "." + key }

// KVKey is the key of a KV bucket's subject; false if subject is not a key of
// bucket.
func KVKey(bucket, subject string) (string, bool) {
	prefix := subjectKV + bucket + "."
	if len(subject) <= len(prefix) || subject[:len(prefix)] != prefix {
		return "", false
	}
	return subject[len(prefix):], true
}

// KVDirectGetSubject is where a batch direct get (multi_last) of a KV bucket's
// stream is asked, through js's JetStream (its domain, if any).
func KVDirectGetSubject(js jetstream.JetStream, bucket string) string {
	return apiPrefix(js) + subjectDirect + kvStreamPrefix + bucket
}

// SubjectToken makes s usable as one subject token (a gateway's node name in its
// tick and kick subjects): dots, wildcards and white space become '_'.
func SubjectToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, s)
}

// SubjectKind is what a subject a gateway receives carries.
type SubjectKind uint8

// Kinds of the subjects ParseSubject tells apart.
const (
	SubjectUnknown        SubjectKind = iota
	SubjectGuildIn                    // gh.in.g.<guild>
	SubjectUserIn                     // gh.in.u.<user>
	SubjectTickIn                     // gh.in.t.<node>
	SubjectGuildEvent                 // gh.ev.g.<guild>
	SubjectUserEvent                  // gh.ev.u.<user>
	SubjectTickEvent                  // gh.ev.t.<node>
	SubjectEphemeralGuild             // gh.eph.g.<guild>
	SubjectEphemeralUser              // gh.eph.u.<user>
)

// Subject is a parsed subject: its kind, and the guild or user id or the node
// name it names.
type Subject struct {
	Kind SubjectKind
	ID   uint64 // the guild or user; 0 for ticks
	Node string // the node of a tick
}

// ParseSubject parses the subjects of events, ticks and ephemeral guild and user
// events.
// It does not allocate: it runs once per message on a gateway's fan-out path.
func ParseSubject(subj string) (Subject, bool) {
	var rest string
	var guild, user, tick SubjectKind
	switch {
	case strings.HasPrefix(subj, subjectOut):
		rest, guild, user, tick = subj[len(subjectOut):], SubjectGuildEvent, SubjectUserEvent, SubjectTickEvent
	case strings.HasPrefix(subj, SubjectEphemeral):
		rest, guild, user = subj[len(SubjectEphemeral):], SubjectEphemeralGuild, SubjectEphemeralUser
	case strings.HasPrefix(subj, subjectIn):
		rest, guild, user, tick = subj[len(subjectIn):], SubjectGuildIn, SubjectUserIn, SubjectTickIn
	default:
		return Subject{}, false
	}
	var kind SubjectKind
	switch {
	case strings.HasPrefix(rest, kindGuild):
		kind = guild
	case strings.HasPrefix(rest, kindUser):
		kind = user
	case strings.HasPrefix(rest, kindTick):
		kind = tick
	}
	token := rest[min(2, len(rest)):]
	if kind == SubjectUnknown || token == "" || strings.IndexByte(token, '.') >= 0 {
		return Subject{}, false
	}
	if kind == tick {
		return Subject{Kind: kind, Node: token}, true
	}
	id, err := strconv.ParseUint(token, 10, 64)
	if err != nil {
		return Subject{}, false
	}
	return Subject{Kind: kind, ID: id}, true
}
