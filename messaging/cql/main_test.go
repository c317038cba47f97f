package cql_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/guildhall/guildhall/messaging/cql"
	"github.com/guildhall/guildhall/testenv"
)

// One Cassandra for the whole test binary, started by the first test that needs it.
func TestMain(m *testing.M) { os.Exit(testenv.CassandraMain(m, nil)) }

var keyspaceSeq atomic.Int64

// newKeyspace returns a keyspace name not used before in this run (several runs
// may share one server through GUILDHALL_CQL_HOSTS, hence the pid).
func newKeyspace() string {
	return fmt.Sprintf("gh_test_%d_%d", os.Getpid(), keyspaceSeq.Add(1))
}

// openStore opens a cql.Store on a fresh keyspace, migrated, and drops the keyspace
// at cleanup.
func openStore(t testing.TB, cfg cql.Config) *cql.Store {
	t.Helper()
	c := testenv.NeedCassandra(t)
	cfg.Hosts = c.Hosts
	if cfg.Keyspace == "" {
		cfg.Keyspace = newKeyspace()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	s, err := cql.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Keyspace, err)
	}
	t.Logf("keyspace %s created and migrated in %v", cfg.Keyspace, time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Session().Query(`DROP KEYSPACE IF EXISTS "` + cfg.Keyspace + `"`).WithContext(ctx).Exec(); err != nil {
			t.Logf("drop keyspace %s: %v", cfg.Keyspace, err)
		}
		s.Close()
	})
	return s
}

// queryCounter counts the queries a store sends (batches not included).
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) ObserveQuery(context.Context, gocql.ObservedQuery) { q.n.Add(1) }
