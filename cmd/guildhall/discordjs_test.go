package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

// discord.js against a real server: the scripts of compat/discordjs (a Node
// package with its lockfile; .ci/run installs it with npm ci) run with node,
// against a stack started here. Without node or the installed package a test
// skips on a developer's machine and fails in CI.

// discordJSDir is the Node package of the discord.js scripts.
const discordJSDir = "../../compat/discordjs"

// runDiscordJS runs script (a file of compat/discordjs) with env added to the
// environment, failing the test if it exits non-zero or runs past timeout. Its
// output goes to the test log.
func runDiscordJS(t *testing.T, script string, env map[string]string, timeout time.Duration) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join(discordJSDir, "node_modules", "discord.js", "package.json")); err != nil {
		testenv.Unavailable(t, "discord.js is not installed: run npm ci in compat/discordjs")
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
	out, err := cmd.CombinedOutput()
	t.Logf("node %s:\n%s", script, out)
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
	}, 2*time.Minute)
}
