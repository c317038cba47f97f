// Package nats owns Guildhall's use of NATS: the embedded nats-server (JetStream on,
// file store), the client connection, the topology — every stream, consumer and
// key-value bucket, declared in code and applied idempotently at start
// (CreateOrUpdate) — and the wire contract:
//
//	subjects.go  every subject, built and parsed (ParseSubject, SubjectKind)
//	event.go     the headers and body that carry an event
//	lease.go     leases in the leases bucket (snowflake node numbers, the presence
//	             notifier's leadership)
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
// Inside Guildhall this package is imported as ghnats, since nats.go is "nats" too.
package nats
