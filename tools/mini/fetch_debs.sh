#!/bin/sh
# Downloads (here, where apt works) the Debian 12 .deb files the mini-model run needs on the GPU
# machine, which has no network: espeak-ng with every shared library it loads except libc6, and
# the text packages tools/mini/texts.py reads. Files land in the git-ignored .debs/ folder; pass
# `carry: [".debs/espeak"]` to the device run (texts are already in tools/mini/data).
set -eu
cd "$(dirname "$0")/../.."
ESPEAK="espeak-ng libespeak-ng1 espeak-ng-data libpcaudio0 libsonic0 libasound2 libpulse0 libsndfile1
 libdbus-1-3 libx11-6 libx11-xcb1 libxcb1 libxau6 libxdmcp6 libsystemd0 libasyncns0 libflac12
 libvorbis0a libvorbisenc2 libopus0 libogg0 libmpg123-0 libmp3lame0 libcap2 libgcrypt20 liblzma5
 libzstd1 liblz4-1 libbsd0 libgpg-error0 libmd0"
TEXT="wordnet-base fortunes fortunes-min fortune-anarchism dict-devil dict-gcide"
mkdir -p .debs/espeak .debs/text
chmod 777 .debs/espeak .debs/text   # apt's download user must be able to write there
(cd .debs/espeak && apt-get download $ESPEAK)
(cd .debs/text && apt-get download $TEXT)
du -sh .debs/espeak .debs/text
