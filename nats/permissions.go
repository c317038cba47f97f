package nats

import (
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// Role is what a process does on the bus. Each role has its own identity (an nkey
// user in the deployment's credentials) and only the permissions it needs, so a
// process that is broken into can do no more than its role: see Permissions.
type Role string

const (
	// RoleAPI publishes events into the stream, answers the api request subjects,
	// applies the topology and keeps its buckets.
	RoleAPI Role = "api"
	// RoleWriter consumes the writer's durable consumer and acknowledges.
	RoleWriter Role = "writer"
	// RoleGateway asks the api, reads the re-published events and the stream,
	// and uses the sessions, presence and limits buckets.
	RoleGateway Role = "gateway"
	// RoleOperator is the operators' tools: `guildhall token create` (the admin
	// subjects), JetStream and bucket administration.
	RoleOperator Role = "operator"
	// RoleLeaf is the link of a leaf node (an edge site) to the hub. Edge sites
	// run gateways, so the link holds the gateway's permissions: whatever
	// connects at the edge reaches the hub with no more than a gateway could.
	RoleLeaf Role = "leaf"
)

// Roles lists every role that has an identity in a deployment's credentials.
var Roles = []Role{RoleAPI, RoleWriter, RoleGateway, RoleOperator, RoleLeaf}

// InboxPrefix is the prefix of the reply subjects of a role's connections
// (nats.CustomInboxPrefix). A role may subscribe under its own prefix only, so no
// identity can read the replies another one asked for.
func (r Role) InboxPrefix() string { return natsgo.InboxPrefix + string(r) }

// ValidReply reports whether the api may answer a request on reply: an inbox,
// and not one of the api's own. Every responder of the api checks it. NATS's
// response permissions let a responder answer once on whatever reply subject a
// request names, even one its permissions deny (a request naming gh.ev.u.<id>
// would have the answer delivered as a user event), and the api may publish
// events: a request naming gh.in.g.<id> would have its answer stored as one.
func ValidReply(reply string) bool {
	return strings.HasPrefix(reply, natsgo.InboxPrefix) && !strings.HasPrefix(reply, RoleAPI.InboxPrefix()+".")
}

// The consumer the writer's identity may use.
var writerConsumer = StreamEvents + "." + ConsumerWriter

// DurableConsumers lists the durable consumers of the EVENTS stream: no role but
// the api (which declares them) and the operator may touch them.
func DurableConsumers() []string { return []string{ConsumerWriter} }

// gatewayBuckets are the buckets a gateway reads and writes.
var gatewayBuckets = []string{BucketSessions, BucketPresence, BucketLimits}

// Permissions returns what role may publish and subscribe to. Everything not
// allowed is refused by the server; the denials close what an allowed wildcard
// would otherwise let through. Every role is denied publishing on the subjects
// the stream re-publishes to: only JetStream itself publishes there, so a
// gateway may believe the Nats-Sequence headers it finds on them.
func Permissions(role Role) *server.Permissions {
	switch role {
	case RoleAPI:
		return apiPermissions()
	case RoleWriter:
		return writerPermissions()
	case RoleGateway, RoleLeaf:
		return gatewayPermissions(role)
	case RoleOperator:
		return operatorPermissions()
	}
	// An unknown role may do nothing.
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{}, Deny: []string{allSubject}},
		Subscribe: &server.SubjectPermission{Allow: []string{}, Deny: []string{allSubject}},
	}
}

// The api owns the topology, so it holds the JetStream API, less what would
// destroy data: deleting or purging a stream, deleting stored messages, deleting
// the writer's consumer. Replies to requests it received (the gateways'
// requests, presence count reports) go out through response permissions, one
// reply per request, so it needs no publish rights on anybody's inbox.
func apiPermissions() *server.Permissions {
	// It may purge the attachments' stream (the files of a post that failed),
	// no other.
	deny := []string{
		SubjectEvAll,
		jsAPI + "STREAM.DELETE." + allSubject,
		jsAPI + "STREAM.PURGE." + StreamEvents,
		jsAPI + "STREAM.MSG.DELETE." + allSubject,
	}
	for _, b := range (Topology{}).Buckets() {
		deny = append(deny, jsAPI+"STREAM.PURGE."+kvStreamPrefix+b.Bucket)
	}
	for _, d := range DurableConsumers() {
		deny = append(deny, jsAPI+"CONSUMER.DELETE."+StreamEvents+"."+d)
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{
				subjectGuildInAll, subjectUserInAll, // events into the stream
				subjectDMInAll,         // DM logs into the stream
				subjectTickInAll,       // gateways' ticks, on their request
				SubjectRevocationsIn,   // token revocations (revocations.go)
				subjectEphGuildAll,     // typing and presence
				subjectEphUserAll,      // typing in DMs
				attachmentsAll,         // attachment files (object store chunks and metadata)
				jsAPI + allSubject,     // topology, publish acks, replay consumers
				subjectKV + allSubject, // its buckets
				jsFlowCtl,              // flow control of its bucket watchers
			},
			Deny: deny,
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{subjectAPIAll, SubjectPresenceCounts, RoleAPI.InboxPrefix() + ".>"},
		},
		// The server remembers every reply subject the api receives (its bucket
		// watches' deliveries too) until answered or expired: a minute is ample
		// for the responders (10 s a request) and bounds what it keeps.
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// The writer reads its consumer and acknowledges what it stored, and deletes
// the attachment files of deleted messages (an object's metadata marked deleted,
// its chunks purged): nothing else.
func writerPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{
				jsAPI + "STREAM.INFO." + StreamEvents,
				jsAPI + "CONSUMER.INFO." + writerConsumer,
				jsAPI + "CONSUMER.MSG.NEXT." + writerConsumer,
				jsACK + writerConsumer + ".>",
				jsAPI + "STREAM.INFO." + StreamAttachments,
				jsAPI + "DIRECT.GET." + StreamAttachments,
				jsAPI + "DIRECT.GET." + StreamAttachments + ".>",
				jsAPI + "STREAM.MSG.GET." + StreamAttachments,
				jsAPI + "STREAM.PURGE." + StreamAttachments,
				objectMetaAll(BucketAttachments),
			},
			Deny: []string{SubjectEvAll},
		},
		Subscribe: &server.SubjectPermission{Allow: []string{RoleWriter.InboxPrefix() + ".>"}},
	}
}

