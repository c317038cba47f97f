package testenv

import "testing"

// SkipShort skips a heavy test under -short on a developer's machine. In CI every
// test must run: there -short is a mistake and the test fails instead.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	if CI() {
		t.Fatalf("CI runs every test, but -short would skip this one (%s)", why)
	}
	t.Skipf("%s; runs without -short", why)
}

// Unavailable skips a test whose real server cannot be had as the test needs it,
// except in CI, where that is a failure.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatal(why)
	}
	t.Skip(why)
}
