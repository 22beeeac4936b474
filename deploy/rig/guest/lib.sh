# shellcheck shell=sh
# Helpers for the rig's guest tests (busybox sh). A test starts with
#   . "$RIG/guest/lib.sh"
# and exits 0 (pass), 77 (skip) or anything else (fail). The runner sets:
#   RIG          /share/rig (this tree: guest/, tests/, configs/)
#   RESULTS      /share/results (per-test logs; the host copies them out)
#   RIG_TEST     name of this run (e.g. 10-initiator-fs or 10-initiator-fs@tgtd)
#   RIG_TARGET   sanbridge or tgtd for "rig-targets: each" tests, else empty
#   RIG_WORK     an empty scratch directory (tmpfs), also the working directory
# /share/hardware.json is the configured hardware (deploy/rig/hardware.json);
# /share/bin holds extra binaries the host prepared (tests/NN-name.prep).

: "${RIG:=/share/rig}"
: "${RESULTS:=/share/results}"
: "${RIG_TEST:=manual}"
: "${RIG_WORK:=/tmp/rig/manual}"
PATH=/share/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# The iSCSI targets every "rig-targets: each" test can use. sanbridge serves
# them from $RIG/configs/sanbridge-rig.hcl; tgtd is configured to match.
RIG_PORTAL=127.0.0.1:3260
# shellcheck disable=SC2034 # used by tests
RIG_HOST=127.0.0.1
RIG_IQN_OPEN=iqn.2026-11.io.sanbridge:rig-open
RIG_IQN_CHAP=iqn.2026-11.io.sanbridge:rig-chap
RIG_IQN_MUTUAL=iqn.2026-11.io.sanbridge:rig-mutual
RIG_INITIATOR=iqn.2026-11.io.sanbridge:rig-initiator
RIG_CHAP_USER=rig-initiator
RIG_CHAP_SECRET=rig-initiator-secret
RIG_MUTUAL_USER=rig-target
RIG_MUTUAL_SECRET=rig-target-secret-42
RIG_LUN_SIZE=67108864

# ---- reporting -------------------------------------------------------------

now() { cut -d' ' -f1 /proc/uptime; }

# step MSG: a progress line in the test log.
step() { echo "[$(now)] == $*"; }

# fail MSG: fails the test.
fail() {
	echo "[$(now)] FAIL: $*"
	exit 1
}

# skip MSG: skips the test.
skip() {
	echo "[$(now)] SKIP: $*"
	exit 77
}

# rig_note TEXT: a line shown in the host's summary for this test.
rig_note() {
	echo "[$(now)] note: $*"
	echo "SANBRIDGE-RIG: NOTE $RIG_TEST $*" >/dev/console
}

# rig_show: copies stdin to the host's output (verbatim lines).
rig_show() {
	while IFS= read -r _l; do
		echo "$_l"
		echo "SANBRIDGE-RIG: SHOW $_l" >/dev/console
	done
}

# must CMD...: runs CMD, failing the test when it fails.
must() {
	"$@" || fail "command failed (status $?): $*"
}

# expect_eq WANT GOT WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: want '$1', got '$2'"
}

# ---- hardware --------------------------------------------------------------

# The hardware truth: /share/hardware.json (jq is in the image),
# /share/hardware.tsv (one device per line: id host_driver host_index target
# lun peripheral_type vendor product revision serial wwn size_bytes
# logical_block_size, "-" when unknown), /share/hardware.env (scsi_debug).

# rig_hw_host DRIVER INDEX: the INDEX-th (from 0) SCSI host number whose
# proc_name is DRIVER.
rig_hw_host() {
	_i=$2
	for _h in $(ls /sys/class/scsi_host | sed 's/host//' | sort -n); do
		[ "$(cat /sys/class/scsi_host/host$_h/proc_name)" = "$1" ] || continue
		[ "$_i" = 0 ] && { echo "$_h"; return 0; }
		_i=$((_i - 1))
	done
	return 1
}

# rig_hw_hctl DRIVER INDEX TARGET LUN: the H:C:T:L of a hardware.tsv device
# (the channel is whatever the driver chose: megaraid_sas uses 2).
rig_hw_hctl() {
	_h=$(rig_hw_host "$1" "$2") || return 1
	for _d in /sys/class/scsi_device/"$_h":*:"$3":"$4"; do
		[ -e "$_d" ] && { echo "${_d##*/}"; return 0; }
	done
	return 1
}

