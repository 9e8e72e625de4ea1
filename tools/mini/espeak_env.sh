# Source this (". tools/mini/espeak_env.sh") to run espeak-ng from the .deb files in .debs/espeak
# without installing them: each is unpacked with dpkg -x into $ESPEAK_ROOT (default /tmp/espeak),
# and PATH, LD_LIBRARY_PATH and ESPEAK_DATA_PATH point there. Used on the GPU machine, which has
# no espeak-ng and no network; works the same on any x86-64 Debian/Ubuntu with glibc >= 2.36.
ESPEAK_ROOT=${ESPEAK_ROOT:-/tmp/espeak}
_mini_debs=${MINI_DEBS:-.debs/espeak}
if [ ! -x "$ESPEAK_ROOT/usr/bin/espeak-ng" ]; then
  mkdir -p "$ESPEAK_ROOT"
  for f in "$_mini_debs"/*.deb; do dpkg -x "$f" "$ESPEAK_ROOT" || return 1 2>/dev/null || exit 1; done
fi
export PATH="$ESPEAK_ROOT/usr/bin:$PATH"
export LD_LIBRARY_PATH="$ESPEAK_ROOT/usr/lib/x86_64-linux-gnu:$ESPEAK_ROOT/usr/lib/x86_64-linux-gnu/pulseaudio:$ESPEAK_ROOT/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ESPEAK_DATA_PATH="$ESPEAK_ROOT/usr/lib/x86_64-linux-gnu"
export MINI_ESPEAK="$ESPEAK_ROOT/usr/bin/espeak-ng"
"$MINI_ESPEAK" --version
