// Command guildhall-check runs a whole Guildhall deployment under faults and
// checks, at the end, that nothing acknowledged was lost, nothing appeared that
// nobody sent, and every session received every event of its guilds exactly
// once, in order, across its resumes.
//
//	guildhall-check --cql-hosts 127.0.0.1:9042 [--cql-stop CMD --cql-start CMD] \
//	    [--schedule long|short] [--users 24] [--rate 20] [--sync-always] [--json FILE]
//
// The Go test TestCheckerRun runs it with testenv's Cassandra: the short schedule
// in the test suite, the long one with GUILDHALL_CHECK=long.
//
// Reading order:
//
//	run.go       Config, and one run: deploy, set up, sessions, post under the
//	             nemesis, wait for the sessions to catch up, read, check
//	deploy.go    the deployment as child processes: a 3-node NATS cluster whose
//	             routes go through proxies, two apis and a writer on CQL, two
//	             gateways, an edge site (leaf node and gateway); where each process
//	             is connected, the stream's leader
//	process.go   one child process: start until ready, signals, restart
//	proxy.go     the TCP proxy a fault cuts (routes, the leaf link)
//	workload.go  accounts and guilds, posts, edits and reactions over REST, each
//	             request's outcome (acknowledged, refused, unknown)
//	client.go    a gateway session as a Discord client: heartbeats, resume on
//	             another gateway, what it received
//	nemesis.go   the faults and the schedules
//	collect.go   the run's events from the EVENTS stream, the history over REST
//	check.go     the invariants, judged on everything recorded (no I/O: the tests
//	             feed it histories with a broken invariant each)
//	report.go    the fault timeline, availability per fault, latencies, violations
//
// A request is acknowledged (2xx), refused (4xx, or no api reached: it must not
// exist) or unknown (5xx, timeout: it may exist), and the checks hold each to
// what that allows. Events are the stream's: a session's dispatch is matched to
// the stream's event by what it carries (message, content, reaction), so one
// delivered under another sequence is named as such.
package main
