// Package gateway is Guildhall's WebSocket tier. It speaks Discord's gateway protocol
// (v9/v10, JSON or ETF) over github.com/lxzan/gws and delivers guild events to sessions.
//
// Reading order for a newcomer:
//
//	protocol.go   opcodes, close codes, payload shapes
//	gateway.go    Config, New, Close: the actors below and how they are wired
//	conn.go       one connection's life: HELLO, heartbeats, each client payload by opcode
//	limits.go     a connection's edges: the IDENTIFY deadline (4009), 120 payloads
//	              per 60 s (4008), connections per client address (HTTP 429)
//	revocations.go  revoked tokens' sessions closed with 4004 (and caught up from
//	              the stream after a NATS reconnect)
//	identify.go   op 2: token, session start limits, registry entry, READY at the cut
//	shard.go      shards as Discord's ([i, n]: (guild_id >> 22) % n), Bot tokens
//	encoding.go   what a connection asks for in its URL: json or etf, zlib-stream
//	              or zstd-stream (package etf is the ETF codec)
//	session.go    a session: who it is, its outbox, its memberships
//	outbox.go     a session's write path: the direct write (or writev, for a
//	              batch), the writer goroutine that coalesces pending frames into
//	              one writev, frames held during a resume, the variant of each
//	              frame the connection needs (ETF, payload compression), zlib and
//	              zstd streams, slow consumers cut off
//	frame.go      WebSocket frames, built once per event and shared (the ETF
//	              and payload-compressed variants too, by their first recipient)
//	intents.go    which frame of an event each session gets (intents, MESSAGE_CONTENT)
//
// The fan-out path: one goroutine, the pump, owns every room.
//
//	pump.go       NATS messages routed by subject kind, in order; the watermark;
//	              commands run between two events
//	apply.go      what each event does to its room (guildhall.GuildState.Apply for the
//	              state; memberships, who is in it) and when it is delivered
//	batch.go      under load, consecutive events of a room delivered together:
//	              each session's frames of them in one writev; no timer
//	fanout.go     framed events handed to every session that may see them (a big
//	              room split across cores)
//	room.go       one guild's room: state, members, the channel-visibility cache
//	gapfill.go    a room that missed something catches up off the pump: events NATS
//	              lost (shown by the next event, the api's beacon or the probe),
//	              refilled from the stream in order; its state
//	probe.go      partitions between this gateway's server and the stream, found by
//	              ticks that do not come back; then every room checked
//
// The resume path:
//
//	join.go       a session joins its rooms at a consistent cut (identify and resume)
//	resume.go     op 6: checks (the session's start, the per-user limit of
//	              resumelimit.go), then the replay, RESUMED, the held live frames
//	recent.go     each room's recent events: the replay from memory, when the
//	              stream confirms the rooms missed nothing
//	replay.go     the replay from the EVENTS stream
//	directory.go  live sessions, their registry entries (written at start,
//	              take-over, leave, end), the gateway's heartbeat, kicks between
//	              gateways
//
// Presence and member lists:
//
//	presence.go   op 3 and each session's start and end → the user keys and the
//	              gateway's heartbeat in the presence bucket
//	counts.go     online counts to the aggregators; approximate_presence_count
//	members.go    op 8 REQUEST_GUILD_MEMBERS → GUILD_MEMBERS_CHUNK
//
//	apiclient.go  what the gateway asks the api over NATS (identify, guilds, members)
//	metrics.go    the gateway's metrics
//
// Each actor (pump, directory, presence tracker, online counts, member lister)
// owns its state, is built by New from Config and stops with its own close, which
// Gateway.Close calls in turn. They talk through small interfaces declared where
// they are used: the pump asks a guildSource (the api) for a guild; the presence
// tracker asks smallGuildRooms, the counts a roomCounter, the member lister
// memberRooms (each the pump, which answers between two events). Locks: an
// outbox's mutex is taken last; nobody waits for the pump while holding a lock.
//
// Dispatch sequence numbers are JetStream stream sequences: an event's s is its
// sequence in the EVENTS stream, so a session that resumes with s on any gateway is
// replayed from the stream after s. Dispatches that are not in the stream (READY,
// GUILD_CREATE at identify, typing, member list chunks) carry the session's
// current s without advancing it.
//
// Encodings: an event is framed once in JSON; its ETF frame, and its frame with
// payload compression (IDENTIFY compress: true), are built from that by the first
// session that needs one and shared by the others (frame.etfFrame,
// frame.zlibFrame), so they go out by direct writes too. A session is first given
// its frame (full or content-less, see Intents), then that frame's variant, so
// the MESSAGE_CONTENT rules hold in every encoding. Transport compression
// (zlib-stream, zstd-stream) is one stream per connection, applied by the
// session's writer.
//
// Intents: a session receives only the dispatches its IDENTIFY intents ask for
// (guildhall.EventIntent), and without MESSAGE_CONTENT gets other users' guild
// messages with their content emptied, unless they mention it (Event.Mentions).
// Each event is framed at most twice (full and content-less, the latter only if
// some recipient needs it), and the choice per recipient is a bit test (and a
// look through the message's mentions for a session without MESSAGE_CONTENT).
//
// Direct messages have no room: their events come on each participant's user
// subject (see package messaging), so they reach a session live, at its cut and
// in its replays like any user event; typing in a DM comes on the user's
// ephemeral subject. Like every event without a guild they go to shard 0 alone
// (shard.go). Resumes keep the intents (registry entry) and the replays apply
// the same choice.
package gateway
