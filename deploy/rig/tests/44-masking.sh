#!/bin/sh
# LUN masking with the Linux initiator (issue 11): two open-iscsi ifaces with
# different initiator names, each in its own initiator group, and a third
# name in no group. Views overlap (one disk at LUN 1 for A and LUN 2 for B,
# same data) and are disjoint (LUN 0 is a different disk for each); a target
# only A's group sees, one only B's, and one whose default map A sees while
# B's view there is empty. SendTargets lists exactly the targets each may
# see; after login the kernel attaches and REPORT LUNS (sg_luns) returns
# exactly each view; a command by LUN number outside the view gets LOGICAL
# UNIT NOT SUPPORTED, and INQUIRY there peripheral qualifier 011b (the
# kernel's scan says so); a read-only mapping refuses writes. Then a view is
# changed in the config and sanbridge restarted (no reload yet): the
# recovered session reports the new view, discovery and a new login show it.
# The config: configs/masking.hcl, then masking_edit's version of it.
# rig-timeout: 240
. "$RIG/guest/lib.sh"

INIT_A=iqn.2026-11.io.sanbridge:rig-host-a
INIT_B=iqn.2026-11.io.sanbridge:rig-host-b
INIT_C=iqn.2026-11.io.sanbridge:rig-host-c
T_SHARED=iqn.2026-11.io.sanbridge:mask-shared
T_A=iqn.2026-11.io.sanbridge:mask-a
T_B=iqn.2026-11.io.sanbridge:mask-b
T_DEF=iqn.2026-11.io.sanbridge:mask-default

cleanup() {
	rig_reset
	rig_iface_delete ifA
	rig_iface_delete ifB
	rig_sanbridge_stop
	[ -n "${old_logging:-}" ] && echo "$old_logging" >/proc/sys/dev/scsi/logging_level
}
trap cleanup EXIT
rig_sanbridge_start "$RIG/configs/masking.hcl"
must rig_iface_new ifA "$INIT_A"
must rig_iface_new ifB "$INIT_B"

# The kernel's scan logs a peripheral qualifier of 3 when SCSI scan logging
# is on (SCSI_LOG_SCAN_BUS level > 2).
if [ -w /proc/sys/dev/scsi/logging_level ]; then
	old_logging=$(cat /proc/sys/dev/scsi/logging_level)
	echo $((3 << 6)) >/proc/sys/dev/scsi/logging_level
else
	rig_note "no /proc/sys/dev/scsi/logging_level: peripheral qualifier 011b checked only as no device"
fi

