// Package registry keeps Guildhall's gateway sessions in the JetStream KV bucket
// gh_sessions, and the session start limits in gh_limits.
//
// A session's entry (Session) says who it is, which gateway node holds it (and
// which incarnation of that node: a process restarted under the same name is a
// new one), the position it was given, and when its client left. A gateway
// writes it when the session starts, when a resume takes it over (with
// compare-and-set, so of two racing resumes one wins), when its client leaves
// it resumable, and deletes it when it ends. A live session costs no writes:
// each gateway keeps one heartbeat key in the same bucket ("node.<node>",
// Heartbeat), rewritten every BeatInterval, with no TTL of its own, so that its
// last write stays readable after the gateway died.
//
// The resume window (the bucket's metadata, from the topology) runs from when
// the session stopped being served (LostAt): its client leaving, or its
// gateway's last beat. Liveness is judged by those timestamps, never by whether
// a key still exists. The bucket's TTL (a day, or twice the window) is only a
// backstop for entries nobody ended; gateways rewrite their live sessions'
// entries once per third of it. Any gateway can resume a session it finds
// resumable here, because the events to replay are in the stream, not on the
// gateway that held it.
package registry
