#!/usr/bin/env bash
# The VM test stage (make vmtest): builds the appliance image, boots it under
# QEMU (TCG, no network) with the rig's hardware (deploy/rig/hardware.json),
# runs the guest tests deploy/rig/tests/NN-name.sh inside, and prints a
# PASS/FAIL line per test and a last line "N passed, N failed". Exits non-zero
# on any failure, including a guest that does not finish in time.
#
# Usage: deploy/rig/vmtest.sh [PATTERN...]
#   PATTERN selects tests by name (shell glob or substring), e.g. 10-initiator-fs
#   or 'initiator*'. Default: all.
# Environment:
#   RIG_TARGETS       iSCSI targets for "rig-targets: each" tests, default
#                     "sanbridge"; "sanbridge tgtd" adds the comparison peer
#   VMTEST_TIMEOUT    seconds for the whole guest run (default 2700)
#   RIG_TEST_TIMEOUT  default per-test limit in seconds (default 300)
#   VMTEST_SKIP_BUILD 1: use the existing image
#
# Adding a test: see deploy/rig/README.md.
# shellcheck source=../lib/host.sh
. "$(dirname "$0")/../lib/host.sh" || { echo "sanbridge: error: cannot read deploy/lib/host.sh" >&2; exit 1; }
sb_strict

stage_start=$(sb_now)
timeout_s=${VMTEST_TIMEOUT:-2700}
run="$SB_BUILD/vmtest"
share="$run/share"
mkdir -p "$run"
exec 9>"$run.lock"
flock -n 9 || sb_die "another vmtest is running in $SB_BUILD"

# setup_failed STEP: the stage could not start; the summary names the step
# and the first error it recorded (sb_die and the ERR trap of sb_strict
# write to SB_FAIL_FILE).
setup_failed() {
	local why
	why=$(head -n 1 "$SB_FAIL_FILE" 2>/dev/null || true)
	echo
	echo "VM test results:"
	printf '  %-4s %-34s (%s failed: %s)\n' FAIL "$1" "$1" "${why:-no message; see the output above}"
	echo "0 passed, 1 failed"
	exit 1
}
export SB_FAIL_FILE="$run/setup.failed"
rm -f "$SB_FAIL_FILE"
(sb_ensure_host_packages) || setup_failed "host packages"
if [ "${VMTEST_SKIP_BUILD:-0}" != 1 ] && ! "$SB_DEPLOY/appliance/build.sh"; then
	setup_failed "appliance build (deploy/appliance/build.sh)"
fi
(sb_image_check) || setup_failed "appliance image"
unset SB_FAIL_FILE

# The share: the rig's guest files, the hardware truth, results.
rm -rf "$share" "$run/disks" "$run/console.log"
mkdir -p "$share"/{rig,results,capture,bin,control}
cp -r "$SB_DEPLOY/rig/guest" "$SB_DEPLOY/rig/tests" "$SB_DEPLOY/rig/configs" "$share/rig/"
cp "$SB_DEPLOY/rig/hardware.json" "$share/hardware.json"
sb_hw_guest_env >"$share/hardware.env"
jq -r -f "$SB_DEPLOY/rig/hardware-tsv.jq" "$SB_DEPLOY/rig/hardware.json" >"$share/hardware.tsv"
sb_hw_disks "$run"
{
	printf 'RIG_TARGETS=%q\n' "${RIG_TARGETS:-sanbridge}"
	printf 'RIG_FILTER=%q\n' "$*"
	printf 'RIG_TEST_TIMEOUT=%q\n' "${RIG_TEST_TIMEOUT:-300}"
	capture=0
	[ -e "$SB_REPO/sgio/discover/testdata/rig-capture" ] || capture=1
	[ "${VMTEST_CAPTURE:-0}" = 1 ] && capture=1
	echo "RIG_CAPTURE=$capture"
} >"$share/rig.env"