# rig_wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds, for
# at most SECONDS; fails after that.
rig_wait_for() {
	_secs=$1
	shift
	_n=0
	while [ "$_n" -lt $((_secs * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		_n=$((_n + 1))
	done
	return 1
}

# ---- targets ---------------------------------------------------------------

_port_listening() { # port (decimal)
	_hex=$(printf '%04X' "$1")
	grep -q ":$_hex [0-9A-F]*:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# rig_target_start [TARGET]: starts TARGET (default $RIG_TARGET, else
# sanbridge) serving the rig targets on $RIG_PORTAL and sets RIG_LUN (the LUN
# number of the 64 MiB disk) and RIG_TARGET_PID.
rig_target_start() {
	_t=${1:-${RIG_TARGET:-sanbridge}}
	case "$_t" in
	sanbridge) rig_sanbridge_start "$RIG/configs/sanbridge-rig.hcl" ;;
	tgtd) rig_tgtd_start ;;
	*) fail "unknown target $_t" ;;
	esac
}

# rig_target_stop: stops what rig_target_start started.
rig_target_stop() {
	case "${RIG_TARGET_KIND:-}" in
	sanbridge) rig_sanbridge_stop ;;
	tgtd) rig_tgtd_stop ;;
	esac
}

# rig_sanbridge_start CONFIG [ARGS...]: runs "sanbridge serve" in the
# background, logging to $RESULTS/$RIG_TEST.sanbridge.log, and waits until it
# listens on port 3260.
rig_sanbridge_start() {
	_cfg=$1
	shift
	command -v sanbridge >/dev/null || fail "no sanbridge binary in the image"
	_port_listening 3260 && fail "port 3260 is already in use"
	RIG_SANBRIDGE_LOG="$RESULTS/$RIG_TEST.sanbridge.log"
	step "sanbridge serve --config $_cfg $*"
	sanbridge serve --config "$_cfg" --log-level debug "$@" </dev/null >"$RIG_SANBRIDGE_LOG" 2>&1 &
	RIG_TARGET_PID=$!
	RIG_TARGET_KIND=sanbridge
	RIG_LUN=0
	_n=0
	while ! _port_listening 3260; do
		if ! kill -0 "$RIG_TARGET_PID" 2>/dev/null; then
			tail -n 30 "$RIG_SANBRIDGE_LOG"
			fail "sanbridge exited before listening"
		fi
		[ "$_n" -ge 300 ] && fail "sanbridge not listening on 3260 after 30 s"
		sleep 0.1
		_n=$((_n + 1))
	done
	step "sanbridge listening (pid $RIG_TARGET_PID)"
}

rig_sanbridge_stop() {
	[ -n "${RIG_TARGET_PID:-}" ] || return 0
	kill -TERM "$RIG_TARGET_PID" 2>/dev/null
	_n=0
	while kill -0 "$RIG_TARGET_PID" 2>/dev/null; do
		if [ "$_n" -ge 100 ]; then
			echo "sanbridge did not exit 10 s after SIGTERM; killing it"
			kill -KILL "$RIG_TARGET_PID"
			break
		fi
		sleep 0.1
		_n=$((_n + 1))
	done
	wait "$RIG_TARGET_PID" 2>/dev/null
	RIG_TARGET_PID=
	RIG_TARGET_KIND=
}

# rig_tgtd_start: tgtd with the same three targets (file LUNs in tmpfs, LUN 1;
# tgt's LUN 0 is its controller).
rig_tgtd_start() {
	command -v tgtd >/dev/null || fail "no tgtd in the image"
	_port_listening 3260 && fail "port 3260 is already in use"
	step "tgtd"
	tgtd -f --iscsi portal=$RIG_PORTAL </dev/null >"$RESULTS/$RIG_TEST.tgtd.log" 2>&1 &
	RIG_TARGET_PID=$!
	RIG_TARGET_KIND=tgtd
	RIG_LUN=1
	rig_wait_for 20 _port_listening 3260 || fail "tgtd not listening"
	_tid=1
	for _iqn in "$RIG_IQN_OPEN" "$RIG_IQN_CHAP" "$RIG_IQN_MUTUAL"; do
		truncate -s "$RIG_LUN_SIZE" "/tmp/tgtd-lun$_tid.img"
		must tgtadm --lld iscsi --op new --mode target --tid $_tid -T "$_iqn"
		must tgtadm --lld iscsi --op new --mode logicalunit --tid $_tid --lun 1 -b "/tmp/tgtd-lun$_tid.img"
		must tgtadm --lld iscsi --op bind --mode target --tid $_tid -I ALL
		_tid=$((_tid + 1))
	done
	must tgtadm --lld iscsi --op new --mode account --user "$RIG_CHAP_USER" --password "$RIG_CHAP_SECRET"
	must tgtadm --lld iscsi --op new --mode account --user "$RIG_MUTUAL_USER" --password "$RIG_MUTUAL_SECRET"
	must tgtadm --lld iscsi --op bind --mode account --tid 2 --user "$RIG_CHAP_USER"
	must tgtadm --lld iscsi --op bind --mode account --tid 3 --user "$RIG_CHAP_USER"
	must tgtadm --lld iscsi --op bind --mode account --tid 3 --user "$RIG_MUTUAL_USER" --outgoing
}

