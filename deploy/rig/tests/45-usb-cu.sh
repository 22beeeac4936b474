#!/bin/sh
# The USB stick served over the Bulk-Only backend (issue 14), judged
# against the same stick through usb-storage's sg node:
# (1) libiscsi's iscsi-test-cu, a handful of SCSI families, on the raw sg
#     node and through sanbridge (device { usb { } }): every test that
#     passes raw must pass over BOT (skips reported);
# (2) removal under I/O: the USB device deauthorized while the kernel
#     initiator reads: the read fails, the LUN answers NOT READY (sg_turs
#     status 2, not GOOD, not ILLEGAL REQUEST) and INQUIRY with peripheral
#     qualifier 1; authorized again: the LUN reports a unit attention,
#     then is ready, with the data written before the removal.
# rig-timeout: 900
. "$RIG/guest/lib.sh"

FAMILIES="Inquiry ReadCapacity10 ReadCapacity16 TestUnitReady ModeSense6
ReportSupportedOpcodes Read10 Read16 Write10 Write16"

must sanbridge scan --usb --json >usb.json
iface=$(jq -r '[.[] | select(.vendor_id == "46f4" and .bulk_only)][0].name // empty' usb.json)
[ -n "$iface" ] || fail "the QEMU stick (46f4, Bulk-Only) is not listed: $(cat usb.json)"
serial=$(jq -r --arg i "$iface" '.[] | select(.name == $i) | .serial' usb.json)
sg=$(jq -r --arg i "$iface" '.[] | select(.name == $i) | .luns[0].sg // empty' usb.json)
[ -n "$sg" ] || fail "no sg node behind $iface: $(cat usb.json)"
usbdev=/sys/bus/usb/devices/${iface%%:*}
[ -w "$usbdev/authorized" ] || fail "$usbdev/authorized is not writable"
step "stick: interface $iface, serial $serial, $sg"

# cu NAME ARGS...: every family of $FAMILIES with iscsi-test-cu ARGS into
# NAME.log, parsed into NAME.txt.
cu() {
	_name=$1
	shift
	: >"$_name.log"
	for _f in $FAMILIES; do
		timeout 180 iscsi-test-cu -d -t "SCSI.$_f" "$@" >>"$_name.log" 2>&1 </dev/null
		echo "$_name SCSI.$_f status $?"
	done
	cp "$_name.log" "$RESULTS/$RIG_TEST.$_name.cu.log"
	rig_cu_results "$_name.log" >"$_name.txt"
	rig_cu_check "$_name.log" "$_name.txt"
}
counts() { # counts NAME: "P passed, S skipped, F failed"
	echo "$(grep -c ' pass$' "$1.txt") passed, $(grep -c ' skip$' "$1.txt") skipped, $(grep -c ' fail$' "$1.txt") failed"
}

step "(1a) iscsi-test-cu on usb-storage's $sg"
sg_turs "$sg" >/dev/null 2>&1
must sg_turs "$sg"
cu sg "$sg"

IQN=iqn.2026-11.io.sanbridge:usb-cu
cat >usb.hcl <<CFG
portal "lo" {
  listen = "$RIG_PORTAL"
}
target "$IQN" {
  lun "0" {
    device {
      usb {
        vid    = "46f4"
        pid    = "0001"
        serial = "$serial"
      }
    }
  }
}
CFG
rig_sanbridge_start "$PWD/usb.hcl"
trap 'rig_reset; echo 1 >"$usbdev/authorized"; rig_sanbridge_stop' EXIT
url=iscsi://127.0.0.1:3260/$IQN/0
step "(1b) iscsi-test-cu through sanbridge over BOT"
cu bot "$url"

