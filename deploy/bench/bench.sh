#!/usr/bin/env bash
# deploy/bench/bench.sh: side-by-side iSCSI read benchmark, sanbridge vs tgtd.
#
#   make bench                 (builds ./sanbridge, installs libiscsi-bin and tgt)
#   bash deploy/bench/bench.sh (uses ./sanbridge as it is)
#
# Everything runs on 127.0.0.1 with ports picked free at start:
#   tgtd      one target, LUN 1 = bs null (no data path at all, 1 TiB) and
#             LUN 2 = bs rdwr on a 256 MiB file in /dev/shm (memory-backed);
#   sanbridge one target, LUN 0 = a 256 MiB emulated (memory) disk.
# The fair comparison is sanbridge vs tgtd's /dev/shm LUN: both copy
# bytes out of memory. The null LUN is tgtd's protocol-only ceiling.
#
# Client: libiscsi's iscsi-perf (one TCP connection, one thread, READ(16)),
# stopped with SIGINT after BENCH_SECS; its last "iops average" line (from
# the first command to the last per-second report) is the figure. With -r
# it picks LBAs uniformly, not aligned to the transfer size, on every target.
# Cases: 4 KiB random reads at queue depth 1 (latency), 32 and 64, 1 MiB sequential
# reads at queue depth 16; each case runs BENCH_SECS per target, in
# BENCH_ROUNDS rounds whose target order rotates and reverses so no target
# always runs first or last. Per run, the CPU time of the server, of the
# client and of the rest of the machine comes from /proc/PID/stat and
# /proc/stat deltas over the same window (in % of one core; 2 cores = 200%),
# which shows which side saturates. iscsi-perf is single-threaded: a
# client at ~100% is the bottleneck, whatever the server could do.
# Each round also measures a raw TCP stream over loopback (tcpstream/:
# one connection, 1 MiB writes and reads, BENCH_SECS), the ceiling the
# 1 MiB reads are compared with; it needs go to build it.
#
# The report goes to stdout and build/bench/results.txt; raw client and
# server logs to build/bench/raw/. Exit status is 0 even when a target
# figure is missed (this is a report, not a test); it is non-zero only
# when the bench could not run (a server did not start, a tool is missing).
#
# Time: 4 cases x 3 targets x BENCH_ROUNDS x (BENCH_SECS + ~1 s), about
# 4.5 minutes by default on 2 cores; BENCH_PROFILE adds about 2 minutes.
#
# Knobs (environment):
#   BENCH_SECS=10        seconds per run (each case x target x round)
#   BENCH_ROUNDS=2       rounds; the table shows the mean of the rounds
#   BENCH_TARGETS="tgtd sanbridge"   drop one to bench the other alone
#   BENCH_PROFILE=1      after the measured rounds, one extra run per case
#                        and target under `perf record -g` of server and
#                        client (or `top -b -H` snapshots when perf cannot
#                        record, or with BENCH_PROFILE=top); reports land in
#                        build/bench/profile/
#   SANBRIDGE=./sanbridge  the binary to bench
#   BENCH_OUT=build/bench  where results go
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SANBRIDGE=${SANBRIDGE:-$ROOT/sanbridge}
BENCH_SECS=${BENCH_SECS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_TARGETS=${BENCH_TARGETS:-tgtd sanbridge}
BENCH_PROFILE=${BENCH_PROFILE:-0}
OUT=${BENCH_OUT:-$ROOT/build/bench}
DISK_MIB=256
TGT_IQN=iqn.2026-11.io.sanbridge:bench-tgtd
SB_IQN=iqn.2026-11.io.sanbridge:bench
# Targets the 4 KiB cases must reach: sanbridge IOPS >= IOPS_GOAL x tgtd's.
IOPS_GOAL=1.2

# case name | transfer bytes | queue depth | iscsi-perf access flag
CASES=(
	"rand-4k-qd1|4096|1|-r"
	"rand-4k-qd32|4096|32|-r"
	"rand-4k-qd64|4096|64|-r"
	"seq-1m-qd16|1048576|16|"
)

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
# Any step that fails without its own message is named (file, line,
# command, status) before the script exits.
set -E
trap 'log "error: line $LINENO: '"'"'$BASH_COMMAND'"'"' failed with status $?"; trap - ERR' ERR

if ! [[ $BENCH_SECS =~ ^[0-9]+$ ]] || ((BENCH_SECS < 3 || BENCH_SECS > 60)); then
	die "BENCH_SECS must be 3..60"
fi
if ! [[ $BENCH_ROUNDS =~ ^[0-9]+$ ]] || ((BENCH_ROUNDS < 1 || BENCH_ROUNDS > 5)); then
	die "BENCH_ROUNDS must be 1..5"
fi
want_tgtd=0 want_sb=0
for t in $BENCH_TARGETS; do
	case $t in
	tgtd) want_tgtd=1 ;;
	sanbridge) want_sb=1 ;;
	*) die "BENCH_TARGETS: unknown target $t (tgtd, sanbridge)" ;;
	esac
