#!/usr/bin/env bash
# Runs fuzz targets one after another and prints each one's rate: executions over the run, as
# the last progress line counts them, divided by its seconds (executions spent minimizing a new
# input count only once the minimization ends).
#
#   scripts/fuzz.sh                         every target for 20 s, 2 workers
#   FUZZTIME=10m scripts/fuzz.sh FuzzOpenGGML FuzzOpenSafetensors FuzzParseProbe
#   PARALLEL=4 scripts/fuzz.sh
#
# It exits non-zero when a target fails; the failing input is then in that package's
# testdata/fuzz folder, and its log is kept (the path is printed).
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20s}
parallel=${PARALLEL:-2}
logs=$(mktemp -d)

# Every "func FuzzX(" in a _test.go file, as "FuzzX ./pkg/".
targets=$(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func ||; s|\$| $(dirname "$f")/|"
done | sort)
if [ $# -gt 0 ]; then
  want=" $* "
  targets=$(echo "$targets" | while read -r name pkg; do
    [[ "$want" == *" $name "* ]] && echo "$name $pkg"
  done)
fi

failed=0
printf '%-24s %-22s %12s %6s %10s\n' target package execs secs execs/s
while read -r name pkg; do
  [ -n "$name" ] || continue
  log="$logs/$name.log"
  go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -parallel "$parallel" "$pkg" >"$log" 2>&1
  rc=$?
  last=$(grep 'elapsed:' "$log" | grep 'execs:' | tail -n 1)
  secs=$(echo "$last" | sed -nE 's/.*elapsed: ([0-9hms]+),.*/\1/p')
  execs=$(echo "$last" | sed -nE 's/.*execs: ([0-9]+) .*/\1/p')
  # elapsed is Go's duration: 21s, 1m0s, 10m1s.
  s=0
  [[ $secs =~ ([0-9]+)h ]] && s=$((s + 3600 * BASH_REMATCH[1]))
  [[ $secs =~ ([0-9]+)m ]] && s=$((s + 60 * BASH_REMATCH[1]))
  [[ $secs =~ ([0-9]+)s ]] && s=$((s + BASH_REMATCH[1]))
  rate=-
  [ "$s" -gt 0 ] && [ -n "$execs" ] && rate=$((execs / s))
  status=""
  if [ $rc -ne 0 ]; then
    status="  FAILED: $log"
    failed=1
  fi
  printf '%-24s %-22s %12s %6s %10s%s\n' "$name" "$pkg" "${execs:--}" "$s" "$rate" "$status"
done <<<"$targets"
[ $failed -eq 0 ] && rm -rf "$logs"
exit $failed