// A gateway asks the api (not its admin subjects), reads the stream by direct
// gets and through consumers the api creates for it, and uses its buckets. It
// publishes nothing into the stream, not even its ticks (the api publishes them
// for it): a message stored with headers of a gateway's choosing could be
// served to other gateways by a direct get aimed at their subjects, looking like
// what the stream re-publishes (see RePublished).
//
// It may not create consumers: a consumer's deliver subject can be any subject,
// and JetStream would publish stored messages there on the creator's behalf (on
// the re-published subjects, for one). So replays ask the api for a pull
// consumer (SubjectAPIReplay) and the gateway only fetches from it and deletes it.
// Consumer names are random and the gateway may not list them, so a gateway can
// fetch from or delete only the replay consumers it was told about; the durable
// ones it may not touch at all.
func gatewayPermissions(role Role) *server.Permissions {
	allow := []string{
		SubjectAPIIdentify, SubjectAPIGuild, SubjectAPIMembers, SubjectAPIReplay, SubjectAPITick,
		SubjectPresenceCounts,
		subjectGatewayAll,
		jsAPI + "STREAM.INFO." + StreamEvents,
		jsAPI + "DIRECT.GET." + StreamEvents,
		jsAPI + "DIRECT.GET." + StreamEvents + ".>",
		jsAPI + "STREAM.MSG.GET." + StreamEvents,
		jsAPI + "CONSUMER.INFO." + StreamEvents + ".*",
		jsAPI + "CONSUMER.MSG.NEXT." + StreamEvents + ".*",
		jsAPI + "CONSUMER.DELETE." + StreamEvents + ".*",
	}
	for _, b := range gatewayBuckets {
		allow = append(allow,
			subjectKV+b+".>",
			jsAPI+"STREAM.INFO."+kvStreamPrefix+b,
			jsAPI+"DIRECT.GET."+kvStreamPrefix+b,
			jsAPI+"DIRECT.GET."+kvStreamPrefix+b+".>",
			jsAPI+"STREAM.MSG.GET."+kvStreamPrefix+b,
		)
	}
	deny := []string{SubjectEvAll, subjectAPIAdminAll}
	for _, d := range DurableConsumers() {
		deny = append(deny,
			jsAPI+"CONSUMER.MSG.NEXT."+StreamEvents+"."+d,
			jsAPI+"CONSUMER.DELETE."+StreamEvents+"."+d,
		)
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: allow, Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: []string{
			SubjectEvAll,       // re-published events and ticks
			subjectEphGuildAll, // typing and presence
			subjectEphUserAll,  // typing in DMs
			subjectGatewayAll,  // other gateways' kicks
			// Edge gateways behind a leaf link use the gateway's inbox prefix.
			RoleGateway.InboxPrefix() + ".>",
		}},
	}
}

// The operator mints bots (the admin subjects) and administers JetStream and
// the buckets (a stuck session or lease). It publishes no events: nobody but the
// api does.
func operatorPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{subjectAPIAdminAll, jsAPI + allSubject, subjectKV + allSubject},
			Deny:  []string{SubjectEvAll},
		},
		Subscribe: &server.SubjectPermission{Allow: []string{RoleOperator.InboxPrefix() + ".>"}},
	}
}

// connectionTypes: role identities connect as clients; the leaf identity only as
// a leaf node's link, so neither can stand in for the other.
func connectionTypes(role Role) map[string]struct{} {
	if role == RoleLeaf {
		return map[string]struct{}{jwt.ConnectionTypeLeafnode: {}}
	}
	return map[string]struct{}{jwt.ConnectionTypeStandard: {}}
}
