#!/bin/sh
# Device faults through sanbridge (issue 12): two scsi_debug disks exported
# as LUN 0 (sdebug-hd2, with a 5 s command timeout in its device block) and
# LUN 1 (sdebug-hd3), read through the kernel initiator's sg nodes:
#   - a medium error (scsi_debug opts=2 on its default range) reaches the
#     initiator as MEDIUM ERROR, UNRECOVERED READ ERROR with the LBA in
#     INFORMATION;
#   - a command the device ignores (opts=4, every_nth=1) ends after the
#     configured timeout as ABORTED COMMAND, LOGICAL UNIT COMMUNICATION
#     TIME-OUT, never GOOD;
#   - LUN 0's device removed while LUN 1 is read in a loop: LUN 0 answers
#     NOT READY (LOGICAL UNIT COMMUNICATION FAILURE, or MANUAL INTERVENTION
#     REQUIRED once the bridge noticed), LUN 1's reads go on without an
#     error. The device is scanned back at the end.
# rig-timeout: 400
. "$RIG/guest/lib.sh"

IQN=iqn.2026-11.io.sanbridge:faults
SD=/sys/bus/pseudo/drivers/scsi_debug
h0=$(rig_hw_hctl scsi_debug 0 1 0) || fail "no sdebug-hd2"
h1=$(rig_hw_hctl scsi_debug 0 1 1) || fail "no sdebug-hd3"
sg0=/dev/$(ls "/sys/class/scsi_device/$h0/device/scsi_generic")
sg1=/dev/$(ls "/sys/class/scsi_device/$h1/device/scsi_generic")
host=${h0%%:*}
step "LUN 0 sdebug-hd2 $h0 ($sg0), LUN 1 sdebug-hd3 $h1 ($sg1)"
for s in "$sg0" "$sg1"; do sg_turs "$s" >/dev/null 2>&1; must sg_turs "$s"; done
faults_off() { echo 0 >"$SD/opts"; echo 0 >"$SD/every_nth"; }
faults_off

cat >faults.hcl <<CFG
portal "lo" {
  listen = "$RIG_PORTAL"
}
target "$IQN" {
  lun "0" {
    device {
      path    = "$sg0"
      timeout = "5s"
    }
  }
  lun "1" {
    device {
      path = "$sg1"
    }
  }
}
CFG
rig_sanbridge_start "$PWD/faults.hcl"
trap 'faults_off; rig_reset; rig_sanbridge_stop; echo "- - -" >/sys/class/scsi_host/host$host/scan' EXIT
must rig_node "$IQN"
must rig_login "$IQN"
rig_wait_for 20 rig_lun_sg "$IQN" 1 || fail "no LUN 1"
r0=/dev/$(rig_lun_sg "$IQN" 0)
r1=/dev/$(rig_lun_sg "$IQN" 1)
step "through sanbridge: LUN 0 $r0, LUN 1 $r1"
must sg_turs "$r0"

step "a medium error"
echo 2 >"$SD/opts"
# READ(10) of LBA 0x1234, scsi_debug's medium error range.
out=$(sg_raw -r 512 "$r0" 28 00 00 00 12 34 00 00 01 00 2>&1)
faults_off
echo "$out" | sed 's/^/    /'
echo "$out" | grep -q 'Medium Error' || fail "no MEDIUM ERROR: $out"
echo "$out" | grep -qi 'Unrecovered read error' || fail "no UNRECOVERED READ ERROR: $out"
echo "$out" | grep -qi 'Info fld=0x1234' || fail "INFORMATION is not the LBA: $out"
must sg_raw -r 512 "$r0" 28 00 00 00 12 34 00 00 01 00

step "a command the device ignores: the 5 s timeout"
# Every command is ignored for a second: the READ, not the midlayer's
# error handling that follows the timeout.
echo 1 >"$SD/every_nth"
echo 4 >"$SD/opts"
t0=$(now)
timeout 90 sg_raw -r 512 "$r0" 28 00 00 00 00 00 00 00 01 00 >timeout.out 2>&1 &
rp=$!
sleep 1
faults_off
wait "$rp"
rc=$?
out=$(cat timeout.out)
t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
echo "$out" | sed 's/^/    /'
[ "$rc" != 124 ] || fail "the initiator waited 90 s: the gateway never answered"
echo "$out" | grep -q 'Good' && fail "an ignored command came back GOOD"
echo "$out" | grep -q 'Aborted Command' || fail "not ABORTED COMMAND: $out"
rig_note "ignored command answered after ${t} s: $(echo "$out" | grep -i 'additional sense' | head -n 1)"
# The midlayer's error handling may have reset the device meanwhile: its
# unit attentions come first.
rig_wait_for 30 sg_turs "$r0" || fail "LUN 0 did not recover: $(sg_turs "$r0" 2>&1)"
rig_wait_for 30 sg_turs "$r1" || fail "LUN 1 did not recover: $(sg_turs "$r1" 2>&1)"

step "LUN 0's device removed while LUN 1 is read"
: >loop.err
(
	i=0
	while [ ! -e stop ]; do
		sg_dd if="$r1" of=/dev/null bs=512 count=256 skip=$((i % 64 * 256)) >/dev/null 2>&1 ||
			echo "read $i failed" >>loop.err
		i=$((i + 1))
	done
	echo "$i" >loop.count
) &
loop=$!
sleep 2
must sh -c "echo 1 >/sys/class/scsi_device/$h0/device/delete"
sleep 2
out=$(sg_turs -v "$r0" 2>&1)
echo "$out" | sed 's/^/    /'
# NOT READY: LOGICAL UNIT COMMUNICATION FAILURE while the gateway's SG
# device reports the loss (passthrough/sense.go), MANUAL INTERVENTION
# REQUIRED once the bridge has noticed the removal (bridge/hotdev.go).
echo "$out" | grep -qi 'Sense key: Not Ready' || fail "LUN 0 after removal: $out"
echo "$out" | grep -qi 'communication failure\|manual intervention' || fail "LUN 0 after removal: $out"
rig_note "LUN 0 after removal: $(echo "$out" | grep -i 'additional sense' | head -n 1)"
out=$(sg_raw -r 512 "$r0" 28 00 00 00 00 00 00 00 01 00 2>&1)
echo "$out" | grep -q 'Good' && fail "a read of the removed device came back GOOD"
sleep 2
touch stop
wait "$loop"
[ -s loop.err ] && fail "LUN 1 reads failed while LUN 0 went away: $(head -n 5 loop.err)"
rig_note "LUN 1: $(cat loop.count) reads of 128 KiB without an error across LUN 0's removal"
exit 0
