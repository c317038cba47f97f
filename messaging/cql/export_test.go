package cql

import "github.com/gocql/gocql"

// What the tests look at inside a Store.

func (s *Store) Session() *gocql.Session { return s.s }

func (s *Store) Keyspace() string { return s.cfg.Keyspace }

var SchemaVersion = schemaVersion
