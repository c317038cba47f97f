package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "guildhall-check:", err)
		os.Exit(1)
	}
}

// errViolations: the run finished and broke an invariant (exit status 1, like
// any failure, so scripts can tell it from success).
var errViolations = errors.New("invariants broken (see the report)")

func mainErr(args []string) error {
	fs := flag.NewFlagSet("guildhall-check", flag.ContinueOnError)
	var cfg Config
	fs.StringVar(&cfg.Bin, "bin", "bin/guildhall", "the guildhall binary (go build -o bin/guildhall ./cmd/guildhall)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the run's data and logs; empty means a new temporary one, removed after a passing run")
	hosts := fs.String("cql-hosts", "", "CQL contact points of the Cassandra or ScyllaDB the api processes and writer use (required)")
	stopCmd := fs.String("cql-stop", "", "shell command that stops the CQL server and returns once it has exited (the Cassandra outage fault; empty leaves it out)")
	startCmd := fs.String("cql-start", "", "shell command that starts the CQL server again on its data (it must return; the checker then waits until CQL answers)")
	fs.StringVar(&cfg.Keyspace, "cql-keyspace", "", "keyspace for the run; empty means a new guildhall_check_<time>")
	fs.StringVar(&cfg.Schedule, "schedule", "long", "faults: short (the test suite's) or long (every fault, then several at once)")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "how many times to run the schedule")
	fs.BoolVar(&cfg.SyncAlways, "sync-always", false, "NATS nodes fsync every write (sync_interval: always)")
	fs.IntVar(&cfg.Users, "users", 24, "accounts, each posting and holding one gateway session")
	fs.Float64Var(&cfg.Rate, "rate", 20, "posts per second, all users together")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 10*time.Second, "the gateways' heartbeat interval")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hosts == "" {
		return errors.New("--cql-hosts is required: the two api processes share a CQL store")
	}
	db := &commandDatabase{hosts: strings.Split(*hosts, ","), stop: *stopCmd, start: *startCmd}
	cfg.Database = db
	cfg.DatabaseFaults = db.stop != "" && db.start != ""
	if cfg.Keyspace == "" {
		cfg.Keyspace = fmt.Sprintf("guildhall_check_%d", time.Now().Unix())
	}
	keep := cfg.Dir != ""
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "guildhall-check-")
		if err != nil {
			return err
		}
		cfg.Dir = dir
	}
	logger := log.New(os.Stderr, "", log.Ltime|log.Lmicroseconds)
	cfg.Logf = logger.Printf
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Printf("run directory %s (logs in logs/), keyspace %s", cfg.Dir, cfg.Keyspace)
	rep, err := run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w (run directory %s)", err, cfg.Dir)
	}
	rep.write(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if len(rep.Result.Violations) > 0 {
		fmt.Fprintf(os.Stderr, "run directory kept: %s\n", cfg.Dir)
		return errViolations
	}
	if !keep {
		_ = os.RemoveAll(cfg.Dir)
	}
	return nil
}

// commandDatabase is a CQL server the operator controls with shell commands.
type commandDatabase struct {
	hosts       []string
	stop, start string
}

func (c *commandDatabase) Hosts() []string { return c.hosts }

func (c *commandDatabase) Stop(ctx context.Context) error {
	if c.stop == "" {
		return errors.New("no --cql-stop command")
	}
	if out, err := exec.CommandContext(ctx, "sh", "-c", c.stop).CombinedOutput(); err != nil {
		return fmt.Errorf("--cql-stop: %v: %s", err, out)
	}
	return nil
}

func (c *commandDatabase) Start(ctx context.Context) error {
	if c.start == "" {
		return errors.New("no --cql-start command")
	}
	if out, err := exec.CommandContext(ctx, "sh", "-c", c.start).CombinedOutput(); err != nil {
		return fmt.Errorf("--cql-start: %v: %s", err, out)
	}
	return waitFor(ctx, 3*time.Minute, func() error {
		for _, h := range c.hosts {
			conn, err := net.DialTimeout("tcp", h, time.Second)
			if err != nil {
				return err
			}
			conn.Close()
		}
		return nil
	})
}
