// Package guildhall holds the domain of Guildhall, a realtime chat backend in the
// shape of Discord built on NATS JetStream: snowflake ids, users, guilds, channels,
// members, roles, permissions, messages, the events that travel on the stream and
// Discord's error codes.
//
// It imports nothing but the standard library. Technology lives in subpackages:
//
//	nats/       embedded nats-server, connection, topology (streams, KV buckets)
//	messaging/  message service, writer (stream → store), history, Store implementations
//	gateway/    WebSocket tier speaking Discord's gateway protocol: the pump, fan-out, resume
//	registry/   live sessions in a JetStream KV bucket with per-key TTL
//	presence/   presence, typing and online counts
//	testenv/    real servers for tests (NATS, Cassandra) and WebSocket test clients
//	cmd/        the guildhall binary that wires them together
package guildhall
