package guildhall_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The database drivers, each linked only by the storage engine named after it
// (and by cmd, which picks one).
const (
	bbolt = "go.etcd.io/bbolt"
	gocql = "github.com/gocql/gocql"
)

// forbidden: what the non-test files of a package may not import. Entries that
// start with "/" are packages of this module (the entry and everything below it);
// the others are modules outside it. A folder's rule covers the packages below it
// that have no rule of their own; packages without one (cmd/, testenv/, bench/)
// may import anything.
//
// The dependency direction: root ← nats ← messaging, registry, presence ← gateway
// ← cmd. Feature packages do not import each other, gateways never reach the
// store (messaging), and only tests import testenv. Inside messaging, the service
// and its two transports (rest, natsapi) know only the Store interface: importing
// the service links neither database driver, and each engine (bolt, cql) links
// only its own.
var forbidden = map[string][]string{
	"":                    {"/"}, // the root imports no package of this module
	"nats":                {"/messaging", "/gateway", "/registry", "/presence", "/cmd", bbolt, gocql},
	"messaging":           {"/messaging/bolt", "/messaging/cql", "/messaging/rest", "/messaging/natsapi", "/messaging/storetest", "/gateway", "/registry", "/presence", "/cmd", bbolt, gocql},
	"messaging/rest":      {"/messaging/bolt", "/messaging/cql", "/messaging/natsapi", "/messaging/storetest", "/gateway", "/registry", "/presence", "/cmd", bbolt, gocql},
	"messaging/natsapi":   {"/messaging/bolt", "/messaging/cql", "/messaging/rest", "/messaging/storetest", "/gateway", "/registry", "/presence", "/cmd", bbolt, gocql},
	"messaging/bolt":      {"/messaging/cql", "/messaging/rest", "/messaging/natsapi", "/messaging/storetest", "/gateway", "/registry", "/presence", "/cmd", gocql},
	"messaging/cql":       {"/messaging/bolt", "/messaging/rest", "/messaging/natsapi", "/messaging/storetest", "/gateway", "/registry", "/presence", "/cmd", bbolt},
	"messaging/storetest": {"/messaging/bolt", "/messaging/cql", "/messaging/rest", "/messaging/natsapi", "/gateway", "/registry", "/presence", "/cmd", bbolt, gocql},
	"registry":            {"/messaging", "/gateway", "/presence", "/cmd", bbolt, gocql},
	"presence":            {"/messaging", "/gateway", "/cmd", bbolt, gocql},
	"gateway":             {"/messaging", "/cmd", bbolt, gocql},
	"gateway/etf":         {"/"}, // a codec: the standard library only
	"web":                 {"/"}, // the browser client talks to the server as any client: over HTTP only
}

// ruleFor returns the rule of dir: its own, or that of the nearest folder above
// it that has one. The root's rule is the root package's alone.
func ruleFor(dir string) []string {
	for d := dir; d != "" && d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
		if r, ok := forbidden[d]; ok {
			return r
		}
	}
	if dir == "" {
		return forbidden[""]
	}
	return nil
}

const mod = "github.com/guildhall/guildhall"

// refused reports whether a non-test file of the package in dir ("" for the root)
// may not import the package at path p.
func refused(dir, p string) bool {
	rel, inModule := strings.CutPrefix(p, mod)
	if inModule && rel != "" && !strings.HasPrefix(rel, "/") {
		inModule = false // another module whose path starts like ours
	}
	for _, bad := range ruleFor(dir) {
		switch {
		case bad == "/":
			if inModule && rel != "" {
				return true
			}
		case strings.HasPrefix(bad, "/"):
			if inModule && strings.HasPrefix(rel+"/", bad+"/") {
				return true
			}
		default:
			if !inModule && strings.HasPrefix(p+"/", bad+"/") {
				return true
			}
		}
	}
	return false
}

func TestDependencyDirection(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if dir == "." {
			dir = ""
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dir == "" && !strings.HasPrefix(p, mod) && strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
				t.Errorf("%s imports %s: the root package uses the standard library only", path, p)
			}
			if p == mod+"/testenv" && dir != "testenv" && !strings.HasPrefix(dir, "testenv/") {
				t.Errorf("%s imports testenv: only tests may", path)
			}
			if refused(dir, p) {
				t.Errorf("%s imports %s, against the dependency direction", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The rules bite where they should and nowhere else.
func TestDependencyRules(t *testing.T) {
	for _, c := range []struct {
		dir, imp string
		refused  bool
	}{
		{"", mod + "/nats", true},
		{"", "strings", false},
		{"nats", mod + "/messaging", true},
		{"messaging", mod + "/nats", false},
		{"messaging", mod + "/messaging/bolt", true},
		{"messaging", mod + "/messaging/cql", true},
		{"messaging", mod + "/messaging/rest", true},
		{"messaging", bbolt, true},
		{"messaging", gocql + "/internal/lru", true},
		{"messaging", "github.com/nats-io/nats.go/jetstream", false},
		{"messaging/rest", mod + "/messaging", false},
		{"messaging/rest", mod + "/messaging/natsapi", true},
		{"messaging/natsapi", mod + "/messaging/bolt", true},
		{"messaging/bolt", bbolt + "/errors", false},
		{"messaging/bolt", gocql, true},
		{"messaging/cql", gocql, false},
		{"messaging/cql", bbolt, true},
		{"messaging/storetest", mod + "/messaging/cql", true},
		{"gateway", mod + "/messaging/natsapi", true},
		{"gateway/sub", mod + "/messaging", true},
		{"gateway", mod + "/presence", false},
		{"cmd/guildhall", mod + "/messaging/bolt", false},
		{"cmd/guildhall", gocql, false},
	} {
		if got := refused(c.dir, c.imp); got != c.refused {
			t.Errorf("refused(%q, %q) = %v; want %v", c.dir, c.imp, got, c.refused)
		}
	}
}
