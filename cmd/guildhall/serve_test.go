package main

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// TestServeFlagsFromEnvironment: every serve flag has an environment variable
// that sets it exactly as the flag does; the command line wins over the variable;
// a variable that does not parse is an error that names it.
func TestServeFlagsFromEnvironment(t *testing.T) {
	t.Parallel()
	var defaults serveFlags
	fs := serveFlagSet(&defaults)
	fs.VisitAll(func(fl *flag.Flag) {
		// A value unlike the default, in the flag's own syntax.
		var v, other string
		switch fl.Value.(flag.Getter).Get().(type) {
		case int, int64:
			v, other = "7", "8"
		case time.Duration:
			v, other = "7s", "8s"
		case bool:
			v, other = "true", "false"
		default:
			v, other = "env-"+fl.Name, "arg-"+fl.Name
		}
		env := map[string]string{envName(fl.Name): v}
		getenv := func(k string) (string, bool) { s, ok := env[k]; return s, ok }

		fromArg, err := parseServe([]string{"--" + fl.Name + "=" + v}, noEnv)
		if err != nil {
			t.Fatalf("--%s %s: %v", fl.Name, v, err)
		}
		fromEnv, err := parseServe(nil, getenv)
		if err != nil {
			t.Fatalf("%s=%s: %v", envName(fl.Name), v, err)
		}
		if fromEnv != fromArg || fromEnv == defaults {
			t.Errorf("%s=%s gives %+v; want %+v (as --%s %s)", envName(fl.Name), v, fromEnv, fromArg, fl.Name, v)
		}
		both, err := parseServe([]string{"--" + fl.Name + "=" + other}, getenv)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := parseServe([]string{"--" + fl.Name + "=" + other}, noEnv); both != want {
			t.Errorf("--%s %s with %s=%s gives %+v; want the flag's value", fl.Name, other, envName(fl.Name), v, both)
		}
		if v != "7" && v != "7s" {
			return
		}
		bad := func(k string) (string, bool) {
			if k == envName(fl.Name) {
				return "many", true
			}
			return "", false
		}
		if _, err := parseServe(nil, bad); err == nil || !strings.Contains(err.Error(), envName(fl.Name)) {
			t.Errorf("%s=many: err = %v; want an error naming the variable", envName(fl.Name), err)
		}
	})
	// The walk saw the flags that had no variable before.
	for _, name := range []string{"replicas", "drain", "bcrypt-cost", "identify-total", "identify-concurrency"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no flag --%s", name)
		}
	}
}

func noEnv(string) (string, bool) { return "", false }
