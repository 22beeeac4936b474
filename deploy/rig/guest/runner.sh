#!/bin/sh
# Guest-side test runner of the sanbridge QEMU rig (busybox sh, run by /init in
# sanbridge.mode=test). It runs every /share/rig/tests/NN-name.sh in order, each
# in its own session with a time limit, and reports on the serial console with
# lines the host parses (deploy/rig/vmtest.sh):
#
#   SANBRIDGE-RIG: BEGIN <name>
#   SANBRIDGE-RIG: NOTE <name> <free text>          (from rig_note in a test)
#   SANBRIDGE-RIG: RESULT <name> PASS|FAIL|SKIP <seconds>
#   SANBRIDGE-RIG: END <passed> <failed> <skipped>
#
# Test headers (comment lines in the script):
#   # rig-timeout: SECONDS     time limit (default RIG_TEST_TIMEOUT, 300)
#   # rig-targets: each        run once per iSCSI target in RIG_TARGETS
#                              (sanbridge, tgtd); the run is named NAME for
#                              sanbridge and NAME@TARGET otherwise
# Exit status of a test: 0 pass, 77 skip, anything else fails.
# Per-test output: /share/results/<name>.log (tail printed on failure).

RIG=/share/rig
RESULTS=/share/results
export RIG RESULTS
[ -f /share/rig.env ] && . /share/rig.env
: "${RIG_TARGETS:=sanbridge}"
: "${RIG_FILTER:=}"
: "${RIG_TEST_TIMEOUT:=300}"
export RIG_TARGETS RIG_FILTER RIG_TEST_TIMEOUT
. "$RIG/guest/lib.sh"

mkdir -p "$RESULTS"
marker() { echo "SANBRIDGE-RIG: $*" >/dev/console; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

marker START "uptime=$(uptime_s)" "kernel=$(uname -r)" "targets=$RIG_TARGETS"
rig_iscsid_start >"$RESULTS/iscsid.log" 2>&1 || marker NOTE runner "iscsid did not start"

selected() {
	[ -z "$RIG_FILTER" ] && return 0
	for pat in $RIG_FILTER; do
		# shellcheck disable=SC2254
		case "$1" in $pat | $pat@* | *$pat*) return 0 ;; esac
	done
	return 1
}

passed=0
failed=0
skipped=0

run_one() { # script name target timeout
	script=$1 name=$2 target=$3 limit=$4
	log="$RESULTS/$name.log"
	rm -f "$log" "$RESULTS/$name.timeout"
	marker BEGIN "$name"
	t0=$(uptime_s)
	# Its own session, so that everything the test starts can be killed.
	RIG_TEST=$name RIG_TARGET=$target RIG_WORK=/tmp/rig/$name \
		setsid sh -c 'mkdir -p "$RIG_WORK" && cd "$RIG_WORK" && exec sh "$0"' "$script" \
		</dev/null >"$log" 2>&1 &
	pid=$!
	setsid sh -c 'sleep "$1"; touch "$2"; kill -KILL -"$3"' sh "$limit" "$RESULTS/$name.timeout" "$pid" \
		</dev/null >/dev/null 2>&1 &
	watchdog=$!
	wait "$pid"
	rc=$?
	kill -KILL -"$watchdog" 2>/dev/null
	wait "$watchdog" 2>/dev/null
	# Safety net: the test should have logged out and stopped its targets.
	rig_reset >>"$log" 2>&1
	kill -KILL -"$pid" 2>/dev/null
	secs=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')
	if [ -e "$RESULTS/$name.timeout" ]; then
		echo "runner: killed after the ${limit}s time limit" >>"$log"
		rc=124
	fi
	case "$rc" in
	0) res=PASS passed=$((passed + 1)) ;;
	77) res=SKIP skipped=$((skipped + 1)) ;;
	*) res=FAIL failed=$((failed + 1)) ;;
	esac
	if [ "$res" = FAIL ]; then
		echo "---- $name (exit $rc), last lines of results/$name.log:" >/dev/console
		tail -n 40 "$log" | sed 's/^/    | /' >/dev/console
	fi
	marker RESULT "$name" "$res" "$secs"
}

for script in "$RIG"/tests/[0-9]*.sh; do
	[ -f "$script" ] || continue
	base=$(basename "$script" .sh)
	limit=$(sed -n 's/^# rig-timeout: *\([0-9][0-9]*\).*/\1/p' "$script" | head -n 1)
	: "${limit:=$RIG_TEST_TIMEOUT}"
	if grep -q '^# rig-targets: *each' "$script"; then
		for target in $RIG_TARGETS; do
			name=$base
			[ "$target" = sanbridge ] || name="$base@$target"
			selected "$name" && run_one "$script" "$name" "$target" "$limit"
		done
	else
		selected "$base" && run_one "$script" "$base" "" "$limit"
	fi
done

rig_iscsid_stop >>"$RESULTS/iscsid.log" 2>&1
marker END "$passed" "$failed" "$skipped"
