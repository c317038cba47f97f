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

// The dependency direction (README, Layout): root ← nats ← messaging, registry, presence
// ← gateway ← cmd. Feature packages do not import each other, gateways never
// reach the store (messaging), and only tests import testenv.
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/guildhall/guildhall"
	forbidden := map[string][]string{
		"":          {"/"}, // the root imports no package of this module
		"nats":      {"/messaging", "/gateway", "/registry", "/presence", "/cmd"},
		"messaging": {"/gateway", "/registry", "/presence", "/cmd"},
		"registry":  {"/messaging", "/gateway", "/presence", "/cmd"},
		"presence":  {"/messaging", "/gateway", "/cmd"},
		"gateway":   {"/messaging", "/cmd"},
	}
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
		top := strings.SplitN(dir, "/", 2)[0]
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, mod) {
				if top == "" && strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
					t.Errorf("%s imports %s: the root package uses the standard library only", path, p)
				}
				continue
			}
			rel := strings.TrimPrefix(p, mod)
			if rel == "/testenv" && top != "testenv" {
				t.Errorf("%s imports testenv: only tests may", path)
			}
			for _, bad := range forbidden[top] {
				if rel != "" && (bad == "/" || strings.HasPrefix(rel+"/", bad+"/")) && !strings.HasPrefix(rel+"/", "/"+top+"/") {
					t.Errorf("%s imports %s, against the dependency direction", path, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