rig_tgtd_stop() {
	[ -n "${RIG_TARGET_PID:-}" ] || return 0
	for _tid in 1 2 3; do
		tgtadm --lld iscsi --op delete --mode target --tid $_tid --force >/dev/null 2>&1
	done
	tgtadm --op delete --mode system >/dev/null 2>&1
	rig_wait_for 10 sh -c "! kill -0 $RIG_TARGET_PID" || kill -KILL "$RIG_TARGET_PID"
	wait "$RIG_TARGET_PID" 2>/dev/null
	rm -f /tmp/tgtd-lun*.img
	RIG_TARGET_PID=
	RIG_TARGET_KIND=
}

# ---- Linux initiator -------------------------------------------------------

# rig_iscsid_start: the open-iscsi daemon (the runner starts it once).
rig_iscsid_start() {
	pidof iscsid >/dev/null && return 0
	echo "InitiatorName=$RIG_INITIATOR" >/etc/iscsi/initiatorname.iscsi
	setsid iscsid -f </dev/null &
	# iscsid listens on the abstract socket @ISCSIADM_ABSTRACT_NAMESPACE.
	rig_wait_for 10 grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix
}

rig_iscsid_stop() {
	_p=$(pidof iscsid) || return 0
	kill -TERM $_p
}

# rig_discover [PORTAL]: SendTargets discovery; prints "portal,tpgt iqn" lines.
rig_discover() {
	iscsiadm -m discovery -t sendtargets -p "${1:-$RIG_PORTAL}"
}

# rig_node IQN [PORTAL]: creates the node record without discovery.
rig_node() {
	iscsiadm -m node -o new -T "$1" -p "${2:-$RIG_PORTAL}" >/dev/null
}

# rig_node_set IQN NAME VALUE: sets a node record field.
rig_node_set() {
	iscsiadm -m node -T "$1" -p "$RIG_PORTAL" -o update -n "$2" -v "$3"
}

# rig_node_chap IQN USER SECRET [TARGET_USER TARGET_SECRET]: CHAP (mutual
# when the target credentials are given) for the node record.
rig_node_chap() {
	rig_node_set "$1" node.session.auth.authmethod CHAP &&
		rig_node_set "$1" node.session.auth.username "$2" &&
		rig_node_set "$1" node.session.auth.password "$3" || return 1
	if [ -n "${4:-}" ]; then
		rig_node_set "$1" node.session.auth.username_in "$4" &&
			rig_node_set "$1" node.session.auth.password_in "$5" || return 1
	fi
}

# rig_login IQN: logs in to the node record.
rig_login() {
	iscsiadm -m node -T "$1" -p "$RIG_PORTAL" --login
}

# rig_logout IQN
rig_logout() {
	iscsiadm -m node -T "$1" -p "$RIG_PORTAL" --logout
}

# rig_session_dir IQN: the /sys/class/iscsi_session entry of the session to IQN.
rig_session_dir() {
	for _s in /sys/class/iscsi_session/session*; do
		[ -e "$_s/targetname" ] || continue
		[ "$(cat "$_s/targetname")" = "$1" ] && { echo "$_s"; return 0; }
	done
	return 1
}

# rig_lun_disk IQN [LUN]: waits (up to 20 s) for the block device of LUN
# (default $RIG_LUN) of the session to IQN and prints its name (sdX).
rig_lun_disk() {
	_lun=${2:-${RIG_LUN:-0}}
	_n=0
	while [ "$_n" -lt 200 ]; do
		_s=$(rig_session_dir "$1") && for _d in "$(readlink -f "$_s/device")"/target*/*:*:*:"$_lun"/block/*; do
			[ -e "$_d" ] && { echo "${_d##*/}"; return 0; }
		done
		sleep 0.1
		_n=$((_n + 1))
	done
	return 1
}

