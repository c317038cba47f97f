// Package gateway is Guildhall's WebSocket tier. It speaks Discord's gateway protocol
// (v9/v10, JSON) over github.com/lxzan/gws and delivers guild events to sessions.
//
// Reading order for a newcomer:
//
//	protocol.go  opcodes, close codes, payload shapes
//	gateway.go   the HTTP upgrade and one connection's life: HELLO, IDENTIFY, RESUME,
//	             heartbeats, close codes
//	hub.go       the fan-out path: one NATS subscription per guild with local members,
//	             one ordered pump that frames each event once and hands the same bytes
//	             to every session that may see it
//	room.go      what the hub knows of one guild: its state, its local sessions, the
//	             channel-visibility cache, its recent events for resumes
//	session.go   one session's bounded outbox and its writer, which coalesces pending
//	             frames into one write and cuts slow consumers off
//	resume.go    the resume path: replay of missed events from the rooms' recent
//	             events when they cover the absence, else from the JetStream log
//	apiclient.go what the gateway asks the api over NATS (identify, guild snapshots)
//
// Dispatch sequence numbers are JetStream stream sequences: an event's s is its
// sequence in the EVENTS stream, so a session that resumes with s on any gateway is
// replayed from the stream after s. Dispatches that are not in the stream (READY,
// GUILD_CREATE at identify, typing) carry the session's current s without advancing it.
//
// Intents (intents.go): a session receives only the dispatches its IDENTIFY intents
// ask for (guildhall.EventIntent), and without MESSAGE_CONTENT gets other users'
// messages with their content emptied. Each event is framed at most twice (full and
// content-less, the latter only if some recipient needs it), and the choice per
// recipient is a bit test. Resumes keep the intents (registry entry) and the replays
// apply the same choice.
package gateway
