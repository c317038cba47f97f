// Package nats owns Guildhall's use of NATS: the embedded nats-server (JetStream on,
// file store), the client connection, the topology — every stream, consumer and
// key-value bucket, declared in code and applied idempotently at start
// (CreateOrUpdate) — and the wire contract:
//
//	subjects.go   every subject, built and parsed (ParseSubject, SubjectKind)
//	republish.go  which messages on a re-published subject a gateway believes
//	event.go      the headers and body that carry an event (and the api's
//	              guild-sequence heartbeat)
//	directget.go  batch direct gets of the stream: the last events of many
//	              guilds, a guild's events after a sequence
//	lease.go      leases in the leases bucket (snowflake node numbers, the
//	              presence notifier's leadership)
//
// The errors that cross NATS are guildhall.RemoteError (status and code).
//
// The path of one event:
//
//	api ──publish gh.in.g.<guild> (Nats-Msg-Id = event id)──▶ stream EVENTS
//	EVENTS ──RePublish──▶ gh.ev.g.<guild> (core; Nats-Sequence, Nats-Last-Sequence)
//	       ──durable pull consumer "writer"──▶ store
//
// User events (a user joined a guild) take gh.in.u.<user> → gh.ev.u.<user> the same
// way, so they share the stream's sequence with guild events and resume covers both.
//
// # Who may do what
//
// Every process signs in as its Role (api, writer, gateway, operator; an edge
// site's leaf link as leaf) with an nkey, and the server holds each role to
// Permissions: the api alone publishes into the stream (gateways' ticks too, on
// their request), the writer only reads its consumer, a gateway may not touch
// the admin subjects or create consumers, and nobody publishes on the
// re-published subjects; a gateway believes only what RePublished accepts.
// Replies go to per-role inboxes (Role.InboxPrefix) that only that role may
// read; the api answers through response permissions, on inboxes only
// (ValidReply). Routes sign in with a route secret, and TLSFiles puts TLS on
// client, route and leaf links.
//
// Why nkey users in the server's configuration rather than accounts with JWTs:
// one account is what Guildhall needs (every role shares the stream and
// buckets), and per-user permissions are what separate the roles. nkey users
// give exactly that with a credentials set that is one directory (see
// GenerateCredentials): no operator or account keys, no resolver, no system
// account to run, the same for the embedded server, cluster nodes and leaf
// nodes. The cost is that users are fixed when a server starts: adding an
// identity means restarting the nodes with the new server.json, and every
// gateway shares the gateway identity. JWTs would allow revocation without a
// restart and permissions templated per gateway; the roles would stay the same.
//
// Inside Guildhall this package is imported as ghnats, since nats.go is "nats" too.
package nats