# Host-side preparation: tests/NN-name.prep runs before the boot (for example
# `go test -c` of a package into $RIG_BIN, which the guest sees as /share/bin).
selected() {
	[ $# -ge 2 ] || return 0
	local name=$1 pat
	shift
	for pat in "$@"; do
		# shellcheck disable=SC2053
		[[ $name == $pat || $name == *"$pat"* ]] && return 0
	done
	return 1
}
declare -A prep_failed=()
for prep in "$SB_DEPLOY"/rig/tests/*.prep; do
	[ -e "$prep" ] || continue
	name=$(basename "$prep" .prep)
	selected "$name" "$@" || continue
	sb_log "prep $name"
	if ! (cd "$SB_REPO" && RIG_BIN="$share/bin" SB_REPO="$SB_REPO" GO="$(sb_go)" bash "$prep") \
		>"$share/results/$name.prep.log" 2>&1; then
		prep_failed[$name]=1
		rm -f "$share/rig/tests/$name.sh"
		sb_log "prep $name failed; see $share/results/$name.prep.log"
		tail -n 20 "$share/results/$name.prep.log" | sed 's/^/    | /' >&2
	fi
done

mapfile -t qemu_args < <(
	sb_qemu_base "sanbridge.mode=test"
	echo -nic
	echo none
	sb_qemu_share "$share"
	sb_hw_qemu_args "$run"
	echo -serial
	echo "file:$run/console.log"
	echo -monitor
	echo none
)

qpid=
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		sleep 1
		kill -KILL "$qpid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'sb_log "interrupted"; exit 130' INT TERM

: >"$run/console.log"
sb_log "booting the appliance (TCG, ${SANBRIDGE_VM_CPUS:-2} CPUs), limit ${timeout_s}s; console: $run/console.log"
boot_start=$(sb_now)
# Its own session (Ctrl-C is handled here), bounded by timeout.
setsid timeout -k 10 "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" \
	</dev/null >"$run/qemu.log" 2>&1 &
qpid=$!

# Live progress from the console: results, notes, failure excerpts, panics.
: >"$run/boot.time"
tail -n +1 -F --pid="$qpid" "$run/console.log" 2>/dev/null | while IFS= read -r line; do
	line=${line%$'\r'}
	case "$line" in
	*"SANBRIDGE-RIG: START"*)
		sb_elapsed "$boot_start" >"$run/boot.time"
		echo "  guest up after $(cat "$run/boot.time") s (${line#*START })"
		;;
	*"SANBRIDGE-RIG: RESULT "*)
		set -- ${line#*RESULT }
		printf '  %-4s %-34s %6ss\n' "$2" "$1" "$3"
		;;
	*"SANBRIDGE-RIG: SHOW "*)
		echo "       ${line#*SHOW }"
		;;
	*"SANBRIDGE-RIG: NOTE "*)
		note=${line#*NOTE }
		echo "       ${note%% *}: ${note#* }"
		;;
	*"SANBRIDGE-RIG: ABORT"* | "---- "* | "    | "* | *"Kernel panic"* | *"BUG: "* | *"Oops"* | *"sanbridge-init:"*"failed"*)
		echo "  $line"
		;;
	esac
done &
# In the background and waited for: bash runs the INT/TERM trap (and so
# the cleanup that stops QEMU) only between commands, never during a
# foreground pipeline, but it does interrupt wait.
wait $! || true

set +e
wait "$qpid"
qrc=$?
set -e
qpid=
duration=$(sb_elapsed "$stage_start")

# Results from the console markers.
markers=$(tr -d '\r' <"$run/console.log" | grep -a -o 'SANBRIDGE-RIG: .*' || true)
declare -A result=() secs=()
order=()
while read -r _ kind name res t _; do
	case "$kind" in
	BEGIN) order+=("$name"); result[$name]=FAIL; secs[$name]="-" ;;
	RESULT) result[$name]=$res; secs[$name]=$t ;;
	esac
done < <(printf '%s\n' "$markers" | grep -E '^SANBRIDGE-RIG: (BEGIN|RESULT) ' || true)

passed=0 failed=0 skipped=0
echo
echo "VM test results ($run/share/results):"
for name in "${!prep_failed[@]}"; do
	printf '  %-4s %-34s (host-side prep failed)\n' FAIL "$name"
	failed=$((failed + 1))
done
for name in "${order[@]}"; do
	r=${result[$name]}
	note=""
	[ "${secs[$name]}" = "-" ] && note=" (no result: guest stopped during the test)"
	printf '  %-4s %-34s %6ss%s\n' "$r" "$name" "${secs[$name]}" "$note"
	case "$r" in
	PASS) passed=$((passed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done
if ! printf '%s\n' "$markers" | grep -q '^SANBRIDGE-RIG: END '; then
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		why="timed out after ${timeout_s}s"
	else
		why="QEMU exit status $qrc"
	fi
	printf '  %-4s %-34s (%s; see %s)\n' FAIL "vm" "guest did not finish: $why" "$run/console.log"
	tail -n 15 "$run/qemu.log" 2>/dev/null | sed 's/^/    qemu| /'
	failed=$((failed + 1))
fi
[ ${#order[@]} -gt 0 ] || [ "$failed" -gt 0 ] || {
	printf '  %-4s %-34s (no test ran)\n' FAIL "vm"
	failed=$((failed + 1))
}

# The sysfs capture for discovery's fixtures, only if the fixtures do not
# exist yet (they are committed; this seeds them once).
capture_dir="$SB_REPO/sgio/discover/testdata/rig-capture"
if [ -f "$share/capture/sysfs.tar.gz" ] && [ ! -e "$capture_dir" ] &&
	[ "${result[00-hardware]:-}" = PASS ] && [ "${result[01-sysfs-capture]:-}" = PASS ]; then
	mkdir -p "$capture_dir"
	cp "$share/capture/sysfs.tar.gz" "$capture_dir/sysfs.tar.gz"
	cp "$share/hardware.json" "$capture_dir/hardware.json"
	cp "$share/results/inventory.txt" "$capture_dir/inventory.txt" 2>/dev/null || true
	cat >"$capture_dir/README.md" <<EOF
# Sysfs capture of the QEMU rig

Made by \`deploy/rig/tests/01-sysfs-capture.sh\` (kernel $(sed -n 's/^kernel=//p' "$SB_IMAGE/manifest.txt")) with the hardware of
\`hardware.json\` (a copy of deploy/rig/hardware.json at capture time); \`inventory.txt\` is
the guest's sb-inventory. \`sysfs.tar.gz\` holds \`class/{scsi_generic,scsi_device,scsi_host,
scsi_disk,scsi_tape,bsg,block}/*\` as relative symlinks into \`devices/\`, where every device
they resolve to and its ancestors have their readable attributes as regular files and their
symlinks as symlinks (plus block devices' \`queue/\`). Unreadable attributes are absent.
Extract it and point discovery at the directory as the sysfs root.

Refresh: delete this directory and run \`deploy/rig/vmtest.sh 00 01\`.
EOF
	sb_log "seeded $capture_dir from this run"
elif [ -f "$share/capture/sysfs.tar.gz" ]; then
	sb_log "sysfs capture: $share/capture/sysfs.tar.gz ($capture_dir exists, not replaced)"
fi

image_kib=$(du -k "$SB_IMAGE/initramfs.cpio.gz" | cut -f1)
kernel_kib=$(du -k "$SB_IMAGE/vmlinuz" | cut -f1)
echo
echo "stage ${duration}s; guest up after $(cat "$run/boot.time" 2>/dev/null || echo '?')s; image ${kernel_kib} KiB kernel + ${image_kib} KiB initramfs"
[ "$skipped" = 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
