#!/bin/bash
# One device run: GPU tests, then our bench and the transformers baseline on the same GPU.
# Needs bin/cuda.test and bin/transcribe built here (CGO_ENABLED=0). Logs go to $OUT.
# Stages: STAGES="tests bench hf profile" (default: all).
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
STAGES=${STAGES:-tests bench hf profile}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; date -u; } > "$OUT/gpu.txt" 2>&1
# A stage starts only while enough of the call's 600 s is left.
has() { [[ " $STAGES " == *" $1 "* ]] && (( SECONDS < ${2:-600} )); }
if has tests; then
	(cd cuda && timeout 170 ../bin/cuda.test -test.v -test.timeout 160s ${TESTRUN:+-test.run "$TESTRUN"}) > "$OUT/tests.txt" 2>&1
	echo "tests rc=$?" >> "$OUT/tests.txt"
	grep -E "^(--- FAIL|FAIL|ok|PASS)|cuda_test.go|rc=" "$OUT/tests.txt" | head -60
fi
if has bench 300; then
	for arch in large-v3 large-v3-turbo; do
		timeout 120 bin/transcribe bench --backend cuda --arch $arch --dtype f16 --encode-batch 1,16 --decode-batch 1,16 > "$OUT/bench-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/bench-$arch.txt"
		cat "$OUT/bench-$arch.txt"
	done
fi
if has hf 420; then
	for arch in large-v3 large-v3-turbo; do
		bin/transcribe models synth --arch $arch --dtype f16 --format safetensors -o /tmp/hf-$arch > /dev/null
	done
	timeout 170 python3 tools/reference/hf_bench.py --model large-v3=/tmp/hf-large-v3 --model large-v3-turbo=/tmp/hf-large-v3-turbo \
		--encode-batch 1,16 --decode-batch 1,16 > "$OUT/hf.txt" 2>&1
	echo "rc=$?" >> "$OUT/hf.txt"
	tail -8 "$OUT/hf.txt"
fi
if has profile 480; then
	timeout 100 bin/transcribe bench --backend cuda --profile --arch large-v3 --dtype f16 --encode-batch 1,16 --decode-batch 1,16 --iterations 1 > "$OUT/profile.txt" 2>&1
	echo "rc=$?" >> "$OUT/profile.txt"
	head -80 "$OUT/profile.txt"
fi