awk 'NR == FNR { b[$1] = $2; next } { print $1, $2, ($1 in b ? b[$1] : "-") }' bot.txt sg.txt >table.txt
cp table.txt "$RESULTS/$RIG_TEST.table.txt"
rig_note "usb-storage sg: $(counts sg); sanbridge over BOT: $(counts bot)"
worse=$(awk '$2 == "pass" && $3 != "pass" && $3 != "skip" { printf " %s(%s)", $1, $3 }' table.txt)
skips=$(awk '$2 == "pass" && $3 == "skip" { printf " %s", $1 }' table.txt)
better=$(awk '$2 != "pass" && $3 == "pass" { printf " %s(sg:%s)", $1, $2 }' table.txt)
[ -z "$skips" ] || rig_note "pass through sg, skipped over BOT:$skips"
[ -z "$better" ] || rig_note "pass over BOT, not through sg:$better"
[ -z "$worse" ] || fail "pass through usb-storage's sg node, not over BOT:$worse"

step "(2) removal under I/O"
must rig_node "$IQN"
must rig_login "$IQN"
disk=$(rig_lun_disk "$IQN") || fail "no block device for the LUN"
lsg=/dev/$(rig_lun_sg "$IQN") || fail "no sg node for the LUN"
echo 1024 >"/sys/block/$disk/queue/max_sectors_kb" || fail "cannot set max_sectors_kb of $disk"
rig_pattern pat.bin 2048
must dd if=pat.bin of="/dev/$disk" bs=65536 seek=32 oflag=direct conv=notrunc status=none
dd if="/dev/$disk" of=/dev/null bs=65536 iflag=direct count=100000 2>dd.err &
ddpid=$!
sleep 2
kill -0 "$ddpid" 2>/dev/null || fail "the reader ended before the removal: $(cat dd.err)"
step "deauthorizing $usbdev while dd reads /dev/$disk"
echo 0 >"$usbdev/authorized" || fail "cannot deauthorize $usbdev"
rig_wait_for 60 sh -c "! kill -0 $ddpid" || fail "the reader goes on 60 s after the removal"
wait "$ddpid"
ddrc=$?
[ "$ddrc" != 0 ] || fail "the read went on without an error after the removal"
echo "dd: status $ddrc: $(tail -n 2 dd.err | tr '\n' ' ')"
sg_turs -v "$lsg" >turs.out 2>&1
rc=$?
cat turs.out
# sg3_utils exit statuses: 0 good, 2 NOT READY, 5 ILLEGAL REQUEST.
expect_eq 2 "$rc" "TEST UNIT READY status category while the device is gone (sg_turs)"
sg_inq "$lsg" >inq.out 2>&1 || fail "INQUIRY while gone: $(cat inq.out)"
grep -q 'PQual=1' inq.out || fail "INQUIRY while gone does not say peripheral qualifier 1: $(head -n 3 inq.out)"
rig_note "removed under I/O: dd status $ddrc; TEST UNIT READY: $(grep -i 'sense' turs.out | head -n 1)"

step "authorizing $usbdev again"
echo 1 >"$usbdev/authorized" || fail "cannot authorize $usbdev"
n=0 ua=0
while :; do
	sg_turs "$lsg" >/dev/null 2>&1
	case $? in
	0) break ;;
	6) ua=1 ;; # UNIT ATTENTION (the initiator's own polling may take it first)
	esac
	n=$((n + 1))
	[ "$n" -ge 60 ] && fail "the LUN is not ready 30 s after the device came back: $(sg_turs -v "$lsg" 2>&1 | tail -n 2)"
	sleep 0.5
done
step "ready again after $n tries (unit attention seen: $ua)"
disk=$(rig_lun_disk "$IQN") || fail "no block device for the LUN after the return"
must dd if="/dev/$disk" of=back.bin bs=65536 skip=32 count=16 iflag=direct status=none
cmp pat.bin back.bin || fail "the data written before the removal differs after the return"
grep -q 'USB device is back' "$RIG_SANBRIDGE_LOG" || fail "no re-attach in the sanbridge log"
rig_note "back after deauthorize/authorize: ready after $n TEST UNIT READY, data equal"
must rig_logout "$IQN"
exit 0
