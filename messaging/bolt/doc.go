// Package bolt is the embedded messaging.Store, on bbolt (go.etcd.io/bbolt): the
// default store of `guildhall serve`, one file owned by one process.
//
// Why bbolt: it is pure Go (no cgo, the binary stays one static file), the whole
// store is one file, every transaction is ACID (ApplyMessages commits a whole batch
// or nothing), and its keys live in an ordered B+tree, so the clustering order of
// the CQL store (package cql) — (channel_id, bucket, message_id) — is simply the
// byte order of a composite big-endian key, and a history page is one cursor seek
// plus a short walk. bbolt allows one writer process per file (flock), which is
// the embedded deployment's rule: the store belongs to one process (api and writer
// together); several api processes need the CQL store.
//
// Both stores pass the same contract tests (package storetest).
package bolt
