// Package presence keeps who is online in Guildhall and tells the right people:
// per-member PRESENCE_UPDATE in small guilds, approximate online counts in large
// ones. Typing and presence dispatches are pure pub/sub: nothing of them is ever
// written to a stream or to disk.
//
// # State: one key per user, liveness per gateway
//
// Each user with a live session has a key (Key, "u.<user id>") in the JetStream
// KV bucket ghnats.BucketPresence. Its value (Entry) is the status the user set
// (online, idle, dnd or invisible), activities, since and afk, the user's small
// guilds, and per gateway node the number of sessions it holds and the node's
// incarnation. Gateways change their own part with compare-and-set (Tracker), so
// a user may have sessions on several gateways at once:
//
//   - IDENTIFY's presence and op 3 set the status (last writer wins); RESUME keeps
//     it; a user with no status yet is online.
//   - The last session leaving a gateway takes that gateway's part out; the last
//     part out purges the key: the user is offline.
//
// What a gateway knows of its users, and when their keys must be written, is the
// state machine LocalUsers (no NATS in it); the gateway's presence tracker drives
// it and writes with Tracker.
//
// A user's key is written only when something of it changes. What keeps it
// alive is its gateway's heartbeat: one key per gateway node (NodeKey,
// "n.<node>") holding the node's incarnation, written with a per-key TTL
// (ghnats.Topology.PresenceTTL, 60 s by default) every TTL/3. A part counts only
// while its node's heartbeat holds the part's incarnation. When a heartbeat
// expires (a gateway died without goodbye), is purged (goodbye) or changes (the
// node restarted: new incarnation), the Notifier announces that node's users
// offline unless another live gateway holds them, and removes the dead parts.
// A gateway whose own heartbeat expired while it lived (cut off from NATS for a
// TTL) takes a new incarnation and writes all its users' keys again.
//
// User keys also have the bucket's TTL (Topology.PresenceKeyTTL, 1 hour by
// default) as a backstop for keys nobody cleaned up; gateways rewrite a key
// older than a third of it.
//
// Others see invisible as offline.
//
// # Small guilds: PRESENCE_UPDATE
//
// A gateway writes into each of its users' keys the user's guilds with at most a
// threshold of members (250 by default, gateway.PresenceConfig). The Notifier
// (one active per deployment, elected through the leases bucket) watches the
// bucket and, when what others see of a user changes — status, activities, or
// offline by purge, by expiry, or because its gateways' heartbeats are gone —
// publishes one PRESENCE_UPDATE per small guild on the guild's ephemeral subject
// (ghnats.EphemeralGuildSubject, core NATS). Gateways deliver it to the guild's
// sessions like typing. Reader answers GUILD_MEMBERS_CHUNK's presences with one
// batch read per 900 members (two per chunk of 1000), which also reads the
// heartbeats; large guilds' members have keys too, so chunks carry their status.
//
// # Large guilds: approximate counts
//
// Above the threshold nothing is announced per member. Every gateway reports, every
// few seconds (5 s by default), how many distinct visible users it holds per guild
// (PublishReport); Aggregators sum the reports per guild, and a gateway's counts
// expire when it stops reporting. That answers approximate_presence_count on GET
// /guilds/{id}?with_counts=true (Aggregator implements rest.PresenceCounter) and
// in GUILD_CREATE (gateways keep the totals the aggregators send back). No event
// is counted on its own and the bucket is never scanned.
//
// # Staleness
//
// A change a gateway writes is announced after one KV write and one watch
// delivery. A gateway that dies without goodbye takes its users offline when its
// heartbeat expires: within PresenceTTL (60 s by default) plus the server's
// expiry check, then the Notifier's announcement; removing the dead parts from
// the keys follows as a burst of writes (a few seconds for tens of thousands of
// users) and changes nothing visible. A gateway that stops with goodbye purges
// its heartbeat: at once. A restarted gateway's old users go offline as soon as
// it claims its heartbeat again. Changes while no Notifier holds the lease (up
// to the leases TTL) are not announced; the next holder cleans up.
//
// Staleness of a count: at most one report interval plus delivery for a live
// gateway (5 s by default); a dead gateway's counts vanish after three intervals
// (15 s by default); no count outlives MaxCountTTL (30 s). A user with sessions on
// two gateways counts twice, and invisible users drop out of counts within a
// count interval when they went invisible on the same gateway (on another, when
// this gateway next writes the user's key).
//
// # Cost
//
// One user coming online costs one KV write (a create, or a read and a
// compare-and-set when the key exists), one watch delivery to the Notifier, one
// core NATS message per small guild of the user, and nothing per member of a large
// guild. Staying online costs, per gateway, one heartbeat write per TTL/3 (20 s)
// whatever its number of users, plus one rewrite per user per PresenceKeyTTL/3
// (20 minutes; 100,000 users: about 80 writes/s instead of 5,000/s when every
// key was rewritten every 20 s), and for each user a comparison of its small
// guilds in memory every TTL/3 (a write only when they changed). A gateway that
// dies costs the Notifier a scan of the users in its memory and one read and
// one write per user of that gateway.
package presence
