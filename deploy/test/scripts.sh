#!/usr/bin/env bash
# Tests of the deploy scripts' failure paths (make deploytest): every step
# that fails must say what failed, never exit silently. Runs on the host as
# the other stages do (root, Debian 12); the appliance build cases install
# the rig's host packages first, as a fresh machine would.
#
# Prints a PASS/FAIL line per case and a last line "N passed, N failed".
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sanbridge-deploytest.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

# check NAME COND MESSAGE...: records a case.
check() {
	local name=$1 ok=$2
	shift 2
	if [ "$ok" = 1 ]; then
		printf '  PASS %s\n' "$name"
		passed=$((passed + 1))
	else
		printf '  FAIL %s: %s\n' "$name" "$*"
		failed=$((failed + 1))
	fi
}

# has FILE STRING: 1 when FILE contains STRING.
has() { grep -qF -- "$2" "$1" && echo 1 || echo 0; }

# 1. The ERR trap of sb_strict names the line and command of a step that
# fails without a message of its own, and records it for the caller.
cat >"$work/strict.sh" <<SCRIPT
. "$repo/deploy/lib/host.sh"
sb_strict
echo before
ls "$work/no-such-dir" | tail -n 1 >/dev/null
echo after
SCRIPT
SB_FAIL_FILE="$work/strict.failed" bash "$work/strict.sh" >"$work/strict.out" 2>"$work/strict.err"
rc=$?
ok=0
[ "$rc" != 0 ] && [ "$(has "$work/strict.out" after)" = 0 ] &&
	[ "$(has "$work/strict.err" "strict.sh:4: '")" = 1 ] &&
	[ "$(has "$work/strict.failed" "strict.sh:4")" = 1 ] && ok=1
check "strict mode names a silent failure" "$ok" "rc=$rc stderr: $(tr '\n' ' ' <"$work/strict.err")"

# 2. sb_newest_file on an empty cache prints nothing and does not fail
# (the 'ls | tail' it replaces killed the build under pipefail).
cat >"$work/newest.sh" <<SCRIPT
. "$repo/deploy/lib/host.sh"
sb_strict
mkdir -p "$work/empty-cache"
f=\$(sb_newest_file "$work/empty-cache/pkg_"*.deb)
echo "empty:[\$f]"
touch "$work/empty-cache/pkg_1.deb" "$work/empty-cache/pkg_2.deb"
f=\$(sb_newest_file "$work/empty-cache/pkg_"*.deb)
echo "two:[\${f##*/}]"
SCRIPT
bash "$work/newest.sh" >"$work/newest.out" 2>&1
rc=$?
ok=0
[ "$rc" = 0 ] && [ "$(has "$work/newest.out" "empty:[]")" = 1 ] && [ "$(has "$work/newest.out" "two:[pkg_2.deb]")" = 1 ] && ok=1
check "empty download cache is not an error" "$ok" "rc=$rc: $(tr '\n' ' ' <"$work/newest.out")"

# 3. The appliance build with an empty cache and a kernel package that
# cannot be downloaded fails with a message naming that package.
bogus=linux-image-0.0.0-99-sanbridge-deploytest-amd64
SANBRIDGE_CACHE="$work/cache" SANBRIDGE_BUILD_DIR="$work/build" SANBRIDGE_KERNEL_PACKAGE=$bogus \
	bash "$repo/deploy/appliance/build.sh" >"$work/build.out" 2>"$work/build.err"
rc=$?
ok=0
[ "$rc" != 0 ] && [ "$(has "$work/build.err" "error: apt-get download $bogus failed")" = 1 ] && ok=1
check "appliance build names an undownloadable kernel package" "$ok" "rc=$rc stderr tail: $(tail -n 5 "$work/build.err" | tr '\n' ' ')"

# 4. The VM stage's summary names the step and the error.
SANBRIDGE_CACHE="$work/cache" SANBRIDGE_BUILD_DIR="$work/build" SANBRIDGE_KERNEL_PACKAGE=$bogus \
	bash "$repo/deploy/rig/vmtest.sh" >"$work/vm.out" 2>"$work/vm.err"
rc=$?
ok=0
[ "$rc" != 0 ] && [ "$(has "$work/vm.out" "FAIL appliance build")" = 1 ] &&
	[ "$(has "$work/vm.out" "apt-get download $bogus failed")" = 1 ] &&
	[ "$(has "$work/vm.out" "0 passed, 1 failed")" = 1 ] && ok=1
check "VM stage summary names the failed step" "$ok" "rc=$rc summary: $(tail -n 4 "$work/vm.out" | tr '\n' ' ')"

# 5. An unknown Debian package for the image (sb_deb_extract) is named too.
cat >"$work/deb.sh" <<SCRIPT
. "$repo/deploy/lib/host.sh"
sb_strict
SB_CACHE="$work/cache"
d=\$(sb_deb_extract sanbridge-no-such-package)
echo "got \$d"
SCRIPT
bash "$work/deb.sh" >"$work/deb.out" 2>"$work/deb.err"
rc=$?
ok=0
[ "$rc" != 0 ] && [ "$(has "$work/deb.err" "no Debian package sanbridge-no-such-package")" = 1 ] &&
	[ "$(has "$work/deb.out" "got")" = 0 ] && ok=1
check "an unknown image package is named" "$ok" "rc=$rc stderr: $(tr '\n' ' ' <"$work/deb.err")"

echo "deploy scripts: $passed passed, $failed failed"
[ "$failed" = 0 ]
