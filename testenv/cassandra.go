package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// Cassandra for tests: Apache Cassandra 5.0 (org.apache.cassandra:cassandra-all from
// Maven Central) run as a child JVM on OpenJDK 17, on free loopback ports, with its
// data in a temp dir. The JVM flags are those of Cassandra 5.0's
// conf/jvm17-server.options; the yaml is a single loopback node sized for 2 cores.
//
// One test binary starts at most one server: TestMain calls CassandraMain, and each
// test that needs CQL calls NeedCassandra, which starts the server on first use and
// hands every later caller the same one. The server stops when m.Run returns.
//
// Environment:
//   - GUILDHALL_CQL_HOSTS=host[:port][,host...]: use that server; start nothing.
//   - CI=true: a server that cannot start fails the tests instead of skipping them.
//   - JAVA_HOME: used if it is a Java 17 (Cassandra 5.0 runs on 11 or 17 only).

// Environment variables the launcher reads.
const (
	EnvCQLHosts = "GUILDHALL_CQL_HOSTS"
	EnvCI       = "CI"
)

// CassandraVersion is the cassandra-all version testenv/cassandra/pom.xml resolves.
const CassandraVersion = "5.0.8"

// cassandraReadyTimeout bounds one start-up: JVM start, commit-log replay after a
// restart, until CQL accepts a session.
const cassandraReadyTimeout = 3 * time.Minute

// Cassandra is a running (or stopped) Cassandra server for tests, or an external one
// named by GUILDHALL_CQL_HOSTS.
type Cassandra struct {
	// Hosts are the contact points for gocql, "127.0.0.1:port".
	Hosts []string
	// External is true when the server came from GUILDHALL_CQL_HOSTS: Stop, Kill and
	// Start then fail with ErrExternalCassandra.
	External bool
	// Dir holds data, commit log, config and logs of a server started here.
	Dir string
	// NativePort and StoragePort are the loopback ports of a server started here.
	NativePort, StoragePort int
	// StartupTime is how long the last Start took until CQL accepted a session.
	StartupTime time.Duration

	java string // path of the java binary
	lib  string // classpath folder with the resolved jars

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	werr error         // cmd.Wait's error, valid after done is closed
}

// ErrExternalCassandra: the server is not ours to stop or start.
var ErrExternalCassandra = errors.New("testenv: cassandra is external (GUILDHALL_CQL_HOSTS); cannot stop or start it")

