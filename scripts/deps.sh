#!/usr/bin/env bash
# Installs the system tools the tests and the demo use (Debian/Ubuntu): ffmpeg, sox, espeak-ng,
# python3-numpy, g++ (compiles the Metal kernels as C++ on the host: metal/host_test.go), clang
# (checks the CUDA kernels' source without a GPU: cuda/clang_test.go). Skips what is already
# there. Uses sudo when not root.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v sox >/dev/null || need+=(sox)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
command -v g++ >/dev/null || need+=(g++)
command -v clang++-14 >/dev/null || command -v clang++ >/dev/null || need+=(clang)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "deps: please install: ${need[*]}" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
