#!/bin/bash
# The mini model's run on the GPU machine (from the repository root there; carry .debs/espeak).
#   tools/mini/run.sh start MIN TOTAL   unpack espeak-ng, start training detached (setsid: it outlives
#                                     this command while the machine stays warm) for MIN minutes of
#                                     an LR schedule of TOTAL minutes, then wait/report like `wait`
#   tools/mini/run.sh resume MIN TOTAL  the same from .minirun/ckpt.pt (same warm machine) or, when
#                                     that is gone, from the carried export folder tools/mini/resume/
#   tools/mini/run.sh wait             follow the log for up to 9.3 minutes (or until training ends)
# Every call ends by copying into $OUT: train.log, eval.json (when done) and the latest export
# (mini-NN.safetensors + config.json, each under 16 MB) -> $OUT/export/.
set -u
cd "$(dirname "$0")/../.."
RUN=.minirun
mkdir -p $RUN
export PYTHONUNBUFFERED=1
. tools/mini/espeak_env.sh >/dev/null || { echo "espeak-ng does not run from .debs/espeak"; exit 1; }
python3 tools/mini/gen.py --selftest || exit 1
start_training() {
  local resume=()
  if [ "$1" = resume ]; then
    if [ -f $RUN/ckpt.pt ]; then resume=(--resume $RUN/ckpt.pt)
    elif [ -f tools/mini/resume/config.json ]; then resume=(--resume tools/mini/resume)
    else echo "nothing to resume from"; exit 1; fi
  fi
  # MINI_ARGS: more train.py flags, e.g. MINI_ARGS="--lr 4e-4 --warmup 300" for a warm restart
  setsid nohup python3 tools/mini/train.py --minutes "$2" --total-minutes "$3" --ckpt-dir $RUN "${resume[@]}" ${MINI_ARGS:-} \
    >>$RUN/train.log 2>&1 < /dev/null &
  echo $! > $RUN/pid
  echo "training started (pid $(cat $RUN/pid)): $*"
}
case "${1:-wait}" in
  start)  start_training start "${2:-8.5}" "${3:-20}" ;;
  resume) start_training resume "${2:-8.5}" "${3:-20}" ;;
  wait) ;;
  *) echo "usage: $0 start|resume|wait [MINUTES TOTAL]"; exit 2 ;;
esac
deadline=$((SECONDS + ${WAIT_S:-560}))
pid=$(cat $RUN/pid 2>/dev/null)
while [ $SECONDS -lt $deadline ] && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 10; done
tail -n 40 $RUN/train.log
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  cp $RUN/train.log "$OUT/" 2>/dev/null
  cp $RUN/eval.json "$OUT/" 2>/dev/null
  [ -d $RUN/export ] && mkdir -p "$OUT/export" && cp $RUN/export/* "$OUT/export/"
  ls -la "$OUT" "$OUT/export" 2>/dev/null
fi
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "STILL TRAINING: call 'tools/mini/run.sh wait' again within 30 s"; else echo "TRAINING DONE"; fi