# rig_lun_sg IQN [LUN]: the sg device name (sgN) of LUN of the session to IQN.
rig_lun_sg() {
	_lun=${2:-${RIG_LUN:-0}}
	_s=$(rig_session_dir "$1") || return 1
	for _d in "$(readlink -f "$_s/device")"/target*/*:*:*:"$_lun"/scsi_generic/*; do
		[ -e "$_d" ] && { echo "${_d##*/}"; return 0; }
	done
	return 1
}

# rig_reset: logs out of every session, forgets node and discovery records and
# unmounts /mnt/rig*. The runner calls it after each test.
rig_reset() {
	for _m in $(awk '$2 ~ /^\/mnt\/rig/ { print $2 }' /proc/mounts); do
		umount "$_m" || umount -l "$_m"
	done
	if ls /sys/class/iscsi_session/ 2>/dev/null | grep -q .; then
		iscsiadm -m node --logoutall=all >/dev/null 2>&1
		iscsiadm -m session -u >/dev/null 2>&1
	fi
	iscsiadm -m node -o delete >/dev/null 2>&1
	iscsiadm -m discoverydb -t sendtargets -p "$RIG_PORTAL" -o delete >/dev/null 2>&1
	rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/*
	return 0
}

# ---- data ------------------------------------------------------------------

# rig_pattern FILE SECTORS: writes SECTORS 512-byte records, each naming its
# own sector number, so that misplaced I/O shows.
rig_pattern() {
	awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%-511s\n", sprintf("sanbridge rig sector %010d", i) }' >"$1"
}

# rig_tree DIR FILES: a tree of FILES files of assorted sizes in nested
# directories (random content).
rig_tree() {
	_i=0
	while [ "$_i" -lt "$2" ]; do
		_d="$1/d$((_i % 7))/e$((_i % 3))"
		mkdir -p "$_d"
		# sizes from 0 to ~640 KiB, some odd
		_sz=$(((_i * 7919) % 655360))
		[ $((_i % 10)) = 0 ] && _sz=0
		head -c "$_sz" /dev/urandom >"$_d/f$_i.bin"
		_i=$((_i + 1))
	done
	mkdir -p "$1/empty-dir"
	ln -s d0/e0/f0.bin "$1/link"
}

# rig_sums DIR: checksums of every regular file under DIR, sorted by name.
rig_sums() {
	(cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum)
}

# ---- several initiator names (open-iscsi ifaces) ---------------------------

# rig_iface_new IFACE INITIATOR: an open-iscsi iface (TCP) whose sessions log
# in with the iSCSI name INITIATOR (discovery through it too).
rig_iface_new() {
	iscsiadm -m iface -I "$1" -o new >/dev/null &&
		iscsiadm -m iface -I "$1" -o update -n iface.transport_name -v tcp >/dev/null &&
		iscsiadm -m iface -I "$1" -o update -n iface.initiatorname -v "$2" >/dev/null
}

# rig_iface_delete IFACE: forgets the iface (log out of its sessions first).
rig_iface_delete() {
	iscsiadm -m iface -I "$1" -o delete >/dev/null 2>&1
	rm -f "/etc/iscsi/ifaces/$1"
}

# rig_discover_iface IFACE [PORTAL]: SendTargets discovery as IFACE's
# initiator; prints "portal,tpgt iqn" lines and keeps no records (make them
# with rig_node_iface).
rig_discover_iface() {
	iscsiadm -m discovery -t sendtargets -p "${2:-$RIG_PORTAL}" -I "$1" -o nonpersistent
}

# rig_node_iface IQN IFACE: the node record of IQN through IFACE.
rig_node_iface() {
	iscsiadm -m node -o new -T "$1" -p "$RIG_PORTAL" -I "$2" >/dev/null
}

# rig_login_iface IQN IFACE / rig_logout_iface IQN IFACE
rig_login_iface() {
	iscsiadm -m node -T "$1" -p "$RIG_PORTAL" -I "$2" --login
}
rig_logout_iface() {
	iscsiadm -m node -T "$1" -p "$RIG_PORTAL" -I "$2" --logout
}

# rig_session_dir_iface IQN IFACE: the /sys/class/iscsi_session entry of the
# session to IQN through IFACE.
rig_session_dir_iface() {
	for _s in /sys/class/iscsi_session/session*; do
		[ -e "$_s/targetname" ] || continue
		[ "$(cat "$_s/targetname")" = "$1" ] || continue
		[ "$(cat "$_s/ifacename" 2>/dev/null)" = "$2" ] && { echo "$_s"; return 0; }
	done
	return 1
}

# rig_session_luns SESSION_DIR: the LUN numbers the kernel attached in that
# session, sorted, one a line.
rig_session_luns() {
	for _d in "$(readlink -f "$1/device")"/target*/*:*:*:*; do
		[ -e "$_d/scsi_generic" ] && echo "${_d##*:}"
	done | sort -n
}

