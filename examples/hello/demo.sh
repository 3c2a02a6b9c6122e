#!/bin/sh
# The quick start, bounded: runs examples/hello with `gantry up` on the
# embedded local agent, calls the endpoint (a cold start), waits until it has
# scaled back to zero, then stops it with Ctrl-C's signal. Run it from the
# repository root, as root (runc needs it): sudo examples/hello/demo.sh
set -eu
gantry=${GANTRY:-build/gantry}
log=$(mktemp)
up=
# On any failure, gantry up is stopped as Ctrl-C would (its containers with it).
trap '[ -z "$up" ] || kill -INT "$up" 2>/dev/null; rm -f "$log"' EXIT

"$gantry" up examples/hello/app.yaml --port "${PORT:-0}" >"$log" 2>&1 &
up=$!

# Waits (at most $2 seconds) for the pattern $1 in gantry up's output.
wait_for() {
  i=0
  until grep -q "$1" "$log"; do
    if ! kill -0 "$up" 2>/dev/null || [ "$i" -ge "$(($2 * 2))" ]; then
      cat "$log"
      echo "demo: no '$1' from gantry up" >&2
      exit 1
    fi
    i=$((i + 1))
    sleep 0.5
  done
}

wait_for 'Serving hello' 900      # the first run builds a Debian base: minutes
cat "$log"
url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/apps/hello/site/' "$log" | head -n 1)
echo "demo: GET $url (cold start: no container runs yet)"
curl -sS --max-time 60 "$url"
wait_for 'site: 1 container running' 30
echo "demo: waiting for the scale to zero (scaledown_window 10s)"
wait_for 'site: 0 containers running (scaled to zero)' 60
grep 'container' "$log" | grep 'running'
kill -INT "$up"
wait "$up"
up=
tail -n 2 "$log"
