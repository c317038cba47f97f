package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.CassandraMain(m, nil)) }

// cassandra is testenv's Cassandra as the checker's Database.
type cassandra struct{ c *testenv.Cassandra }

func (c cassandra) Hosts() []string                 { return c.c.Hosts }
func (c cassandra) Stop(ctx context.Context) error  { return c.c.Stop() }
func (c cassandra) Start(ctx context.Context) error { return c.c.Start() }

func buildGuildhall(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "guildhall")
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/guildhall")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The checker's short schedule, as the test suite runs it: a 3-node cluster,
// two api processes and a writer on Cassandra, two gateways and an edge site,
// 12 users posting, editing (and reacting, where the server has reactions) at
// 10 posts a second while the stream's leader is killed, the leaf link and a
// route are cut, a gateway and the writer are killed. Every invariant must
// hold. GUILDHALL_CHECK=long runs the long schedule instead (every fault,
// Cassandra down 30 s included, then several at once; about 10 minutes):
//
//	CI=true GUILDHALL_CHECK=long go test -run TestCheckerRun -timeout 60m -v ./cmd/guildhall-check/
func TestCheckerRun(t *testing.T) {
	testenv.SkipShort(t, "runs a whole deployment under faults")
	db := testenv.NeedCassandra(t)
	// The run's directory (every process's log) is kept when the test fails.
	dir, err := os.MkdirTemp("", "guildhall-check-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		}
	})
	// GUILDHALL_CHECK_BIN checks another build of guildhall (another branch's).
	bin := os.Getenv("GUILDHALL_CHECK_BIN")
	if bin == "" {
		bin = buildGuildhall(t)
	}
	cfg := Config{
		Bin: bin, Dir: dir, Database: cassandra{db},
		Keyspace: fmt.Sprintf("guildhall_check_%d", time.Now().UnixNano()),
		Schedule: "short", Logf: t.Logf,
	}
	if os.Getenv("GUILDHALL_CHECK") == "long" {
		cfg.Schedule, cfg.Users, cfg.Rate, cfg.DatabaseFaults = "long", 24, 20, !db.External
		cfg.SyncAlways = os.Getenv("GUILDHALL_CHECK_SYNC") == "always"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.write(&b)
	t.Log("\n" + b.String())
	if out := os.Getenv("GUILDHALL_CHECK_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(b.String()), 0o644)
	}
	if n := len(rep.Result.Violations); n > 0 {
		t.Fatalf("%d invariants broken (logs of every process in %s/logs)", n, cfg.Dir)
	}
	if rep.Result.PostsOK == 0 || rep.Result.Deliveries == 0 {
		t.Fatalf("the run acknowledged %d posts and checked %d deliveries: it tested nothing", rep.Result.PostsOK, rep.Result.Deliveries)
	}
}
