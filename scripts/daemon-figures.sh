#!/usr/bin/env bash
# Measures what a user of the daemon gets, with the real binary on this machine's CPU:
#   1. the time from the end of a copy into a watched folder to the sidecars, for a 1-minute
#      speech file (testdata/jfk.wav looped) with the mini model and every other setting at its
#      default (settle 5 s, VAD, word timestamps, beam 5), and the CLI's time on the same file;
#   2. the daemon's memory (RSS) once idle with its model unloaded (--idle-unload 10s instead of
#      the default 5 minutes, to wait less), next to its memory at start;
#   3. the first scan of a folder tree of 10,000 files in 1,000 folders (20 of them media), in a
#      daemon allowed 256 open files.
# Needs ffmpeg and prlimit. Prints one line per figure; the daemon's logs stay in the work
# folder it names.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
bin=$work/transcribe
CGO_ENABLED=0 go build -o "$bin" ./cmd/transcribe
export VERBATIM_MODELS_DIR=$work/models
"$bin" models verify mini >/dev/null 2>&1 || true # installs the embedded mini model

# Resident memory, and its anonymous part (the heap; the rest is pages of files, the binary's
# own included, which the kernel can drop at need).
rss() { awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {printf "%.1f MiB (anonymous %.1f MiB)", r/1024, a/1024}' "/proc/$1/status"; }
wait_log() { # file message timeout_s
  for _ in $(seq 1 $(($3 * 10))); do grep -q "\"message\":\"$2\"" "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}
wait_file() { for _ in $(seq 1 $(($2 * 10))); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }

# 1 and 2.
ffmpeg -v error -stream_loop 6 -i testdata/jfk.wav -t 60 -c:a pcm_s16le "$work/talk.wav"
mkdir -p "$work/watched"
"$bin" serve --watch "$work/watched" --state-dir "$work/state1" --addr 127.0.0.1:0 --model mini \
  --idle-unload 10s 2>"$work/serve1.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_log "$work/serve1.log" "daemon started" 30
sleep 1
echo "daemon at start (no model loaded): RSS $(rss $pid)"
cp "$work/talk.wav" "$work/watched/talk.wav"
copied=$(date +%s.%N)
wait_file "$work/watched/talk.md" 600
done_at=$(date +%s.%N)
echo "1-minute file, mini on the CPU, default settings: sidecars $(echo "$done_at - $copied" | bc | xargs printf '%.1f') s after the copy ended ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
grep '"message":"done"' "$work/serve1.log" | head -1
# The baseline from the same run: the CLI on the same file, model load included.
start=$(date +%s.%N)
"$bin" --model mini --out "$work/cli" "$work/talk.wav" >/dev/null 2>&1
echo "baseline: transcribe --model mini on the same file took $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f') s"
wait_log "$work/serve1.log" "model unloaded" 60
sleep 1
echo "idle with the model unloaded: RSS $(rss $pid) (peak VmHWM $(awk '/^VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status))"
kill $pid; wait $pid || true

# 3.
tree=$work/tree
for d in $(seq -w 0 999); do mkdir -p "$tree/d${d:0:1}/e$d"; done
i=0
for d in "$tree"/d*/e*; do
  for j in 0 1 2 3 4 5 6 7 8 9; do
    if [ $((i % 500)) -eq 0 ]; then cp testdata/jfk.wav "$d/talk$i.wav"; else echo x >"$d/doc$i.txt"; fi
    i=$((i + 1))
  done
done
prlimit --nofile=256:256 "$bin" serve --watch "$tree" --state-dir "$work/state2" --addr 127.0.0.1:0 \
  --model mini 2>"$work/serve2.log" &
pid=$!
wait_log "$work/serve2.log" "scanned" 60
grep '"message":"scanned"' "$work/serve2.log" | head -1
kill $pid; wait $pid || true
trap - EXIT
echo "logs: $work"
