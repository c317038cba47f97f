// Package cql is the messaging.Store on ScyllaDB or Apache Cassandra, through
// gocql (protocol v4, plain CQL that both accept: no SAI, no materialized views, no
// Scylla-only options). It is the store of a deployment with several api
// processes; store.go lists the tables and the file that holds each, and each
// file says why its part of the layout is so.
//
// Its tests run against a real Cassandra that testenv starts (or the one named by
// GUILDHALL_CQL_HOSTS); with CI=true they fail when it cannot start. The same
// contract runs against the bbolt store (package storetest).
package cql
