// Package nats owns Guildhall's use of NATS: the embedded nats-server (JetStream on,
// file store), the client connection, and the topology — every stream, consumer and
// key-value bucket, declared in code and applied idempotently at start
// (CreateOrUpdate), plus the subjects and headers that carry guild events.
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
