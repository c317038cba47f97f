// Package registry keeps every live gateway session in the JetStream KV bucket
// gh_sessions, whose entries expire a TTL after their last refresh (the bucket's
// TTL with limit markers, so watchers see expiries as deletes).
//
// A gateway puts a session when it identifies or resumes and refreshes its live
// sessions well inside the TTL. When a gateway dies, its sessions stop being
// refreshed and expire: the TTL is the resume window. Any gateway can resume a
// session it finds here, because the events to replay are in the stream, not on
// the gateway that held it.
package registry
