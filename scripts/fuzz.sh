#!/usr/bin/env bash
# Runs one Go fuzz target for a bounded time: scripts/fuzz.sh PKG TARGET FUZZTIME
# (PKG a folder: . or messaging/rest).
#
# Go 1.26's fuzz coordinator can fail a run that found nothing with "context
# deadline exceeded" when -fuzztime ends while a worker is in the middle of an
# input (golang/go#75804, fixed in Go 1.27). A failing input is always written to
# PKG/testdata/fuzz/TARGET, so a failure that wrote none and says only that is
# the race: the target runs once more, and fails only if that run fails too.
set -uo pipefail
pkg=$1 target=$2 fuzztime=$3
dir="$pkg/testdata/fuzz/$target"
inputs() { find "$dir" -type f 2>/dev/null | wc -l; }
for attempt in 1 2; do
  before=$(inputs)
  out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$pkg" 2>&1)
  rc=$?
  printf '%s\n' "$out"
  if [ "$rc" -eq 0 ]; then
    exit 0
  fi
  if [ "$(inputs)" != "$before" ] || ! grep -q 'context deadline exceeded' <<<"$out"; then
    exit "$rc" # a failing input (now in $dir), or another failure
  fi
  echo "fuzz.sh: $target stopped by Go's fuzztime race (golang/go#75804) without a failing input (attempt $attempt)" >&2
done
exit 1
