#!/bin/sh
# A truthful device (issue 12), through sanbridge pass-through:
# (a) a scsi_debug disk, two sessions under two initiator names:
#     libiscsi's iSCSIResiduals family must pass (residuals from the CDB's
#     own transfer length), ExtendedCopy.Simple must not fail (its large
#     WRITE(16) is split for the path), the Block Limits page must not
#     promise more than the path carries, and GET LBA STATUS beyond the end
#     is answered by the gateway (scsi_debug with lbpu=1 oopses Linux 6.1 on
#     it: run last, so that a crash shows as this test's failure only);
# (b) the megasas CD-ROM through the kernel initiator: its type, TEST UNIT
#     READY and PREVENT ALLOW MEDIUM REMOVAL (which megasas fails without a
#     data buffer: the gateway's quirk entry), READ CAPACITY, READ TOC, and
#     its whole medium read back with the checksum the host wrote
#     (47-truthful.prep), the same as read locally.
# rig-timeout: 900
. "$RIG/guest/lib.sh"

IQN=iqn.2026-11.io.sanbridge:truthful
INIT_A=iqn.2026-11.io.sanbridge:rig-host-a
INIT_B=iqn.2026-11.io.sanbridge:rig-host-b
url=iscsi://127.0.0.1:3260/$IQN/0

# cu NAME TEST...: runs the iscsi-test-cu tests with two sessions into
# NAME.log and NAME.txt ("SUITE.TEST pass|skip|fail" lines).
cu() {
	_name=$1
	shift
	: >"$_name.log"
	for _t in "$@"; do
		timeout 300 iscsi-test-cu -d -t "$_t" -i "$INIT_A" -I "$INIT_B" "$url" "$url" >>"$_name.log" 2>&1 </dev/null
	done
	cp "$_name.log" "$RESULTS/$RIG_TEST.$_name.cu.log"
	rig_cu_results "$_name.log" >"$_name.txt"
	rig_cu_check "$_name.log" "$_name.txt"
	sed 's/^/    /' "$_name.txt"
}

# ---- (a) a scsi_debug disk ---------------------------------------------------

hctl=$(rig_hw_hctl scsi_debug 0 0 1) || fail "no scsi_debug disk at target 0 LUN 1 (sdebug-hd1)"
sg=/dev/$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic")
step "scsi_debug disk sdebug-hd1 is $hctl ($sg)"
# The pending REPORTED LUNS DATA HAS CHANGED after boot (RIG.md).
sg_turs "$sg" >/dev/null 2>&1
must sg_turs "$sg"

rig_passthrough_config "$IQN" "$sg" >disk.hcl
rig_sanbridge_start "$PWD/disk.hcl"
trap 'rig_reset; rig_sanbridge_stop' EXIT

step "iSCSIResiduals through the gateway"
cu residuals iSCSI.iSCSIResiduals
# scsi_debug in Linux 6.1 has no WRITE AND VERIFY: those three skip.
n=$(grep -c ' pass$' residuals.txt)
grep ' fail$' residuals.txt && fail "iSCSIResiduals: a test failed"
[ "$n" -ge 7 ] || fail "iSCSIResiduals: $n tests passed, want the seven READ and WRITE ones at least"
rig_note "iSCSIResiduals: $n passed, $(grep -c ' skip$' residuals.txt) skipped (not implemented by the device)"

step "ExtendedCopy.Simple through the gateway"
cu xcopy SCSI.ExtendedCopy.Simple
grep -q ' fail$' xcopy.txt && fail "ExtendedCopy.Simple failed"
rig_note "ExtendedCopy.Simple: $(cut -d' ' -f2 xcopy.txt)"

step "Block Limits within the path"
path=$(grep '"pass-through device opened"' "$RIG_SANBRIDGE_LOG" | sed -n 's/.*"max_transfer":\([0-9]*\).*/\1/p' | head -n 1)
[ -n "$path" ] || fail "no max_transfer in the log"
bl=$(iscsi-inq -e 1 -c 176 "$url") || fail "iscsi-inq VPD B0: $bl"
echo "$bl" | sed 's/^/    /'
maxlen=$(echo "$bl" | sed -n 's/^maximum transfer length:\([0-9]*\)$/\1/p')
bs=$(iscsi-readcapacity16 "$url" | sed -n 's/.*LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p')
[ -n "$maxlen" ] && [ -n "$bs" ] || fail "no MAXIMUM TRANSFER LENGTH or block length"
[ "$maxlen" -gt 0 ] && [ $((maxlen * bs)) -le "$path" ] ||
	fail "MAXIMUM TRANSFER LENGTH $maxlen blocks of $bs bytes exceeds the path's $path bytes"
