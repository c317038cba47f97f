#!/usr/bin/env bash
# Resolve the classpath of the Cassandra server that the tests start (testenv/cassandra.go)
# into .cache/cassandra/lib: cassandra-all (testenv/cassandra/pom.xml) and its runtime
# dependencies, from Maven Central. CI runs this before the tests; the Go launcher does
# the same itself when the cache is missing. Needs mvn and a JDK (Debian: maven,
# openjdk-17-jdk-headless). Does nothing if the cache is already complete; --force
# resolves again.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="$root/testenv/cassandra/pom.xml"
cache="$root/.cache/cassandra"
lib="$cache/lib"
version="5.0.8" # keep in sync with the pom and testenv.CassandraVersion

sum="$(sha256sum "$pom" | cut -d' ' -f1)"

complete() {
  [[ -f "$lib/.complete" ]] || return 1
  [[ "$(head -n1 "$lib/.complete")" == "$sum" ]] || return 1
  local jar n=0
  while read -r jar; do
    [[ -n "$jar" ]] || continue
    [[ -f "$lib/$jar" ]] || return 1
    n=$((n + 1))
  done < <(tail -n +2 "$lib/.complete")
  ((n > 0)) && [[ -f "$lib/cassandra-all-$version.jar" && -f "$lib/jamm-0.4.0.jar" ]]
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # the Go launcher takes the same lock

if [[ "${1:-}" != "--force" ]] && complete; then
  echo "cassandra classpath already in $lib ($(($(wc -l <"$lib/.complete") - 1)) jars)"
  exit 0
fi

command -v mvn >/dev/null || { echo "mvn not found: apt-get install maven" >&2; exit 1; }

tmp="$lib.tmp"
rm -rf "$tmp"
start=$(date +%s)
# -q hides progress; Maven may log an ERROR about ${jmc5.path} in a parent pom, which
# does not stop the resolution.
mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
{
  echo "$sum"
  (cd "$tmp" && ls -1 -- *.jar)
} >"$tmp/.complete"
rm -rf "$lib"
mv "$tmp" "$lib"
complete || { echo "classpath in $lib is incomplete" >&2; exit 1; }
echo "resolved $(($(wc -l <"$lib/.complete") - 1)) jars into $lib in $(($(date +%s) - start))s ($(du -sh "$lib" | cut -f1))"