// StartCassandra starts a new single-node Cassandra in a fresh temp dir on free
// loopback ports and waits until CQL accepts a session. The classpath is resolved
// with Maven into <repo>/.cache/cassandra/lib if it is not there yet. If
// GUILDHALL_CQL_HOSTS is set it only checks that the server there answers.
// The caller must Close it.
func StartCassandra() (*Cassandra, error) {
	if hosts := os.Getenv(EnvCQLHosts); hosts != "" {
		c := &Cassandra{External: true}
		for _, h := range strings.Split(hosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.Hosts = append(c.Hosts, h)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := waitForCQL(ctx, c.Hosts, nil); err != nil {
			return nil, fmt.Errorf("testenv: %s=%s: %w", EnvCQLHosts, hosts, err)
		}
		return c, nil
	}
	java, err := findJava17()
	if err != nil {
		return nil, err
	}
	lib, err := CassandraClasspath()
	if err != nil {
		return nil, err
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", "guildhall-cassandra-")
	if err != nil {
		return nil, err
	}
	// Who owns the dir: a later run removes it if this process died without Close.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	c := &Cassandra{Dir: dir, java: java, lib: lib}
	// A free port found now can be taken before the JVM binds it; try fresh ports a
	// few times when that is why the server died.
	for attempt := 1; ; attempt++ {
		if c.NativePort, c.StoragePort, err = freePorts(); err != nil {
			break
		}
		if err = c.writeConfig(); err != nil {
			break
		}
		err = c.Start()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// removeStaleDirs removes the temp dirs of servers whose test binary died without
// Close (a panic, a test timeout); their JVMs died with them (Pdeathsig).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "guildhall-cassandra-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// Start launches the server on its data dir and ports (again, after Stop or Kill) and
// waits until CQL accepts a session.
func (c *Cassandra) Start() error {
	if c.External {
		return ErrExternalCassandra
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		select {
		case <-c.done:
		default:
			return errors.New("testenv: cassandra is already running")
		}
	}
	logDir := filepath.Join(c.Dir, "logs")
	out, err := os.OpenFile(filepath.Join(logDir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	fmt.Fprintf(out, "\n==== testenv: start at %s ====\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.java, c.jvmArgs()...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=4")
	// Own process group, so Stop/Kill reach every process the JVM may spawn; and die
	// with the test binary if it is killed (a test timeout must not leave a JVM).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start %s: %w", c.java, err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func(done chan struct{}) {
		c.werr = cmd.Wait()
		close(done)
	}(c.done)

	ctx, cancel := context.WithTimeout(context.Background(), cassandraReadyTimeout)
	defer cancel()
	if err := waitForCQL(ctx, c.Hosts, c.done); err != nil {
		c.signalLocked(syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("testenv: cassandra (%s) did not become ready (CQL, within %v): %w (exit: %v); logs in %s, tail:\n%s",
			c.Hosts[0], cassandraReadyTimeout, err, c.werr, logDir, c.logTail(40))
	}
	c.StartupTime = time.Since(begin)
	rss, _ := c.rssLocked()
	fmt.Fprintf(os.Stderr, "testenv: cassandra %s ready on %s in %v (pid %d, RSS %d MiB, dir %s)\n",
		CassandraVersion, c.Hosts[0], c.StartupTime.Round(time.Millisecond), cmd.Process.Pid, rss>>20, c.Dir)
	return nil
}

// Stop shuts the server down as an operator would: SIGTERM to its process group,
// then SIGKILL if it has not exited after 30 s. Data stays; Start brings it back.
func (c *Cassandra) Stop() error { return c.stop(syscall.SIGTERM, 30*time.Second) }

// Kill stops the server with SIGKILL at once, as a crash would.
func (c *Cassandra) Kill() error { return c.stop(syscall.SIGKILL, 0) }

func (c *Cassandra) stop(sig syscall.Signal, grace time.Duration) error {
	if c.External {
		return ErrExternalCassandra
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	c.signalLocked(sig)
	if grace > 0 {
		select {
		case <-c.done:
			return nil
		case <-time.After(grace):
			c.signalLocked(syscall.SIGKILL)
		}
	}
	<-c.done
	return nil
}

func (c *Cassandra) signalLocked(sig syscall.Signal) {
	// Negative pid: the whole process group.
	_ = syscall.Kill(-c.cmd.Process.Pid, sig)
}

// Running reports whether the server process is alive.
func (c *Cassandra) Running() bool {
	if c.External {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// RSS is the resident memory of the server's JVM in bytes (0 for an external server).
func (c *Cassandra) RSS() (int64, error) {
	if c.External {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rssLocked()
}

func (c *Cassandra) rssLocked() (int64, error) {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0, errors.New("testenv: cassandra not started")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("testenv: no VmRSS")
}

// Close stops the server and removes its directory.
func (c *Cassandra) Close() error {
	if c.External {
		return nil
	}
	err := c.Stop()
	if c.Dir != "" {
		if rerr := os.RemoveAll(c.Dir); err == nil {
			err = rerr
		}
	}
	return err
}

// Cluster returns a gocql config for this server: protocol 4, loopback contact
// points, timeouts that suit a loaded 2-core test machine.
func (c *Cassandra) Cluster() *gocql.ClusterConfig {
	return newTestCluster(c.Hosts)
}

func newTestCluster(hosts []string) *gocql.ClusterConfig {
	cl := gocql.NewCluster(hosts...)
	cl.ProtoVersion = 4
	cl.Timeout = 20 * time.Second
	cl.ConnectTimeout = 5 * time.Second
	cl.Consistency = gocql.One
	cl.Logger = quietLogger{}
	return cl
}

// waitForCQL polls until a gocql session opens and answers a query, ctx ends, or
// exited (if not nil) is closed because the process died.
func waitForCQL(ctx context.Context, hosts []string, exited <-chan struct{}) error {
	var last error
	for {
		cl := newTestCluster(hosts)
		cl.ConnectTimeout = 2 * time.Second
		cl.Timeout = 5 * time.Second
		cl.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: time.Second} // 0 would add a nil conn to the pool (gocql 1.7)
		s, err := cl.CreateSession()
		if err == nil {
			var v string
			err = s.Query("SELECT release_version FROM system.local").WithContext(ctx).Scan(&v)
			s.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-exited:
			return fmt.Errorf("the JVM exited (last error: %v)", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

type quietLogger struct{}

func (quietLogger) Print(...any)          {}
func (quietLogger) Printf(string, ...any) {}
func (quietLogger) Println(...any)        {}

func (c *Cassandra) logTail(n int) string {
	var out []string
	for _, name := range []string{"system.log", "stdout.log"} {
		b, err := os.ReadFile(filepath.Join(c.Dir, "logs", name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		out = append(out, "["+name+"]", strings.Join(lines, "\n"))
	}
	return strings.Join(out, "\n")
}

// jvmArgs are the flags of Cassandra 5.0's conf/jvm17-server.options that matter,
// plus test settings: a small fixed heap, no JMX, unsafe (no fsync) system tables.
func (c *Cassandra) jvmArgs() []string {
	args := []string{
		"-Xms512m", "-Xmx512m", "-Xss256k", "-XX:+UseG1GC",
		"-XX:MaxDirectMemorySize=256m",
		"-XX:CICompilerCount=2",
		"-XX:+ExitOnOutOfMemoryError",
		"-Djava.net.preferIPv4Stack=true",
		"-Djdk.attach.allowAttachSelf=true",
		"-Dio.netty.tryReflectionSetAccessible=true",
		"-javaagent:" + filepath.Join(c.lib, "jamm-0.4.0.jar"),
		"-Dcassandra-foreground=yes",
		"-Dcassandra.config=file://" + filepath.Join(c.Dir, "cassandra.yaml"),
		"-Dlogback.configurationFile=" + filepath.Join(c.Dir, "logback.xml"),
		"-Dcassandra.storagedir=" + filepath.Join(c.Dir, "data"),
		"-Dcassandra.logdir=" + filepath.Join(c.Dir, "logs"),
		"-Djava.io.tmpdir=" + filepath.Join(c.Dir, "tmp"),
		"-Dcassandra.skip_wait_for_gossip_to_settle=0",
		"-Dcassandra.load_ring_state=false",
		"-Dcassandra.unsafesystem=true",
		"-Dcassandra.ring_delay_ms=0",
		"-Dcassandra.superuser_setup_delay_ms=0",
	}
	for _, e := range []string{
		"java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
		"java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql",
		"java.base/java.lang.ref", "jdk.unsupported/sun.misc",
		"jdk.compiler/com.sun.tools.javac.file", "jdk.attach/sun.tools.attach",
		"java.management/com.sun.jmx.remote.security",
	} {
		args = append(args, "--add-exports", e+"=ALL-UNNAMED")
	}
	for _, o := range []string{
		"java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
		"java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
		"java.base/jdk.internal.util.jar", "java.base/sun.nio.ch", "java.base/java.io",
		"java.base/java.lang.reflect", "java.base/java.lang", "java.base/java.util", "java.base/java.nio",
		"jdk.management/com.sun.management.internal", "jdk.compiler/com.sun.tools.javac",
	} {
		args = append(args, "--add-opens", o+"=ALL-UNNAMED")
	}
	// exec passes "<lib>/*" as one argument: the JVM expands the wildcard itself.
	return append(args, "-cp", filepath.Join(c.lib, "*"), "org.apache.cassandra.service.CassandraDaemon")
}

// writeConfig writes cassandra.yaml and logback.xml for the current ports.
func (c *Cassandra) writeConfig() error {
	for _, d := range []string{"data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	c.Hosts = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(c.NativePort))}
	yaml := fmt.Sprintf(cassandraYAML, c.StoragePort, c.NativePort,
		filepath.Join(c.Dir, "data"), filepath.Join(c.Dir, "commitlog"),
		filepath.Join(c.Dir, "saved_caches"), filepath.Join(c.Dir, "hints"),
		filepath.Join(c.Dir, "cdc_raw"))
	if err := os.WriteFile(filepath.Join(c.Dir, "cassandra.yaml"), []byte(yaml), 0o644); err != nil {
		return err
	}
	logback := strings.ReplaceAll(cassandraLogback, "LOGDIR", filepath.Join(c.Dir, "logs"))
	return os.WriteFile(filepath.Join(c.Dir, "logback.xml"), []byte(logback), 0o644)
}

// cassandraYAML is a single node on loopback, sized for a 2-core test machine:
// few request threads, small caches and memtables, no snapshots, no hints, and
// request timeouts long enough for a loaded machine. Cassandra 5.0 key names (it
// rejects unknown keys).
const cassandraYAML = `cluster_name: guildhall-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: %d
native_transport_port: %d
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters: [{seeds: "127.0.0.1"}]
data_file_directories: [%s]
commitlog_directory: %s
saved_caches_directory: %s
hints_directory: %s
cdc_raw_directory: %s
commitlog_sync: periodic
commitlog_sync_period: 10s
commitlog_segment_size: 16MiB
auto_snapshot: false
snapshot_before_compaction: false
incremental_backups: false
hinted_handoff_enabled: false
concurrent_reads: 4
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_compactors: 1
native_transport_max_threads: 32
memtable_heap_space: 96MiB
memtable_offheap_space: 96MiB
key_cache_size: 16MiB
counter_cache_size: 8MiB
file_cache_size: 64MiB
networking_cache_size: 32MiB
read_request_timeout: 10000ms
range_request_timeout: 20000ms
write_request_timeout: 10000ms
counter_write_request_timeout: 10000ms
truncate_request_timeout: 60000ms
request_timeout: 20000ms
batch_size_warn_threshold: 64KiB
dynamic_snitch: false
`

const cassandraLogback = `<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>LOGDIR/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
`

// freePorts returns two distinct free loopback TCP ports.
func freePorts() (int, int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

// findJava17 picks the java binary: $JAVA_HOME if it is a 17, Debian's OpenJDK 17,
// any /usr/lib/jvm/*17*, then java on PATH if it reports version 17.
func findJava17() (string, error) {
	var candidates []string
	if h := os.Getenv("JAVA_HOME"); h != "" {
		candidates = append(candidates, filepath.Join(h, "bin", "java"))
	}
	candidates = append(candidates, "/usr/lib/jvm/java-17-openjdk-amd64/bin/java")
	if m, _ := filepath.Glob("/usr/lib/jvm/*17*/bin/java"); len(m) > 0 {
		candidates = append(candidates, m...)
	}
	if p, err := exec.LookPath("java"); err == nil {
		candidates = append(candidates, p)
	}
	for _, j := range candidates {
		if javaMajor(j) == 17 {
			return j, nil
		}
	}
	return "", fmt.Errorf("testenv: no Java 17 found (tried %s); Cassandra 5.0 needs OpenJDK 17 (apt-get install openjdk-17-jre-headless)", strings.Join(candidates, ", "))
}

// javaMajor runs `java -version` and returns the major version, 0 if unknown.
func javaMajor(java string) int {
	if _, err := os.Stat(java); err != nil {
		return 0
	}
	out, err := exec.Command(java, "-version").CombinedOutput()
	if err != nil {
		return 0
	}
	// openjdk version "17.0.15" 2025-04-15
	line, _, _ := strings.Cut(string(out), "\n")
	_, v, ok := strings.Cut(line, `"`)
	if !ok {
		return 0
	}
	v, _, _ = strings.Cut(v, `"`)
	major, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	return n
}

// RepoRoot is the directory of the go.mod of module github.com/guildhall/guildhall,
// found from the working directory (go test runs in the package dir) or, failing
// that, from this source file's location.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.Contains(b, []byte("module github.com/guildhall/guildhall\n")) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("testenv: cannot find the repository root (go.mod of github.com/guildhall/guildhall)")
}

// CassandraClasspath returns the folder of the server's jars,
// <repo>/.cache/cassandra/lib, resolving it with Maven first if it is missing or
// incomplete. scripts/cassandra-deps.sh does the same from a shell; both write the
// marker lib/.complete (the pom's sha256, then one jar name per line) last, so a
// half-copied folder is never taken for a complete one. A file lock keeps parallel
// test binaries from resolving at the same time.
func CassandraClasspath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	pom := filepath.Join(root, "testenv", "cassandra", "pom.xml")
	cache := filepath.Join(root, ".cache", "cassandra")
	lib := filepath.Join(cache, "lib")
	pomBytes, err := os.ReadFile(pom)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(pomBytes)
	want := hex.EncodeToString(sum[:])
	if classpathComplete(lib, want) {
		return lib, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if classpathComplete(lib, want) { // another process resolved it meanwhile
		return lib, nil
	}
	if _, err := exec.LookPath("mvn"); err != nil {
		return "", errors.New("testenv: the Cassandra classpath is not cached and mvn is not installed (apt-get install maven, or run scripts/cassandra-deps.sh)")
	}
	tmp := lib + ".tmp"
	_ = os.RemoveAll(tmp)
	fmt.Fprintf(os.Stderr, "testenv: resolving cassandra-all %s with Maven into %s\n", CassandraVersion, lib)
	begin := time.Now()
	cmd := exec.Command("mvn", "-B", "-q", "-Dstyle.color=never", "-f", pom, "dependency:copy-dependencies",
		"-DincludeScope=runtime", "-DoutputDirectory="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("testenv: mvn dependency:copy-dependencies: %w\n%s", err, tail(string(out), 30))
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return "", err
	}
	var marker strings.Builder
	marker.WriteString(want + "\n")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jar") {
			marker.WriteString(e.Name() + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(marker.String()), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(lib)
	if err := os.Rename(tmp, lib); err != nil {
		return "", err
	}
	if !classpathComplete(lib, want) {
		return "", fmt.Errorf("testenv: %s is incomplete after Maven ran (no cassandra-all or jamm jar?)", lib)
	}
	fmt.Fprintf(os.Stderr, "testenv: resolved %d jars in %v\n", len(entries), time.Since(begin).Round(time.Second))
	return lib, nil
}

// classpathComplete checks lib/.complete: written for this pom, every jar it lists
// present, cassandra-all and jamm (the agent) among them.
func classpathComplete(lib, pomSum string) bool {
	f, err := os.Open(filepath.Join(lib, ".complete"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != pomSum {
		return false
	}
	var jars int
	var haveServer, haveJamm bool
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(lib, name)); err != nil {
			return false
		}
		jars++
		haveServer = haveServer || name == "cassandra-all-"+CassandraVersion+".jar"
		haveJamm = haveJamm || name == "jamm-0.4.0.jar"
	}
	return sc.Err() == nil && jars > 0 && haveServer && haveJamm
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The server shared by the tests of one test binary.
var shared struct {
	once sync.Once
	c    *Cassandra
	err  error
}

// CassandraMain runs the tests of a package that uses Cassandra; call it from
// TestMain as os.Exit(testenv.CassandraMain(m, nil)). The server starts lazily, on
// the first NeedCassandra, so `go test -run` of other tests does not wait for a JVM;
// setup (if not nil) runs once right after it has started. The server stops after
// m.Run.
func CassandraMain(m *testing.M, setup func(*Cassandra) error) int {
	sharedSetup = setup
	code := m.Run()
	if shared.c != nil {
		if rss, err := shared.c.RSS(); err == nil && rss > 0 {
			fmt.Fprintf(os.Stderr, "testenv: cassandra RSS at the end of the tests: %d MiB\n", rss>>20)
		}
		if err := shared.c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop cassandra: %v\n", err)
		}
	}
	if shared.err != nil && CI() && code == 0 {
		code = 1 // belt and braces: NeedCassandra has failed the tests already
	}
	return code
}

var sharedSetup func(*Cassandra) error

// NeedCassandra returns the package's shared server, starting it on first use.
// If it cannot start the test fails when CI=true and is skipped otherwise, with the
// reason. Requires CassandraMain in TestMain (so that the server is stopped).
func NeedCassandra(t testing.TB) *Cassandra {
	t.Helper()
	shared.once.Do(func() {
		shared.c, shared.err = StartCassandra()
		if shared.err == nil && sharedSetup != nil {
			if shared.err = sharedSetup(shared.c); shared.err != nil {
				shared.c.Close()
				shared.c = nil
			}
		}
	})
	if shared.err != nil {
		if CI() {
			t.Fatalf("Cassandra is required when CI=true and did not start: %v", shared.err)
		}
		t.Skipf("skipping: Cassandra did not start (set CI=true to make this a failure): %v", shared.err)
	}
	return shared.c
}

// CI reports whether the tests run in CI (CI=true or 1), where a missing real
// server is a failure rather than a skip.
func CI() bool {
	v, _ := strconv.ParseBool(os.Getenv(EnvCI))
	return v
}
