// Package messaging is the storage and message side of Guildhall: the message service
// that validates, authorizes, assigns snowflakes and publishes events to JetStream
// (service.go), the projection of the event stream it authorizes from without the
// store (projection.go), the writer that persists the stream into the store
// (writer.go), history reads, and the Store interface (store.go) with its two
// implementations: the embedded bbolt store (package bolt, the default) and CQL for
// ScyllaDB/Cassandra (package cql).
package messaging
