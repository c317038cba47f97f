// Package presence keeps who is online in Guildhall and tells the right people:
// per-member PRESENCE_UPDATE in small guilds, approximate online counts in large
// ones. Typing and presence dispatches are pure pub/sub: nothing of them is ever
// written to a stream or to disk.
//
// # State: one key per user in a KV bucket with a TTL
//
// Each user with a live session has a key (Key, "u.<user id>") in the JetStream
// KV bucket ghnats.BucketPresence. Its value (Entry) is the status the user set
// (online, idle, dnd or invisible), activities, since and afk, the user's small
// guilds, and per gateway node the number of sessions it holds and when it last
// wrote. Gateways change their own part with compare-and-set (Tracker), so a user
// may have sessions on several gateways at once:
//
//   - IDENTIFY's presence and op 3 set the status (last writer wins); RESUME keeps
//     it; a user with no status yet is online.
//   - The last session leaving a gateway takes that gateway's part out; the last
//     part out deletes the key: the user is offline.
//   - Every gateway rewrites its users' keys every TTL/3. The bucket's TTL
//     (ghnats.Topology.PresenceTTL, 60 s by default) expires a key nobody
//     rewrites, so the users of a gateway that dies without goodbye go offline
//     within the TTL; a part whose gateway stopped writing is ignored (and
//     dropped at the next write) while other gateways keep the key alive.
//
// Others see invisible as offline.
//
// # Small guilds: PRESENCE_UPDATE
//
// A gateway writes into each of its users' keys the user's guilds with at most a
// threshold of members (250 by default, gateway.PresenceConfig). The Notifier
// (one active per deployment, elected through the leases bucket) watches the
// bucket and, when what others see of a user changes — status, activities, or
// offline by delete or by expiry, which the bucket reports with limit markers —
// publishes one PRESENCE_UPDATE per small guild on the guild's ephemeral subject
// (ghnats.EphemeralGuildSubject, core NATS). Gateways deliver it to the guild's
// sessions like typing. Reader answers GUILD_MEMBERS_CHUNK's presences with one
// batch read per chunk.
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
// Staleness of a count: at most one report interval plus delivery for a live
// gateway (5 s by default); a dead gateway's counts vanish after three intervals
// (15 s by default); no count outlives MaxCountTTL (30 s). A user with sessions on
// two gateways counts twice, and invisible users drop out of counts within a
// refresh (TTL/3) when they went invisible on another gateway.
//
// # Cost
//
// One user coming online costs one KV write (a create, or a read and a
// compare-and-set when the key exists), one watch delivery to the Notifier, one
// core NATS message per small guild of the user, and nothing per member of a large
// guild. Staying online costs one KV write per TTL/3.
package presence