done
((want_tgtd || want_sb)) || die "BENCH_TARGETS is empty"

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d /tmp/sanbridge-bench.XXXXXX)
SHM_IMG=/dev/shm/sanbridge-bench.$$.img
PIDS=()          # the servers this script started (live until cleanup)
CLIENT_PID=""    # the iscsi-perf running now, if any
PROF_PID=""      # the perf record / top running now, if any
TGT_CP=""        # tgtd control port (its socket lives in /var/run/tgtd)
TGT_PID=""

# shellcheck disable=SC2317 # stop_pid and cleanup run from the EXIT trap.
stop_pid() { # pid: TERM, then KILL after 3 s; only our own children
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		is_running "$pid" || break
		sleep 0.1
	done
	if is_running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in $CLIENT_PID $PROF_PID; do stop_pid "$pid"; done
	# tgtd ignores SIGTERM while it has targets: take them down first.
	if [[ -n $TGT_PID ]] && is_running "$TGT_PID"; then
		tgtadm -C "$TGT_CP" --mode target --op delete --force --tid 1 >/dev/null 2>&1 || true
		tgtadm -C "$TGT_CP" --mode sys --op delete >/dev/null 2>&1 || true
	fi
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [[ -n $TGT_CP ]]; then
		rm -f "/var/run/tgtd/socket.$TGT_CP" "/var/run/tgtd/socket.$TGT_CP.lock"
	fi
	rm -f "$SHM_IMG"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# is_running pid: alive and not a zombie waiting to be reaped.
is_running() {
	local st
	[[ -r /proc/$1/stat ]] || return 1
	{ st=$(</proc/"$1"/stat); } 2>/dev/null || return 1
	st=${st##*) }
	[[ ${st%% *} != Z ]]
}

# ------------------------------------------------------------------ tools
install_missing() {
	local need=()
	command -v iscsi-perf >/dev/null && command -v iscsi-readcapacity16 >/dev/null || need+=(libiscsi-bin)
	if ((want_tgtd)); then
		command -v tgtd >/dev/null && command -v tgtadm >/dev/null || need+=(tgt)
	fi
	((${#need[@]})) || return 0
	[[ $(id -u) == 0 ]] || die "missing ${need[*]} and not root to install them"
	log "installing ${need[*]}"
	apt-get -o DPkg::Lock::Timeout=300 update -q >&2 || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
		install -y -q --no-install-recommends "${need[@]}" >&2 ||
		die "apt-get install ${need[*]} failed: check each with 'apt-cache policy NAME'"
}
install_missing
for tool in stdbuf awk; do command -v "$tool" >/dev/null || die "$tool not found"; done

# The raw loopback TCP stream the large reads are compared with.
TCPSTREAM="" TCP_STATUS="not measured: go not found"
if command -v go >/dev/null; then
	if (cd "$ROOT" && go build -o "$WORK/tcpstream" ./deploy/bench/tcpstream) >&2; then
		TCPSTREAM=$WORK/tcpstream TCP_STATUS=ok
	else
		TCP_STATUS="not measured: building deploy/bench/tcpstream failed"
	fi
fi

# ------------------------------------------------------------------ ports
# port_listening port: true when something listens on it (IPv4 or IPv6).
port_listening() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
TAKEN=" "
# free_port: a port nobody listens on, below the ephemeral range.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[[ $TAKEN == *" $p "* ]] && continue
		port_listening "$p" && continue
		TAKEN+="$p "
		echo "$p"
		return 0
	done
	die "no free port found"
}

# wait_port pid port secs: until 127.0.0.1:port accepts, the process dies,
# or the time is up.
wait_port() {
	local pid=$1 port=$2 deadline=$((SECONDS + $3))
	while ((SECONDS < deadline)); do
		is_running "$pid" || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	return 1
}

mkdir -p "$OUT/raw"
RAW=$OUT/raw
rm -f "$RAW"/*.log "$RAW"/*.out
case $BENCH_PROFILE in
0 | "") BENCH_PROFILE=0 ;;
1 | top)
	mkdir -p "$OUT/profile"
	rm -f "$OUT"/profile/*
	;;
*) die "BENCH_PROFILE must be 0, 1 or top" ;;
esac

# Target table, filled as servers come up: name, URL, server pid, block size.
T_NAMES=() T_URLS=() T_PIDS=() T_BS=()

block_size_of() { # url -> logical block length in bytes
	local out
	out=$(timeout 10 iscsi-readcapacity16 "$1" 2>&1) || {
		log "READ CAPACITY(16) on $1 failed: $out"
		return 1
	}
	awk -F: '/^LOGICAL BLOCK LENGTH IN BYTES/ { print $2 + 0; exit }' <<<"$out"
}

add_target() { # name url pid
	local bs
	bs=$(block_size_of "$2") || return 1
	if ! [[ $bs =~ ^[0-9]+$ ]] || ((bs == 0)); then
		log "$1: no block length from READ CAPACITY(16)"
		return 1
	fi
	T_NAMES+=("$1") T_URLS+=("$2") T_PIDS+=("$3") T_BS+=("$bs")
}

# ------------------------------------------------------------------- tgtd
start_tgtd() {
	local port cp i
	port=$(free_port)
	for ((i = 0; i < 100; i++)); do
		cp=$((4000 + RANDOM % 20000))
		[[ -e /var/run/tgtd/socket.$cp || -e /var/run/tgtd/socket.$cp.lock ]] || break
	done
	TGT_CP=$cp
	dd if=/dev/zero of="$SHM_IMG" bs=1M count="$DISK_MIB" status=none ||
		die "cannot write a $DISK_MIB MiB file in /dev/shm"
	# -f: foreground; -C: a control socket of our own, so a system tgtd
	# (control port 0) or another bench never sees our targets.
	tgtd -f -C "$cp" --iscsi "portal=127.0.0.1:$port" >"$RAW/tgtd.log" 2>&1 &
	TGT_PID=$!
	PIDS+=("$TGT_PID")
	local adm=(tgtadm -C "$cp" --lld iscsi)
	for ((i = 0; i < 50; i++)); do
		"${adm[@]}" --mode sys --op show >/dev/null 2>&1 && break
		is_running "$TGT_PID" || break
		sleep 0.2
	done
	"${adm[@]}" --mode sys --op show >/dev/null 2>&1 || {
		cat "$RAW/tgtd.log" >&2
		die "tgtd did not start (control port $cp)"
	}
	"${adm[@]}" --mode target --op new --tid 1 --targetname "$TGT_IQN"
	# bs null still wants a --backing-store argument; it is never opened.
	"${adm[@]}" --mode logicalunit --op new --tid 1 --lun 1 --bstype null --backing-store bench-null
	"${adm[@]}" --mode logicalunit --op new --tid 1 --lun 2 --bstype rdwr --backing-store "$SHM_IMG"
	"${adm[@]}" --mode target --op bind --tid 1 --initiator-address ALL
	wait_port "$TGT_PID" "$port" 15 || {
		cat "$RAW/tgtd.log" >&2
		die "tgtd does not accept connections on 127.0.0.1:$port"
	}
	add_target tgtd-null "iscsi://127.0.0.1:$port/$TGT_IQN/1" "$TGT_PID" || die "tgtd null LUN unusable"
	add_target tgtd-shm "iscsi://127.0.0.1:$port/$TGT_IQN/2" "$TGT_PID" || die "tgtd /dev/shm LUN unusable"
	log "tgtd $(tgtd -V 2>&1 | awk '{print $NF; exit}') on 127.0.0.1:$port (pid $TGT_PID, control port $cp)"
}

# -------------------------------------------------------------- sanbridge
SB_STATUS="not requested"
start_sanbridge() {
	local port
	if [[ ! -x $SANBRIDGE ]]; then
		SB_STATUS="binary $SANBRIDGE not found (run make build)"
		return 1
	fi
	port=$(free_port)
	cat >"$WORK/sanbridge.hcl" <<EOF
portal "bench" {
  listen = "127.0.0.1:$port"
}

target "$SB_IQN" {
  lun "0" {
    emulated {
      size       = "${DISK_MIB}MiB"
      block_size = 512
    }
  }
}
EOF
	cp "$WORK/sanbridge.hcl" "$RAW/sanbridge.hcl"
	"$SANBRIDGE" serve --config "$WORK/sanbridge.hcl" --log-level warn >"$RAW/sanbridge.log" 2>&1 &
	SB_PID=$!
	PIDS+=("$SB_PID")
	if ! wait_port "$SB_PID" "$port" 15; then
		SB_STATUS="did not accept connections on 127.0.0.1:$port; log: $(tail -c 600 "$RAW/sanbridge.log" | tr '\n' ' ')"
		return 1
	fi
	if ! add_target sanbridge "iscsi://127.0.0.1:$port/$SB_IQN/0" "$SB_PID"; then
		SB_STATUS="serves 127.0.0.1:$port but READ CAPACITY(16) failed; log: $(tail -c 600 "$RAW/sanbridge.log" | tr '\n' ' ')"
		return 1
	fi
	SB_STATUS="ok"
	log "sanbridge $("$SANBRIDGE" version 2>/dev/null | head -1 || true) on 127.0.0.1:$port (pid $SB_PID)"
}

((want_tgtd)) && start_tgtd
if ((want_sb)); then
	start_sanbridge || log "sanbridge: $SB_STATUS"
fi
((${#T_NAMES[@]})) || die "no target is up"

# -------------------------------------------------------------- measuring
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

proc_ticks() { # pid -> utime+stime of the whole process, in clock ticks
	local s f
	{ s=$(</proc/"$1"/stat); } 2>/dev/null || {
		echo 0
		return
	}
	read -ra f <<<"${s##*) }"
	echo $((f[11] + f[12]))
}
thread_ticks() { # pid -> "tid ticks" per thread
	local t s f
	for t in /proc/"$1"/task/*; do
		{ s=$(<"$t/stat"); } 2>/dev/null || continue
		read -ra f <<<"${s##*) }"
		echo "${t##*/} $((f[11] + f[12]))"
	done
}
machine_ticks() { # -> busy ticks of all CPUs (user nice system irq softirq steal)
	local c u n s i irq sirq st rest
	read -r c u n s i _ irq sirq st rest </proc/stat
	echo $((u + n + s + irq + sirq + st))
}
now_ns() { date +%s%N; }

PERF_OK=0
if [[ $BENCH_PROFILE == 1 ]] && command -v perf >/dev/null &&
	perf record -q -e cpu-clock -o "$WORK/perf-probe.data" -- true >/dev/null 2>&1; then
	PERF_OK=1
fi

# run_perf name url pid bs case bytes qd flag secs profile-tag
# Runs one iscsi-perf pass; appends a line to $WORK/runs.tsv unless
# profiling: round case target iops mibs srv% thread% cli% other% status.
run_perf() {
	local name=$1 url=$2 spid=$3 bs=$4 cse=$5 bytes=$6 qd=$7 flag=$8 secs=$9 tag=${10}
	local blocks=$((bytes / bs)) out cpid i status=ok
	if ((blocks < 1 || blocks * bs != bytes)); then
		log "$name: $bytes bytes is not a whole number of $bs-byte blocks"
		return 0
	fi
	out="$RAW/$cse.$name.$tag.out"
	if ! is_running "$spid"; then
		log "$cse on $name: the server is gone (see $RAW)"
		if [[ $tag != prof ]]; then
			printf '%s\t%s\t%s\t0\t0\t0\t0\t0\t0\tserver-gone\n' "$tag" "$cse" "$name" >>"$WORK/runs.tsv"
		fi
		return 0
	fi
	# -l: one line per second; stdbuf so the lines reach the file as printed.
	# $flag is empty or -r, hence unquoted.
	# shellcheck disable=SC2086
	stdbuf -oL iscsi-perf -l -m "$qd" -b "$blocks" $flag "$url" >"$out" 2>&1 &
	cpid=$!
	CLIENT_PID=$cpid
	for ((i = 0; i < 100; i++)); do
		grep -q 'infinite runtime' "$out" 2>/dev/null && break
		is_running "$cpid" || break
		sleep 0.1
	done
	local t0 s0 c0 m0 t1 s1 c1 m1 prof_pid=""
	t0=$(now_ns) s0=$(proc_ticks "$spid") c0=$(proc_ticks "$cpid") m0=$(machine_ticks)
	thread_ticks "$spid" >"$WORK/thr0"
	if [[ $tag == prof ]]; then
		local pbase="$OUT/profile/$cse.$name"
		if ((PERF_OK)); then
			perf record -q -g -e cpu-clock -F 499 -p "$spid,$cpid" -o "$pbase.perf.data" \
				-- sleep "$((secs - 1))" >"$pbase.perf.log" 2>&1 &
		else
			top -b -H -d 1 -n "$((secs - 1))" -p "$spid,$cpid" >"$pbase.top.txt" 2>&1 &
		fi
		prof_pid=$!
		PROF_PID=$prof_pid
	fi
	# A client that is gone already (login refused, READ failed) is not
	# worth waiting for.
	if is_running "$cpid"; then sleep "$secs"; fi
	t1=$(now_ns) s1=$(proc_ticks "$spid") c1=$(proc_ticks "$cpid") m1=$(machine_ticks)
	thread_ticks "$spid" >"$WORK/thr1"
	is_running "$cpid" || status=client-died
	kill -INT "$cpid" 2>/dev/null || true
	# SIGINT lets in-flight commands finish; a second one aborts; then KILL.
	for ((i = 0; i < 100; i++)); do
		is_running "$cpid" || break
		((i == 50)) && kill -INT "$cpid" 2>/dev/null
		sleep 0.1
	done
	is_running "$cpid" && { kill -KILL "$cpid" 2>/dev/null || true; status=client-hung; }
	wait "$cpid" 2>/dev/null || true
	CLIENT_PID=""
	if [[ -n $prof_pid ]]; then
		wait "$prof_pid" 2>/dev/null || true
		PROF_PID=""
	fi
	grep -aqE 'failed|ABORTED|Login Failed|iscsi_service' "$out" && status=client-error
	is_running "$spid" || status=server-died

	local iops
	iops=$(tr '\r' '\n' <"$out" | sed -nE 's/.*iops average ([0-9]+).*/\1/p' | tail -1)
	if [[ -z $iops ]]; then
		iops=0
		if [[ $status == ok ]]; then status=no-figures; fi
	fi
	local thr
	thr=$(awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > m) m = d } END { print m + 0 }' \
		"$WORK/thr0" "$WORK/thr1")
	local line
	line=$(awk -v iops="$iops" -v bytes="$bytes" -v dt="$((t1 - t0))" -v hz="$CLK_TCK" \
		-v s="$((s1 - s0))" -v c="$((c1 - c0))" -v m="$((m1 - m0))" -v th="$thr" \
		'BEGIN {
			sec = dt / 1e9; k = 100 / hz / sec
			srv = s * k; cli = c * k; oth = m * k - srv - cli; if (oth < 0) oth = 0
			printf "%d\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f", iops, iops * bytes / 1048576, srv, th * k, cli, oth
		}')
	if [[ $tag == prof ]]; then
		log "profiled $cse on $name: $line ($status)"
		profile_report "$OUT/profile/$cse.$name"
	else
		printf '%s\t%s\t%s\t%s\t%s\n' "$tag" "$cse" "$name" "$line" "$status" >>"$WORK/runs.tsv"
		log "$(printf '%-13s %-10s %s' "$cse" "$name" "$line" | tr '\t' ' ') $status"
	fi
}

profile_report() { # base: turn a perf.data into text reports next to it
	local base=$1
	[[ -s $base.perf.log ]] || rm -f "$base.perf.log"
	[[ -f $base.perf.data ]] || return 0
	{
		echo "share of CPU samples per process:"
		perf report -i "$base.perf.data" --stdio --no-children --sort comm -g none 2>/dev/null |
			grep -v -e '^#' -e '^$'
		echo
		echo "hottest symbols (perf report -i $base.perf.data for call graphs):"
		perf report -i "$base.perf.data" --stdio --no-children --sort comm,dso,sym -g none 2>/dev/null |
			grep -v -e '^#' -e '^$' | head -40
	} >"$base.perf.txt" || true
}

# profile_share base -> "comm NN.N%, comm NN.N%" from a perf.txt
profile_share() {
	[[ -f $1.perf.txt ]] || return 0
	awk '/^share of CPU/ { on = 1; next } on && NF == 0 { exit } on && $1 ~ /%$/ { printf "%s%s %s", sep, $2, $1; sep = ", " }
		/^hottest/ { exit }' "$1.perf.txt"
}

: >"$WORK/runs.tsv"
: >"$WORK/tcp.tsv"
n=${#T_NAMES[@]}
START=$SECONDS
log "running ${#CASES[@]} cases x $n targets x $BENCH_ROUNDS rounds x ${BENCH_SECS}s"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	if [[ -n $TCPSTREAM ]]; then
		tcp=$("$TCPSTREAM" -secs "$BENCH_SECS" 2>&1 | awk '/^MiB\/s / { print $2 }') || tcp=""
		if [[ -n $tcp ]]; then
			printf '%s\t%s\n' "$r" "$tcp" >>"$WORK/tcp.tsv"
			log "raw TCP stream round $r: $tcp MiB/s"
		else
			log "raw TCP stream round $r: no figure"
		fi
	fi
	for ((ci = 0; ci < ${#CASES[@]}; ci++)); do
		IFS='|' read -r cse bytes qd flag <<<"${CASES[ci]}"
		# Rotate the order per case and round, and reverse it every other
		# round, so no target always runs first (cold) or last.
		order=()
		for ((k = 0; k < n; k++)); do order+=($(((k + ci + r - 1) % n))); done
		if ((r % 2 == 0)); then
			rev=()
			for ((k = n - 1; k >= 0; k--)); do rev+=("${order[k]}"); done
			order=("${rev[@]}")
		fi
		for idx in "${order[@]}"; do
			run_perf "${T_NAMES[idx]}" "${T_URLS[idx]}" "${T_PIDS[idx]}" "${T_BS[idx]}" \
				"$cse" "$bytes" "$qd" "$flag" "$BENCH_SECS" "$r"
		done
	done
done

if [[ $BENCH_PROFILE != 0 ]]; then
	psecs=$((BENCH_SECS < 8 ? BENCH_SECS : 8))
	if ((PERF_OK)); then
		log "profiling with perf record -g"
	else
		log "perf cannot record here: top -b -H snapshots instead"
	fi
	for ((ci = 0; ci < ${#CASES[@]}; ci++)); do
		IFS='|' read -r cse bytes qd flag <<<"${CASES[ci]}"
		for ((idx = 0; idx < n; idx++)); do
			run_perf "${T_NAMES[idx]}" "${T_URLS[idx]}" "${T_PIDS[idx]}" "${T_BS[idx]}" \
				"$cse" "$bytes" "$qd" "$flag" "$psecs" prof
		done
	done
fi
ELAPSED=$((SECONDS - START))

# A server that died under load is the headline, not a footnote.
if [[ -n ${SB_PID:-} ]] && ! is_running "$SB_PID"; then
	sb_rc=0
	wait "$SB_PID" 2>/dev/null || sb_rc=$?
	SB_STATUS="EXITED during the bench (status $sb_rc); log tail: $(tail -c 800 "$RAW/sanbridge.log" | tr '\n' ' ')"
	log "sanbridge $SB_STATUS"
fi
if [[ -n $TGT_PID ]] && ! is_running "$TGT_PID"; then
	log "tgtd exited during the bench; log tail: $(tail -c 800 "$RAW/tgtd.log" | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- report
# Mean per case x target over the rounds that produced figures.
awk -F'\t' '$10 == "ok" {
		k = $2 SUBSEP $3; n[k]++
		for (i = 4; i <= 9; i++) s[k, i] += $i
	}
	END { for (k in n) { split(k, p, SUBSEP); printf "%s\t%s", p[1], p[2]
		for (i = 4; i <= 9; i++) printf "\t%.1f", s[k, i] / n[k]; printf "\t%d\n", n[k] } }' \
	"$WORK/runs.tsv" >"$WORK/mean.tsv"

get() { # case target column(4=iops 5=MiB/s 6=srv 7=thread 8=cli 9=other) -> value or ""
	awk -F'\t' -v c="$1" -v t="$2" -v col="$(($3 - 1))" '$1 == c && $2 == t { print $col; exit }' "$WORK/mean.tsv"
}
ratio() { # a b -> a/b with 2 decimals, or "-"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
fmt() { # number or "-"
	[[ -n $1 ]] && printf '%.0f' "$1" || printf -- '-'
}

REPORT=$WORK/report.txt
{
	echo "sanbridge vs tgtd: iSCSI read benchmark ($(date -u '+%Y-%m-%d %H:%M:%SZ'))"
	echo "host: $NCPU CPUs, $(uname -r), load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "client: iscsi-perf (libiscsi $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null || echo '?')), one connection, READ(16)"
	((want_tgtd)) && echo "tgtd: $(tgtd -V 2>&1 | head -1); LUN null = bs null, LUN shm = bs rdwr on a ${DISK_MIB} MiB file in /dev/shm"
	echo "sanbridge: $SANBRIDGE: $SB_STATUS; LUN = ${DISK_MIB} MiB emulated memory disk"
	echo "runs: ${BENCH_SECS}s each, $BENCH_ROUNDS rounds (mean shown), order rotated per case and reversed per round; ${ELAPSED}s in all"
	echo "MiB/s = IOPS x transfer size / 2^20. ratio = sanbridge / tgtd (shm is the fair one: both serve memory)."
	echo
	printf '%-13s | %9s %8s | %9s %8s | %9s %8s | %9s %9s\n' case "tgtd-null" "" "tgtd-shm" "" sanbridge "" "ratio" "ratio"
	printf '%-13s | %9s %8s | %9s %8s | %9s %8s | %9s %9s\n' "" IOPS MiB/s IOPS MiB/s IOPS MiB/s "vs shm" "vs null"
	printf -- '--------------+--------------------+--------------------+--------------------+--------------------\n'
	for c in "${CASES[@]}"; do
		cse=${c%%|*}
		# MiB/s and IOPS give the same ratio for a fixed transfer size.
		printf '%-13s | %9s %8s | %9s %8s | %9s %8s | %9s %9s\n' "$cse" \
			"$(fmt "$(get "$cse" tgtd-null 4)")" "$(fmt "$(get "$cse" tgtd-null 5)")" \
			"$(fmt "$(get "$cse" tgtd-shm 4)")" "$(fmt "$(get "$cse" tgtd-shm 5)")" \
			"$(fmt "$(get "$cse" sanbridge 4)")" "$(fmt "$(get "$cse" sanbridge 5)")" \
			"$(ratio "$(get "$cse" sanbridge 4)" "$(get "$cse" tgtd-shm 4)")" \
			"$(ratio "$(get "$cse" sanbridge 4)" "$(get "$cse" tgtd-null 4)")"
	done
	tcp_mean=$(awk -F'\t' '{ s += $2; n++ } END { if (n) printf "%.0f", s / n }' "$WORK/tcp.tsv")
	if [[ -n $tcp_mean ]]; then
		echo "raw loopback TCP stream (one connection, 1 MiB writes and reads): $tcp_mean MiB/s" \
			"(per round: $(cut -f2 "$WORK/tcp.tsv" | tr '\n' ' '| sed 's/ $//'))"
	else
		echo "raw loopback TCP stream: $TCP_STATUS"
	fi
	echo
	echo "CPU during each run, % of one core ($NCPU cores = $((NCPU * 100))%), mean of the rounds:"
	echo "  server = the target process, busiest = its busiest thread, client = iscsi-perf"
	echo "  (single-threaded: ~100% means the client is the bottleneck), other = rest of the machine"
	printf '  %-13s %-10s %9s %7s %8s %7s %6s   %s\n' case target IOPS server busiest client other "per-round IOPS"
	for c in "${CASES[@]}"; do
		cse=${c%%|*}
		for t in "${T_NAMES[@]}"; do
			per=$(awk -F'\t' -v c="$cse" -v t="$t" '$2 == c && $3 == t { printf "%s%s", sep, ($10 == "ok" ? $4 : $10); sep = " " }' "$WORK/runs.tsv")
			printf '  %-13s %-10s %9s %6s%% %7s%% %6s%% %5s%%   %s\n' "$cse" "$t" \
				"$(fmt "$(get "$cse" "$t" 4)")" "$(fmt "$(get "$cse" "$t" 6)")" "$(fmt "$(get "$cse" "$t" 7)")" \
				"$(fmt "$(get "$cse" "$t" 8)")" "$(fmt "$(get "$cse" "$t" 9)")" "$per"
		done
	done
	echo
	echo "Targets from the issue (against tgtd's memory-backed LUN; the null LUN shown for reference):"
	for c in "${CASES[@]}"; do
		IFS='|' read -r cse bytes qd flag <<<"$c"
		sb=$(get "$cse" sanbridge 4) shm=$(get "$cse" tgtd-shm 4) nul=$(get "$cse" tgtd-null 4)
		if ((bytes == 4096 && qd == 1)); then
			# One command at a time measures latency: parity is the bar.
			goal=1.0 what="IOPS >= tgtd (latency, QD1)"
		elif ((bytes == 4096)); then
			goal=$IOPS_GOAL what="IOPS >= ${IOPS_GOAL}x tgtd"
		else
			goal=1.0 what="MiB/s >= tgtd"
		fi
		if ((!want_sb || !want_tgtd)); then
			echo "SKIP  $cse: sanbridge $what: BENCH_TARGETS=\"$BENCH_TARGETS\""
			continue
		fi
		if [[ -z $sb || -z $shm ]]; then
			[[ -z $sb ]] && why="sanbridge: $SB_STATUS" || why="tgtd gave no figures"
			echo "FAIL  $cse: sanbridge $what: no figures ($why)"
			continue
		fi
		verdict=$(awk -v a="$sb" -v b="$shm" -v g="$goal" 'BEGIN { print (a >= g * b) ? "PASS" : "FAIL" }')
		echo "$verdict  $cse: sanbridge $what: $(ratio "$sb" "$shm")x tgtd-shm (need ${goal}x); $(ratio "$sb" "$nul")x tgtd-null"
	done
	sb=$(get seq-1m-qd16 sanbridge 5)
	if ((want_sb)) && [[ -n $sb && -n $tcp_mean ]]; then
		verdict=$(awk -v a="$sb" -v b="$tcp_mean" 'BEGIN { print (a >= 0.85 * b) ? "PASS" : "FAIL" }')
		echo "$verdict  seq-1m-qd16: sanbridge MiB/s >= 85% of the raw TCP stream: $(awk -v a="$sb" -v b="$tcp_mean" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
	fi
	# Which side saturates: say it plainly.
	for c in "${CASES[@]}"; do
		cse=${c%%|*}
		for t in "${T_NAMES[@]}"; do
			cli=$(get "$cse" "$t" 8) srv=$(get "$cse" "$t" 6) thr=$(get "$cse" "$t" 7)
			[[ -n $cli ]] || continue
			awk -v cli="$cli" -v srv="$srv" -v thr="$thr" -v c="$cse" -v t="$t" -v ncpu="$NCPU" 'BEGIN {
				if (cli >= 90) printf "note  %s on %s: client-bound (iscsi-perf at %.0f%% of its one core; server %.0f%%)\n", c, t, cli, srv
				else if (thr >= 90) printf "note  %s on %s: server thread-bound (busiest server thread at %.0f%%)\n", c, t, thr
				else if (cli + srv >= 90 * ncpu) printf "note  %s on %s: CPU-bound (client %.0f%% + server %.0f%% of %d cores)\n", c, t, cli, srv, ncpu
			}'
		done
	done
	other_max=$(awk -F'\t' 'BEGIN { m = 0 } { if ($9 > m) m = $9 } END { printf "%.0f", m }' "$WORK/runs.tsv")
	if ((other_max >= 25)); then
		echo "warning: other processes used up to ${other_max}% CPU during some runs: figures are noisy; rerun on an idle machine"
	fi
	bad=$(awk -F'\t' '$10 != "ok" { printf "%s %s round %s: %s; ", $2, $3, $1, $10 }' "$WORK/runs.tsv")
	[[ -z $bad ]] || echo "errors: $bad(client output in $RAW)"
	if [[ $BENCH_PROFILE != 0 ]]; then
		if ((PERF_OK)); then
			echo "profiles (perf record -g, one extra ${psecs}s run each): $OUT/profile/*.perf.txt"
			for c in "${CASES[@]}"; do
				for t in "${T_NAMES[@]}"; do
					echo "  ${c%%|*} on $t: samples by process: $(profile_share "$OUT/profile/${c%%|*}.$t")"
				done
			done
		else
			echo "CPU snapshots (top -b -H, one extra ${psecs}s run each): $OUT/profile/*.top.txt"
		fi
	fi
} >"$REPORT"

cp "$WORK/runs.tsv" "$OUT/runs.tsv"
cp "$WORK/tcp.tsv" "$OUT/tcp.tsv"
cp "$REPORT" "$OUT/results.txt"
echo
cat "$REPORT"
echo
echo "written: $OUT/results.txt (per-run figures: $OUT/runs.tsv)"

# A server that never came up is a broken bench, not a slow one.
if ((want_sb)) && [[ $SB_STATUS != ok ]]; then
	exit 2
fi
exit 0
