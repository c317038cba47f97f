package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

// discord.js 14 (and erlpack) against a real server: the scripts of
// compat/discordjs, a Node package with its lockfile that .ci/run installs with
// npm ci, run with node against a stack started here (this file's test, and
// compat_discordjs_test.go's). Without node or the installed package a test
// skips on a developer's machine and fails in CI.

// discordJSDir is the Node package of the discord.js scripts.
const discordJSDir = "../../compat/discordjs"

// runDiscordJS runs script (a file of discordJSDir) with env added to the
// environment, failing the test if it exits non-zero or runs past timeout. Its
// output goes to the test log; a line the script prints that starts with a key
// of answer (nil: none) is passed to that function, and what it returns is
// written to the script's standard input as one line (control.mjs).
func runDiscordJS(t *testing.T, script string, env map[string]string, timeout time.Duration, answer map[string]func(line string) string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not installed")
	}
	for _, mod := range []string{"discord.js", "erlpack", "zlib-sync", "ws"} {
		if _, err := os.Stat(filepath.Join(discordJSDir, "node_modules", mod, "package.json")); err != nil {
			testenv.Unavailable(t, mod+" is not installed: run npm ci in compat/discordjs")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = discordJSDir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("node %s: %s", script, line)
		for key, f := range answer {
			if strings.HasPrefix(line, key+" ") {
				reply := f(strings.TrimPrefix(line, key+" "))
				if _, err := io.WriteString(stdin, reply+"\n"); err != nil {
					t.Errorf("answer to %s: %v", key, err)
				}
			}
		}
	}
	err = cmd.Wait()
	if stderr.Len() > 0 {
		t.Logf("node %s stderr:\n%s", script, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("node %s ran past %v", script, timeout)
	}
	if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
}

// TestDiscordJSConversations: two discord.js clients reply, react, upload a file
// and open a DM (compat/discordjs/conversations.mjs).
func TestDiscordJSConversations(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	runDiscordJS(t, "conversations.mjs", map[string]string{
		"GH_API":     "http://" + s.addr + "/api",
		"GH_TOKEN_A": f.memberToken,
		"GH_TOKEN_B": f.ownerToken,
		"GH_CHANNEL": f.channelID,
	}, 2*time.Minute, nil)
}