# rig_session_sg SESSION_DIR LUN / rig_session_disk SESSION_DIR LUN: the sg
# (sgN) or block (sdX) device of LUN in that session; waits up to 20 s.
rig_session_sg() {
	rig_wait_for 20 _rig_session_node "$1" "$2" scsi_generic && _rig_session_node "$1" "$2" scsi_generic
}
rig_session_disk() {
	rig_wait_for 20 _rig_session_node "$1" "$2" block && _rig_session_node "$1" "$2" block
}
_rig_session_node() { # SESSION_DIR LUN CLASS
	for _d in "$(readlink -f "$1/device")"/target*/*:*:*:"$2"/"$3"/*; do
		[ -e "$_d" ] && { echo "${_d##*/}"; return 0; }
	done
	return 1
}

# rig_passthrough_config IQN DEVICE: prints a config that serves the local
# SCSI device DEVICE (a /dev path) as LUN 0 of target IQN on $RIG_PORTAL.
rig_passthrough_config() {
	cat <<CFG
portal "lo" {
  listen = "$RIG_PORTAL"
}
target "$1" {
  lun "0" {
    device {
      path = "$2"
    }
  }
}
CFG
}

# ---- iscsi-test-cu logs ----------------------------------------------------

# rig_cu_results LOG: one line per test of an iscsi-test-cu log,
# "SUITE.TEST RESULT" with RESULT pass|skip|fail (unknown when the log has
# none). CUnit counts [SKIPPED] tests as passed: the outcome is the first
# bare "passed"/"FAILED" after "Test: NAME ..."; a "[SKIPPED]" message before
# it turns a pass into a skip.
rig_cu_results() {
	awk '
		function finish() { if (cur != "") { print cur, (res == "" ? "unknown" : res); cur = "" } }
		/^Suite: / { finish(); suite = $2; next }
		/^Run Summary/ { finish(); next }
		/^  Test: / {
			finish()
			name = $0; sub(/^  Test: /, "", name); sub(/ \.\.\..*/, "", name)
			cur = suite "." name; res = ""; skipped = 0
		}
		cur != "" && res == "" {
			# Blank out [TAGS] keeping positions; a [SKIPPED] counts only
			# before the result (suite cleanup prints some after "passed").
			line = $0
			s = index(line, "[SKIPPED]")
			while (match(line, /\[[A-Z]+\]/)) {
				blank = substr(line, RSTART, RLENGTH)
				gsub(/./, " ", blank)
				line = substr(line, 1, RSTART - 1) blank substr(line, RSTART + RLENGTH)
			}
			if (match(line, /(^|[ .])(passed|FAILED)([ ]|$)/)) {
				if (s > 0 && s < RSTART + 1) skipped = 1
				res = (substr(line, RSTART, RLENGTH) ~ /FAILED/) ? "fail" : (skipped ? "skip" : "pass")
			} else if (s > 0) skipped = 1
		}
		END { finish() }
	' "$1"
}

# rig_cu_check LOG RESULTS: fails the test when the parsed RESULTS (from
# rig_cu_results) disagree with CUnit's own counts in LOG.
rig_cu_check() {
	_total=$(wc -l <"$2")
	_failn=$(grep -c ' fail$' "$2")
	_unknown=$(grep -c ' unknown$' "$2")
	_ran=$(awk '$1 == "tests" { n += $3 } END { print n + 0 }' "$1")
	_cufail=$(awk '$1 == "tests" { n += $5 } END { print n + 0 }' "$1")
	[ "$_total" -gt 0 ] || fail "no test results in the iscsi-test-cu log $1"
	[ "$_unknown" = 0 ] || fail "$_unknown tests without a result in $1"
	[ "$_ran" = "$_total" ] || fail "$1: parsed $_total tests but CUnit ran $_ran"
	[ "$_cufail" = "$_failn" ] || fail "$1: parsed $_failn failures but CUnit counted $_cufail"
}
