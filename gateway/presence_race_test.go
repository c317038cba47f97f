//go:build race

package gateway_test

// raceEnabled: the race detector makes JSON about ten times slower, so the biggest
// guilds of the presence tests shrink under it (the full sizes run without -race).
const raceEnabled = true
