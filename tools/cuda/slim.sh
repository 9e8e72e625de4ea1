#!/bin/bash
# The working tree a device call carries is at most 64 MiB, and the tracked files are ~84 MB (the
# mini model, 28 MB, the oracle fixtures, 29 MB, and other test data the GPU machine's runs do not
# read). The GPU tests need the mini model (cuda's TestSameAlgorithmAsCPU reads
# mini/model/ggml-mini.bin) and training needs tools/mini/data, but neither needs the rest, so
# before a call
#   tools/cuda/slim.sh on    # leaves those folders out of the index, ignored (~38 MB left)
# and right after it
#   tools/cuda/slim.sh off   # puts them back (nothing else in the index changes)
# Do not commit in between: a commit would take the index, those folders' removal included. While
# it is on, a pre-commit hook refuses any commit that would delete them (`git commit -- PATHS`
# of other files still works). Then carry bin/ with the gzipped binaries (run.sh says how to build).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
paths=(whisper/testdata/oracle-micro whisper/testdata/oracle-v2-layout whisper/testdata/reference
	whisper/mel/testdata whisper/weights/testdata whisper/tokenizer/testdata)
ex=.git/info/exclude
hook=.git/hooks/pre-commit
# gitignore has no trailing comments: the block is marked by comment lines of its own
drop() { sed -i '/^# slim.sh begin$/,/^# slim.sh end$/d' "$ex"; }
case "${1:-}" in
on)
	git rm -r -q --cached "${paths[@]}"
	drop
	{ echo "# slim.sh begin"; printf '/%s/\n' "${paths[@]}"; echo "# slim.sh end"; } >> "$ex"
	if [[ ! -e $hook ]]; then
		mkdir -p .git/hooks
		{
			echo '#!/bin/bash'
			echo '# installed by tools/cuda/slim.sh on, removed by off'
			printf 'if [[ -n "$(git diff --cached --name-only --diff-filter=D -- %s)" ]]; then\n' "${paths[*]}"
			echo '	echo "pre-commit: tools/cuda/slim.sh is on: this commit would delete the test fixtures; run slim.sh off first" >&2'
			echo '	exit 1'
			echo 'fi'
		} > "$hook"
		chmod +x "$hook"
	fi
	git ls-files -z | xargs -0 du -cb | tail -1
	git status --short --untracked-files=all | grep -v '^D ' || true
	;;
off)
	git reset -q -- "${paths[@]}"
	drop
	if grep -q 'installed by tools/cuda/slim.sh' "$hook" 2>/dev/null; then
		rm -f "$hook"
	fi
	git status --short "${paths[@]}"
	;;
*)
	echo "usage: $0 on|off" >&2
	exit 2
	;;
esac