rig_note "path $path bytes; Block Limits says $maxlen blocks of $bs"

# ---- (b) the megasas CD-ROM --------------------------------------------------

rig_sanbridge_stop
trap 'rig_reset' EXIT
cdh=$(rig_hw_hctl megaraid_sas 0 2 0) || fail "no megasas CD-ROM (sas-cd0) at target 2"
cdsg=/dev/$(ls "/sys/class/scsi_device/$cdh/device/scsi_generic")
cdsr=/dev/$(ls "/sys/class/scsi_device/$cdh/device/block")
step "CD-ROM sas-cd0 is $cdh ($cdsg, $cdsr)"
want=$(cat /share/bin/47-truthful.cd.md5) || fail "no checksum from 47-truthful.prep"
# The quirk (passthrough/quirks.go): behind megasas, commands without data
# (TEST UNIT READY, PREVENT ALLOW MEDIUM REMOVAL, START STOP UNIT) fail with
# HARDWARE ERROR although the drive is ready; with a data-in buffer they
# pass.
sg_turs "$cdsg" >/dev/null 2>&1 && rig_note "the local TEST UNIT READY passes: the quirk is gone"
must sg_raw -r 512 "$cdsg" 00 00 00 00 00 00
# sr's capacity is a placeholder until the medium is read (README): read
# the medium's 2048 blocks.
here=$(dd if="$cdsr" bs=2048 count=2048 iflag=direct status=none | md5sum | cut -d' ' -f1)
[ "$here" = "$want" ] || fail "the CD-ROM read locally has md5 $here, the host wrote $want"

CDIQN=iqn.2026-11.io.sanbridge:cdrom
cat >cd.hcl <<CFG
portal "lo" {
  listen = "$RIG_PORTAL"
}
target "$CDIQN" {
  lun "0" {
    device {
      path         = "$cdsg"
      allow_in_use = true
    }
  }
}
CFG
rig_sanbridge_start "$PWD/cd.hcl"
trap 'rig_reset; rig_sanbridge_stop' EXIT
out=$(iscsi-inq "iscsi://127.0.0.1:3260/$CDIQN/0") || fail "iscsi-inq: $out"
echo "$out" | grep -q '^Vendor:HL-DT-ST' || fail "vendor is not the drive's: $out"
echo "$out" | grep -q 'Peripheral Device Type:MMC' || fail "not a CD/DVD device: $(echo "$out" | head -n 3)"

step "kernel initiator: READ CAPACITY, READ TOC, the medium"
must rig_iscsid_start
must rig_node "$CDIQN"
must rig_login "$CDIQN"
rsg=$(rig_lun_sg "$CDIQN" 0) || fail "no sg device for the CD-ROM LUN"
rsr=$(rig_lun_disk "$CDIQN" 0) || fail "no sr device for the CD-ROM LUN"
grep '"device probed"' "$RIG_SANBRIDGE_LOG" | grep -q '"quirks":1' || fail "the CD-ROM's quirk was not applied"
must sg_turs "/dev/$rsg"
must sg_prevent --allow "/dev/$rsg"
cap=$(sg_readcap "/dev/$rsg" 2>&1) || fail "READ CAPACITY: $cap"
echo "$cap" | sed 's/^/    /'
echo "$cap" | grep -q 'Logical block length=2048' || fail "block length: $cap"
echo "$cap" | grep -q 'Last LBA=2047 ' || fail "capacity: $cap"
toc=$(sg_raw -r 804 "/dev/$rsg" 43 00 00 00 00 00 01 03 24 00 2>&1) || fail "READ TOC: $toc"
echo "$toc" | grep -q 'SCSI Status: Good\|Received' || fail "READ TOC: $toc"
remote=$(dd if="/dev/$rsr" bs=2048 count=2048 iflag=direct status=none | md5sum | cut -d' ' -f1)
[ "$remote" = "$want" ] || fail "the CD-ROM read through the gateway has md5 $remote, the medium $want"
must rig_logout "$CDIQN"
rig_sanbridge_stop

# ---- (a, last) GET LBA STATUS beyond the end -------------------------------

step "GET LBA STATUS beyond the end, answered by the gateway"
rig_sanbridge_start "$PWD/disk.hcl"
cu beyond SCSI.GetLBAStatus.BeyondEol
grep -q ' fail$' beyond.txt && fail "GetLBAStatus.BeyondEol failed through the gateway"
kill -0 "$RIG_TARGET_PID" 2>/dev/null || fail "sanbridge died"
must sg_turs "$sg"
exit 0
