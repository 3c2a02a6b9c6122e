#!/bin/sh
# Runs the quick start of README.md verbatim (the ```sh block after the
# "quick-start" marker) from the repository root, with a clean GANTRY_HOME,
# as a newcomer would, and checks that it served the page and scaled to zero.
set -eu
root=$1
cd "$root"
block=$(awk '/<!-- quick-start/ { found = 1; next }
             found && /^```sh/ { inside = 1; next }
             inside && /^```/ { exit }
             inside { print }' README.md)
if [ -z "$block" ]; then
  echo "quickstart_test: README.md has no quick-start block" >&2
  exit 1
fi
GANTRY_HOME=$(mktemp -d)
export GANTRY_HOME
output=$(mktemp)
trap 'rm -rf "$GANTRY_HOME" "$output"' EXIT
printf 'quickstart_test: running, with GANTRY_HOME=%s:\n%s\n' "$GANTRY_HOME" "$block"
status=0
bash -euc "$block" >"$output" 2>&1 || status=$?
cat "$output"
if [ "$status" -ne 0 ]; then
  echo "quickstart_test: the quick start failed with exit code $status" >&2
  exit 1
fi
grep -q 'hello from gantry' "$output"
grep -q 'site: 0 containers running (scaled to zero)' "$output"
grep -q '^Stopped\.$' "$output"
echo "quickstart_test: the quick start served hello and scaled it to zero"
