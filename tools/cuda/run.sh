#!/bin/bash
# One device run: GPU tests, then our bench and the transformers baseline on the same GPU.
# Needs bin/cuda.test and bin/transcribe built here (CGO_ENABLED=0). Logs go to $OUT.
# Stages: STAGES="metal tests bench smallrows e2e hf hfe2e hfbeam cli32 ab abba profdefault ncustep
# ncupick profile" (default: all but cli32, abba, profdefault, ncustep and ncupick). "metal" runs bin/metal.test's TestCUDAConformance (kernels.metal's source through
# NVRTC on this GPU; build it with CGO_ENABLED=0 go test -c -o bin/metal.test ./metal). "e2e" runs `bench --e2e` with --decode greedy and --decode default (the CLI's decoding:
# beam 5, word timestamps, guard, coverage); "hfbeam" is transformers' beam search 5
# (hf_bench.py --num-beams 5), the baseline of the default decoding; "cli32" transcribes 32 WAV
# files of 10 minutes (jfk.wav repeated) with the CLI's defaults and random-weight turbo, windows
# capped at 100 tokens (--max-window-tokens), under /usr/bin/time, batch CLI_BATCH (default: the
# CLI's own), with CLI_ARGS more flags (--no-fallback: random weights fail the fallback's
# thresholds in every window, so each is decoded at all six temperatures, which bench --e2e
# leaves out). E2E_BATCH,
# E2E_WINDOWS, HF_E2E_BATCH, HFBEAM_BATCH and HF_WINDOWS size the end-to-end runs; LIMIT is the call's limit in
# seconds (default 600): each stage's start deadline moves with it. "ab" reruns the large-v3
# encoder (batch 16) and e2e (largest E2E_BATCH) with other GPU switches (AB_OPTS, passed as
# --backend-options; default "lt=off,graphs=off": no cuBLASLt epilogues, packed GELU output or
# decoder-step graphs) for a same-run comparison; AB_ARCHS picks the models (default large-v3).
# Every bench prints the switches it ran with on its "options:" line. "profile" is GPU time by op
# for an e2e run of PROFILE_ARCH (default large-v3) at batch 128. "profdefault" is issue 19's
# question, where the default decoding's time goes: for PROFILE_ARCHS (default turbo and
# large-v3), GPU time by op of `bench --e2e --decode default` at 32 inputs, then the same run
# with a Go CPU profile of the host ($OUT/host-ARCH.pprof; read it with `go tool pprof -top`),
# then with graphs=off and with pick=off. "abba" times bin/transcribe-base (A, built at the base
# commit) against bin/transcribe (B) with `bench --e2e --decode default` for ABBA_ARCHS (default
# large-v3 and turbo) in the order A B B A: in one call the second run of a pair was repeatedly
# the faster by ~4%, so a one-way A/B cannot show a gain of that size. "ncustep" is ncu over two
# batched decoder steps of the default decoding (--backend-options profilestep=NCU_STEP, default
# 150; ncu --profile-from-start off), GPU time per kernel (--print-summary per-kernel), for
# NCU_ARCHS (default large-v3): where a step's time goes, kernel by kernel. "ncupick" is ncu's
# sections (speed of light, warp states, memory, occupancy, launch) for two launches of beam
# search's ranking of a batched step (k_pick_top1, 160 rows of turbo's default decoding: 152 us
# in call 28's profile, where neither its loads nor its sorted lists explained the time).
#
# Carrying the binaries: the tracked files are ~84 MB (the mini model and the oracle fixtures) and
# a call carries at most 64 MiB: run tools/cuda/slim.sh on before the call (off after it), and
# build without the embedded mini model and gzip:
#   CGO_ENABLED=0 go build -tags nomini -ldflags="-s -w" -o bin/transcribe ./cmd/transcribe
#   CGO_ENABLED=0 go test -c -ldflags="-s -w" -o bin/cuda.test ./cuda      # and ./whisper if needed
# (cuda.test includes TestSameAlgorithmAsCPU, which reads mini/model/ggml-mini.bin from the tree.)
#   gzip -9 -f bin/transcribe bin/cuda.test                               # ~6 + 3 MB; carry ["bin"]
# (this script unpacks bin/*.gz first).
set -u
for f in bin/*.gz; do [ -e "$f" ] && [ ! -e "${f%.gz}" ] && gunzip -k "$f" && chmod +x "${f%.gz}"; done
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
STAGES=${STAGES:-metal tests bench smallrows e2e hf hfe2e hfbeam ab profile}
LIMIT=${LIMIT:-600}
TESTS_S=${TESTS_S:-300} # the tests stage's limit: TestWhisperParityLarge writes a 3.1 GB model and encodes on the CPU
E2E_BATCH=${E2E_BATCH:-16,32,64}
E2E_WINDOWS=${E2E_WINDOWS:-128}
HF_WINDOWS=${HF_WINDOWS:-64}
HF_E2E_BATCH=${HF_E2E_BATCH:-$E2E_BATCH}
HFBEAM_BATCH=${HFBEAM_BATCH:-32} # transformers' beam 5 at 128 windows (640 rows) does not fit 80 GB
ARCHS=${ARCHS:-large-v3 large-v3-turbo}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; date -u; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
# A stage starts only while enough of the call's LIMIT s is left (deadlines written for 600 s).
has() { [[ " $STAGES " == *" $1 "* ]] && (( SECONDS < ${2:-600} - 600 + LIMIT )); }
log() { echo "== $* (t=${SECONDS}s)"; }
if has metal 300 && [[ -x bin/metal.test ]]; then # issue 20: kernels.metal's logic on this GPU
	log metal
	(cd metal && timeout 200 ../bin/metal.test -test.v -test.run 'TestCUDAConformance|TestEmulatedConformance') > "$OUT/metal.txt" 2>&1
	echo "metal rc=$?" >> "$OUT/metal.txt"
	grep -E "^(--- FAIL|FAIL|ok|PASS)|device:|dispatches|rc=" "$OUT/metal.txt" | head -20
fi
if has tests; then
	log tests
	(cd cuda && timeout $((TESTS_S + 10)) ../bin/cuda.test -test.v -test.timeout ${TESTS_S}s ${TESTRUN:+-test.run "$TESTRUN"}) > "$OUT/tests.txt" 2>&1
	echo "tests rc=$?" >> "$OUT/tests.txt"
	grep -E "^(--- FAIL|FAIL|ok|PASS)|cuda_test.go|diff|rc=" "$OUT/tests.txt" | head -40
fi
models() { # ggml for ours, safetensors for transformers, once per arch
	[[ -f /tmp/$1.bin ]] || bin/transcribe models synth --arch $1 --dtype f16 -o /tmp/$1.bin > /dev/null
}
if has bench 400; then
	for arch in $ARCHS; do
		log bench $arch; models $arch
		timeout 100 bin/transcribe bench --backend cuda --model /tmp/$arch.bin --encode-batch 1,16 --decode-batch 1,16 > "$OUT/bench-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/bench-$arch.txt"
		grep -vE "^(host|model)" "$OUT/bench-$arch.txt"
	done
fi
if has smallrows 400; then # the small-M Linear kernel against cuBLAS at 16 rows
	log smallrows
	timeout 60 bin/transcribe bench --backend cuda --model /tmp/large-v3.bin --encode-batch 1 --decode-batch 16 --backend-options smallrows=8 > "$OUT/smallrows.txt" 2>&1
	echo "rc=$?" >> "$OUT/smallrows.txt"
	tail -3 "$OUT/smallrows.txt"
fi
if has e2e 420; then
	for arch in $ARCHS; do
		log e2e $arch; models $arch
		for dec in greedy default; do
			timeout 120 bin/transcribe bench --backend cuda --model /tmp/$arch.bin --e2e --decode $dec --windows $E2E_WINDOWS --tokens 100 --encode-batch $E2E_BATCH > "$OUT/e2e-$dec-$arch.txt" 2>&1
			echo "rc=$?" >> "$OUT/e2e-$dec-$arch.txt"
			grep -vE "^(host|model|device)" "$OUT/e2e-$dec-$arch.txt"
		done
	done
fi
hfmodels() {
	for arch in $ARCHS; do
		[[ -d /tmp/hf-$arch ]] || bin/transcribe models synth --arch $arch --dtype f16 --format safetensors -o /tmp/hf-$arch > /dev/null
	done
	HFM=""
	for arch in $ARCHS; do HFM="$HFM --model $arch=/tmp/hf-$arch"; done
}
if has hf 450; then
	log hf; hfmodels
	timeout 150 python3 tools/reference/hf_bench.py $HFM --encode-batch 1,16 --decode-batch 1,16 > "$OUT/hf.txt" 2>&1
	echo "rc=$?" >> "$OUT/hf.txt"
	tail -6 "$OUT/hf.txt"
fi
if has hfe2e 500; then
	log hfe2e; hfmodels
	timeout $((LIMIT - 20 - SECONDS)) python3 tools/reference/hf_bench.py $HFM --e2e --windows $HF_WINDOWS --tokens 100 --encode-batch $HF_E2E_BATCH > "$OUT/hfe2e.txt" 2>&1
	echo "rc=$?" >> "$OUT/hfe2e.txt"
	tail -8 "$OUT/hfe2e.txt"
fi
if has hfbeam 520; then
	log hfbeam; hfmodels
	timeout $((LIMIT - 20 - SECONDS)) python3 tools/reference/hf_bench.py $HFM --e2e --num-beams 5 --windows $HF_WINDOWS --tokens 100 --encode-batch $HFBEAM_BATCH > "$OUT/hfbeam.txt" 2>&1
	echo "rc=$?" >> "$OUT/hfbeam.txt"
	tail -8 "$OUT/hfbeam.txt"
fi
if has cli32 540; then
	log cli32; models large-v3-turbo
	mkdir -p /tmp/cli32/out
	python3 - <<'PY'
import wave
w = wave.open("testdata/jfk.wav")
p, d = w.getparams(), w.readframes(w.getnframes())
reps = int(600 * p.framerate / p.nframes) + 1
for i in range(32):
    o = wave.open(f"/tmp/cli32/in{i:02d}.wav", "wb")
    o.setparams(p)
    o.writeframes(d * reps)
    o.close()
PY
	timeout $((LIMIT - 10 - SECONDS)) /usr/bin/time -v bin/transcribe --backend cuda --model /tmp/large-v3-turbo.bin --max-window-tokens 100 ${CLI_BATCH:+--batch $CLI_BATCH} ${CLI_ARGS:-} --out /tmp/cli32/out -v /tmp/cli32/in*.wav > "$OUT/cli32.txt" 2>&1
	echo "rc=$?" >> "$OUT/cli32.txt"
	grep -E "first window|real time|Elapsed|Maximum resident|Percent of CPU|rc=" "$OUT/cli32.txt" | tail -40
fi
if has ab 530; then
	log ab ${AB_OPTS:="lt=off,graphs=off"}
	for arch in ${AB_ARCHS:-large-v3}; do
		timeout 60 bin/transcribe bench --backend cuda --backend-options "$AB_OPTS" --model /tmp/$arch.bin --encode-batch 1,16 --decode-batch 1,16 > "$OUT/ab-bench-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/ab-bench-$arch.txt"
		grep -vE "^(host|model)" "$OUT/ab-bench-$arch.txt"
		(( SECONDS < LIMIT - 40 )) && timeout $((LIMIT - 10 - SECONDS)) bin/transcribe bench --backend cuda --backend-options "$AB_OPTS" --model /tmp/$arch.bin --e2e --decode greedy --windows $E2E_WINDOWS --tokens 100 --encode-batch ${E2E_BATCH##*,} > "$OUT/ab-e2e-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/ab-e2e-$arch.txt"
		grep -vE "^(host|model|device)" "$OUT/ab-e2e-$arch.txt"
	done
fi
if has abba 480; then # two binaries, A B B A (see above)
	for arch in ${ABBA_ARCHS:-large-v3 large-v3-turbo}; do
		log abba $arch; models $arch
		n=0
		for bin in bin/transcribe-base bin/transcribe bin/transcribe bin/transcribe-base; do
			n=$((n + 1))
			(( SECONDS < LIMIT - 40 )) || break
			timeout $((LIMIT - 10 - SECONDS)) $bin bench --backend cuda --model /tmp/$arch.bin --e2e --decode default --windows $E2E_WINDOWS --tokens 100 --encode-batch ${E2E_BATCH##*,} > "$OUT/abba-$arch-$n.txt" 2>&1
			echo "rc=$?" >> "$OUT/abba-$arch-$n.txt"
			echo "$n $bin: $(grep -E '^ +default ' "$OUT/abba-$arch-$n.txt" | awk '{print $(NF-2), $(NF-1)}')"
		done
	done
fi
if has ncustep 480; then # two batched steps, kernel by kernel (see above)
	for arch in ${NCU_ARCHS:-large-v3}; do
		log ncustep $arch; models $arch
		timeout $((LIMIT - 10 - SECONDS)) /usr/local/cuda/bin/ncu --profile-from-start off --metrics gpu__time_duration.sum --print-summary per-kernel \
			bin/transcribe bench --backend cuda --backend-options profilestep=${NCU_STEP:-150} --model /tmp/$arch.bin --e2e --decode default \
			--windows $E2E_WINDOWS --tokens 100 --encode-batch ${E2E_BATCH##*,} > "$OUT/ncustep-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/ncustep-$arch.txt"
		grep -E "^  [A-Za-z_].*\(|gpu__time_duration|rc=" "$OUT/ncustep-$arch.txt" | head -80
	done
fi
if has ncupick 480; then # where beam search's ranking spends its time (see above)
	log ncupick; models large-v3-turbo
	timeout $((LIMIT - 10 - SECONDS)) /usr/local/cuda/bin/ncu --profile-from-start off -k regex:k_pick_top -c 2 \
		--section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
		bin/transcribe bench --backend cuda --backend-options profilestep=${NCU_STEP:-150} --model /tmp/large-v3-turbo.bin --e2e \
		--decode default --windows 64 --tokens 100 --encode-batch 32 > "$OUT/ncupick.txt" 2>&1
	echo "rc=$?" >> "$OUT/ncupick.txt"
	grep -vE "^(==PROF==|host|model)" "$OUT/ncupick.txt" | head -120
fi
if has profdefault 480; then # where the default decoding's time goes: GPU op times, then the host's Go profile
	for arch in ${PROFILE_ARCHS:-large-v3-turbo large-v3}; do
		log profdefault $arch; models $arch
		timeout 120 bin/transcribe bench --backend cuda --profile --model /tmp/$arch.bin --e2e --decode default --windows 64 --encode-batch 32 --tokens 100 > "$OUT/profdefault-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/profdefault-$arch.txt"
		head -50 "$OUT/profdefault-$arch.txt"
		timeout 120 bin/transcribe bench --backend cuda --cpu-profile "$OUT/host-$arch.pprof" --model /tmp/$arch.bin --e2e --decode default --windows 64 --encode-batch 32 --tokens 100 > "$OUT/hostprof-$arch.txt" 2>&1
		echo "rc=$?" >> "$OUT/hostprof-$arch.txt"
		tail -3 "$OUT/hostprof-$arch.txt"
		for o in graphs=off pick=off; do # are graph captures (a batch that shrinks as windows end) or the picks the cost?
			timeout 120 bin/transcribe bench --backend cuda --backend-options $o --model /tmp/$arch.bin --e2e --decode default --windows 64 --encode-batch 32 --tokens 100 > "$OUT/profdefault-$arch-${o%=off}-off.txt" 2>&1
			echo "rc=$?" >> "$OUT/profdefault-$arch-${o%=off}-off.txt"
			tail -3 "$OUT/profdefault-$arch-${o%=off}-off.txt"
		done
	done
fi
if has profile 540; then
	log profile; models ${PROFILE_ARCH:-large-v3}
	timeout $((LIMIT - 10 - SECONDS)) bin/transcribe bench --backend cuda --profile --model /tmp/${PROFILE_ARCH:-large-v3}.bin --e2e --decode greedy --windows 128 --encode-batch 128 > "$OUT/profile.txt" 2>&1
	echo "rc=$?" >> "$OUT/profile.txt"
	head -40 "$OUT/profile.txt"
fi
log done