# masking_edit: the config edit (stdin to stdout): in hosts-b's view of
# mask-shared, LUN 2 (disk y) becomes LUN 5 (disk w); mask-b's view moves
# from hosts-b to hosts-a.
masking_edit() {
	sed -e '/^target "iqn.2026-11.io.sanbridge:mask-shared" {$/,/^}$/{
		/^  view "hosts-b" {$/,/^  }$/{
			s/^    lun "2" {$/    lun "5" {/
			s/^      backend = "y"$/      backend = "w"/
		}
	}' -e '/^target "iqn.2026-11.io.sanbridge:mask-b" {$/,/^}$/s/^  view "hosts-b" {$/  view "hosts-a" {/'
}

lines() { echo "$*" | tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort; }

# discovered IFACE WANT...: SendTargets through IFACE lists exactly WANT.
discovered() {
	_i=$1
	shift
	_got=$(rig_discover_iface "$_i" | awk '{ print $2 }' | LC_ALL=C sort)
	_want=$(lines "$@")
	[ "$_got" = "$_want" ] || fail "discovery through $_i: want [$(echo $_want)], got [$(echo $_got)]"
	step "discovery through $_i: $(echo $_got)"
}

# report_luns SG: the LUN numbers REPORT LUNS returns on SG, sorted.
report_luns() {
	_out=$(sg_luns "$1" 2>&1) || fail "sg_luns $1: $_out"
	for _h in $(echo "$_out" | awk '/^ +[0-9a-fA-F]{16}$/ { print substr($1, 1, 4) }'); do
		echo $((0x$_h & 0x3fff))
	done | sort -n
}

# session IQN IFACE WANT...: logs in through IFACE; the kernel attaches
# exactly LUNs WANT and REPORT LUNS returns them. Sets sess and host.
session() {
	_t=$1 _i=$2
	shift 2
	rig_node_iface "$_t" "$_i" || fail "node record of $_t through $_i"
	if ! rig_login_iface "$_t" "$_i" >/dev/null; then
		iscsiadm -m session -P 1
		fail "login to $_t through $_i"
	fi
	sess=$(rig_session_dir_iface "$_t" "$_i") || fail "no session to $_t through $_i"
	case $_i in ifA) _n=$INIT_A ;; *) _n=$INIT_B ;; esac
	expect_eq "$_n" "$(cat "$sess/initiatorname")" "initiator name of the session through $_i"
	_want=$(lines "$@")
	_first=${1:?}
	rig_session_sg "$sess" "$_first" >/dev/null || fail "$_t through $_i: LUN $_first never appeared"
	_got=$(rig_session_luns "$sess")
	[ "$_got" = "$_want" ] || fail "$_t through $_i: kernel attached LUNs [$(echo $_got)], want [$(echo $_want)]"
	_sg=/dev/$(rig_session_sg "$sess" "$_first")
	_got=$(report_luns "$_sg")
	[ "$_got" = "$_want" ] || fail "$_t through $_i: REPORT LUNS [$(echo $_got)], want [$(echo $_want)]"
	host=$(basename "$(readlink -f "$sess/device/..")" | sed -n 's/^host//p')
	[ -n "$host" ] || fail "no SCSI host for $sess"
	step "$_t through $_i (host $host): LUNs $(echo $_got)"
}

# serial SESSION LUN: the unit serial number (VPD 0x80) of LUN.
serial() {
	sg_inq -p 0x80 "/dev/$(rig_session_sg "$1" "$2")" 2>&1 | sed -n 's/^ *Unit serial number: *//p'
}

# outside NAME IQN LUN: a command from initiator NAME to LUN (not in its
# view) gets LOGICAL UNIT NOT SUPPORTED (libiscsi's tools send TEST UNIT
# READY right after login).
outside() {
	_out=$(iscsi-inq -i "$1" "iscsi://127.0.0.1:3260/$2/$3" 2>&1) &&
		fail "$1 reached LUN $3 of $2 outside its view: $_out"
	echo "$_out" | grep -q 'LOGICAL_UNIT_NOT_SUPPORTED' ||
		fail "$1 to LUN $3 of $2: want LOGICAL UNIT NOT SUPPORTED, got: $_out"
}

# invisible NAME IQN: a target with no LUN for NAME (not in its discovery):
# its login is refused, or any LUN gets LOGICAL UNIT NOT SUPPORTED.
invisible() {
	_out=$(iscsi-inq -i "$1" "iscsi://127.0.0.1:3260/$2/0" 2>&1) &&
		fail "$1 reached LUN 0 of $2 (not in its discovery): $_out"
	case $_out in
	*LOGICAL_UNIT_NOT_SUPPORTED*) rig_note "$1 may log in to $2 (no LUN): LUN 0 is not supported" ;;
	*"Failed to log in"* | *"Login Failed"*) rig_note "$1 may not log in to $2: $(echo "$_out" | head -n 1)" ;;
	*) fail "$1 to $2 (no LUN for it): want a refused login or LOGICAL UNIT NOT SUPPORTED, got: $_out" ;;
	esac
}

# pq3 HOST LUN: asks the kernel to scan LUN on HOST (channel 0, target 0):
# INQUIRY there must say peripheral qualifier 011b, and no device appears.
pq3() {
	dmesg -c >/dev/null
	echo "0 0 $2" >"/sys/class/scsi_host/host$1/scan" 2>/dev/null
	[ -e "/sys/class/scsi_device/$1:0:0:$2" ] && fail "the kernel attached LUN $2 on host $1 outside the view"
	if [ -n "${old_logging:-}" ]; then
		_l=$(dmesg | grep "$1:0:0:$2: scsi scan: peripheral qualifier of 3") ||
			fail "INQUIRY of LUN $2 on host $1: no peripheral qualifier 011b; kernel log: $(dmesg | grep "$1:0:0:$2" | tail -n 3)"
		step "LUN $2 on host $1: ${_l#*] }"
	fi
}

