// Package testenv gives tests real parts to run against: embedded NATS servers (one
// node, or a 3-node cluster in one process) with the topology applied and
// authentication on as in production (a fresh credentials set per server; see
// Harness for the test's own identity), a test CA for TLS, a real
// Cassandra started once per test run, WebSocket clients that speak the gateway
// protocol, and polling helpers. Only _test.go files import it.
package testenv
