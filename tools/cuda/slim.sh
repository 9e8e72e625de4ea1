#!/bin/bash
# The working tree a device call carries is at most 64 MiB, and the tracked files are ~84 MB (the
# mini model, 28 MB, and the oracle fixtures, 29 MB). The GPU tests need the mini model (cuda's
# TestSameAlgorithmAsCPU reads mini/model/ggml-mini.bin) but not the oracles, so before a call
#   tools/cuda/slim.sh on    # leaves the oracles and tools/mini/data out of the index, ignored
# and right after it
#   tools/cuda/slim.sh off   # puts them back (nothing else in the index changes)
# Do not commit in between. Then carry bin/ with the gzipped binaries (run.sh says how to build).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
paths=(whisper/testdata/oracle-micro whisper/testdata/oracle-v2-layout tools/mini/data)
ex=.git/info/exclude
case "${1:-}" in
on)
	git rm -r -q --cached "${paths[@]}"
	for p in "${paths[@]}"; do echo "/$p/ # slim.sh" >> "$ex"; done
	git ls-files -z | xargs -0 du -cb | tail -1
	;;
off)
	git reset -q -- "${paths[@]}"
	sed -i '/# slim.sh$/d' "$ex"
	git status --short "${paths[@]}"
	;;
*)
	echo "usage: $0 on|off" >&2
	exit 2
	;;
esac