step "discovery shows exactly each initiator's targets"
discovered ifA "$T_SHARED" "$T_A" "$T_DEF"
discovered ifB "$T_SHARED" "$T_B"
got=$(iscsi-ls -i "$INIT_C" iscsi://127.0.0.1:3260 2>&1 | sed -n 's/^Target:\([^ ]*\) .*/\1/p' | LC_ALL=C sort)
expect_eq "$T_DEF" "$got" "discovery by $INIT_C (in no group)"

step "sessions: the kernel's LUNs and REPORT LUNS are exactly each view"
session "$T_SHARED" ifA 0 1
sA=$sess hA=$host
session "$T_SHARED" ifB 0 2
sB=$sess hB=$host
session "$T_A" ifA 3
session "$T_DEF" ifA 0
sDef=$sess
session "$T_B" ifB 0

step "disjoint LUN 0, overlapping disk y (A's LUN 1 is B's LUN 2)"
expect_eq mask-x "$(serial "$sA" 0)" "serial of A's LUN 0"
expect_eq mask-z "$(serial "$sB" 0)" "serial of B's LUN 0"
expect_eq mask-y "$(serial "$sA" 1)" "serial of A's LUN 1"
expect_eq mask-y "$(serial "$sB" 2)" "serial of B's LUN 2"
rig_pattern y.bin 64
must dd if=y.bin of="/dev/$(rig_session_disk "$sA" 1)" bs=32768 oflag=direct conv=notrunc status=none
must dd if="/dev/$(rig_session_disk "$sB" 2)" of=y-b.bin bs=32768 count=1 iflag=direct status=none
cmp y.bin y-b.bin || fail "B's LUN 2 does not hold what A wrote to its LUN 1"

step "read-only mapping"
out=$(sg_raw -s 512 -i y.bin "/dev/$(rig_session_sg "$sDef" 0)" 2a 00 00 00 00 00 00 00 01 00 2>&1) &&
	fail "WRITE through a read-only mapping succeeded: $out"
echo "$out" | grep -qi 'data protect' || fail "WRITE through a read-only mapping: want DATA PROTECT, got: $out"

step "commands outside the view"
outside "$INIT_A" "$T_SHARED" 2
outside "$INIT_B" "$T_SHARED" 1
outside "$INIT_A" "$T_A" 0
invisible "$INIT_B" "$T_DEF"
invisible "$INIT_C" "$T_SHARED"
pq3 "$hA" 2
pq3 "$hB" 1

step "change B's view of $T_SHARED and move $T_B's view to A; restart sanbridge"
for t in "$T_A" "$T_DEF" "$T_B"; do
	for i in ifA ifB; do
		rig_logout_iface "$t" $i >/dev/null 2>&1
	done
done
sgB0=/dev/$(rig_session_sg "$sB" 0)
sgB2=/dev/$(rig_session_sg "$sB" 2)
masking_edit <"$RIG/configs/masking.hcl" >masking-changed.hcl
diff -u "$RIG/configs/masking.hcl" masking-changed.hcl >edit.diff
expect_eq 3 "$(diff "$RIG/configs/masking.hcl" masking-changed.hcl | grep -c '^+[^+]')" "lines the edit changed"
rig_sanbridge_stop
cp "$RIG_SANBRIDGE_LOG" "$RESULTS/$RIG_TEST.sanbridge-1.log"
rig_sanbridge_start "$PWD/masking-changed.hcl"
# B's session to T_SHARED stayed logged in: it recovers on its own.
rig_wait_for 30 sg_turs "$sgB0" || fail "B's session did not recover after the restart: $(sg_turs "$sgB0" 2>&1)"
got=$(report_luns "$sgB0")
expect_eq "$(lines 0 5)" "$got" "REPORT LUNS of B's recovered session"
step "B's recovered session: REPORT LUNS $(echo $got)"
out=$(sg_raw "$sgB2" 00 00 00 00 00 00 2>&1) && fail "B's old LUN 2 still answers after it left the view"
echo "$out" | grep -qi 'logical unit not supported' || fail "B's old LUN 2: want LOGICAL UNIT NOT SUPPORTED, got: $out"
outside "$INIT_B" "$T_SHARED" 2
must rig_logout_iface "$T_SHARED" ifB >/dev/null
must rig_logout_iface "$T_SHARED" ifA >/dev/null
rig_reset
discovered ifA "$T_SHARED" "$T_A" "$T_B" "$T_DEF"
discovered ifB "$T_SHARED"
session "$T_SHARED" ifB 0 5
expect_eq mask-w "$(serial "$sess" 5)" "serial of B's new LUN 5"
session "$T_SHARED" ifA 0 1
session "$T_B" ifA 0
exit 0
