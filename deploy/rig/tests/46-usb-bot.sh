#!/bin/sh
# The USB Bulk-Only backend on the rig's QEMU usb-storage stick: `sanbridge
# scan --usb` lists it; data the kernel writes through usb-storage is read
# over BOT; sgio/bot's integration tests (INQUIRY, READ CAPACITY, a 1 MiB
# round trip, sense through REQUEST SENSE, a buffer larger than the data,
# cancellations in mid-transfer, a reset) run with usb-storage detached
# (the interface is usbfs's while open) and give the interface back; what
# they wrote is then read through usb-storage again. Last, 4 KiB and
# 64 KiB sequential reads over BOT against usb-storage's sg node on the
# same stick (reported, not judged: TCG timing swings with the host), and
# the backend's synchronous transfers against gousb's own, profiled.
# Then sanbridge serves the stick from a device { usb { } } LUN: iSCSI
# INQUIRY and READ CAPACITY are the stick's, the kernel initiator's ext4
# round trip keeps its checksums, and after sanbridge stops, usb-storage
# finds the same file system on the stick.
# rig-timeout: 900
. "$RIG/guest/lib.sh"

command -v bot.test >/dev/null || fail "bot.test missing (46-usb-bot.prep did not build it)"

step "sanbridge scan --usb"
# A test before this one may have just given the interface back to
# usb-storage (45-usb-cu serves it over BOT): wait until its SCSI scan has
# made the sg and block nodes again.
stick_has_nodes() {
	sanbridge scan --usb --json >usb.json 2>/dev/null &&
		jq -e '[.[] | select(.vendor_id == "46f4" and .bulk_only and .driver == "usb-storage" and (.luns[0].sg // "") != "" and (.luns[0].block // "") != "")] | length > 0' usb.json
}
rig_wait_for 30 stick_has_nodes || step "the stick has no sg/block node after 30 s"
sanbridge scan --usb | rig_show
must sanbridge scan --usb --json >usb.json
iface=$(jq -r '[.[] | select(.vendor_id == "46f4" and .bulk_only)][0].name // empty' usb.json)
[ -n "$iface" ] || fail "the QEMU stick (46f4, Bulk-Only) is not listed: $(cat usb.json)"
serial=$(jq -r --arg i "$iface" '.[] | select(.name == $i) | .serial' usb.json)
want=$(jq -r '.devices[] | select(.qemu == "usb-storage") | .usb_serial' /share/hardware.json)
expect_eq "$want" "$serial" "USB serial of $iface"
driver=$(jq -r --arg i "$iface" '.[] | select(.name == $i) | .driver' usb.json)
expect_eq usb-storage "$driver" "driver of $iface"
sg=$(jq -r --arg i "$iface" '.[] | select(.name == $i) | .luns[0].sg // empty' usb.json)
blk=$(jq -r --arg i "$iface" '.[] | select(.name == $i) | .luns[0].block // empty' usb.json)
[ -n "$sg" ] && [ -n "$blk" ] || fail "no sg or block node behind $iface: $(cat usb.json)"
step "stick: interface $iface, $sg, $blk"

# 512-byte LBAs: the integration tests use LBA 4096 (2 MiB in) as scratch;
# the kernel's pattern is at LBA 8192 (4 MiB), BOT's at LBA 16384 (8 MiB).
rig_pattern before.bin 1024
must dd if=before.bin of="$blk" bs=65536 seek=64 oflag=direct conv=notrunc status=none
head -c 1048576 /dev/urandom >after.bin

step "sgio/bot integration tests over BOT (usb-storage detached)"
SANBRIDGE_BOT_DEVICE=$iface SANBRIDGE_BOT_PATTERN="$PWD/before.bin@8192" SANBRIDGE_BOT_WRITE="$PWD/after.bin@16384" \
	bot.test -test.run Integration -test.v -test.timeout 5m >"$RESULTS/$RIG_TEST.integration.log" 2>&1
rc=$?
grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:' "$RESULTS/$RIG_TEST.integration.log" | grep -v writer.go
[ "$rc" = 0 ] || fail "sgio/bot integration tests failed (status $rc)"

step "given back to usb-storage: what BOT wrote is there"
node_back() { [ "$(readlink "/sys/bus/usb/devices/$iface/driver" | sed 's,.*/,,')" = usb-storage ] &&
	ls /sys/bus/usb/devices/"$iface"/host*/target*/*/block/* >/dev/null 2>&1 &&
	ls /sys/bus/usb/devices/"$iface"/host*/target*/*/scsi_generic/* >/dev/null 2>&1; }
# kernel_nodes: waits for usb-storage to take the stick back and sets blk2
# and sg2 to its (new) nodes.
kernel_nodes() {
	rig_wait_for 20 node_back || fail "usb-storage did not take $iface back"
	blk2=/dev/$(ls /sys/bus/usb/devices/"$iface"/host*/target*/*/block/ | head -n 1)
	sg2=/dev/$(ls /sys/bus/usb/devices/"$iface"/host*/target*/*/scsi_generic/ | head -n 1)
	rig_wait_for 10 test -b "$blk2" -a -c "$sg2" || fail "$blk2 or $sg2 did not appear"
}
kernel_nodes
must dd if="$blk2" of=found.bin bs=65536 skip=128 count=16 iflag=direct status=none
cmp after.bin found.bin || fail "data written over BOT is not on the stick seen through usb-storage"

step "4 KiB and 64 KiB sequential reads: usb-storage's sg node and BOT"
bench() { # bench DEVICE BS COUNT: "IOPS MB/s" of sanbridge bench
	sanbridge bench --bs "$2" --count "$3" "$1" 2>&1 | tee -a bench.log |
		sed -n 's/.*: \([0-9]*\) IOPS, \([0-9.]*\) MB\/s.*/\1 \2/p'
}
for round in 1 2 3; do
	sg4=$(bench "$sg2" 4096 1000)
	bot4=$(bench "usb:$iface" 4096 1000)
	kernel_nodes
	sg64=$(bench "$sg2" 65536 400)
	bot64=$(bench "usb:$iface" 65536 400)
	kernel_nodes
	[ -n "$sg4" ] && [ -n "$bot4" ] && [ -n "$sg64" ] && [ -n "$bot64" ] || { cat bench.log; fail "sanbridge bench failed"; }
	line="round $round: 4 KiB QD1 IOPS sg ${sg4% *} bot ${bot4% *}; 64 KiB MB/s sg ${sg64#* } bot ${bot64#* }"
	echo "$line" | rig_show
done
cp bench.log "$RESULTS/$RIG_TEST.bench.log"
rig_note "$line"

# The backend's synchronous transfers against gousb's ReadContext/
# WriteContext, in one process, with a CPU profile (go tool pprof on the
# host reads $RESULTS/46-usb-bot.cpu.pprof).
step "BenchmarkIntegration: synchronous libusb transfers vs gousb's, QD1 reads"
SANBRIDGE_BOT_DEVICE=$iface bot.test -test.run '^$' -test.bench Integration -test.benchtime 3s \
	-test.cpuprofile "$RESULTS/$RIG_TEST.cpu.pprof" >gobench.log 2>&1 || { cat gobench.log; fail "BenchmarkIntegration failed"; }
cp gobench.log "$RESULTS/$RIG_TEST.gobench.log"
grep '^Benchmark' gobench.log | rig_show
rig_note "$(awk '/^Benchmark/ { sub(/^BenchmarkIntegration\//, "", $1); sub(/-[0-9]+$/, "", $1); printf "%s%s %s MB/s %s IOPS", sep, $1, $5, $7; sep = "; " }' gobench.log)"
kernel_nodes

step "served through iSCSI from the Bulk-Only backend (device { usb { } })"
IQN=iqn.2026-11.io.sanbridge:usb
cat >usb.hcl <<CFG
portal "lo" {
  listen = "127.0.0.1:3260"
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
trap 'rig_reset; rig_sanbridge_stop' EXIT
expect_eq usbfs "$(readlink "/sys/bus/usb/devices/$iface/driver" | sed 's,.*/,,')" "driver of $iface while sanbridge serves it"
url=iscsi://127.0.0.1:3260/$IQN/0
out=$(iscsi-inq "$url") || fail "iscsi-inq: $out"
echo "$out" | grep -q '^Vendor:QEMU' || fail "vendor is not the stick's: $out"
echo "$out" | grep -q '^Product:QEMU HARDDISK' || fail "product is not the stick's: $out"
out=$(iscsi-readcapacity16 "$url") || fail "iscsi-readcapacity16: $out"
size=$(jq -r '.devices[] | select(.qemu == "usb-storage") | .size_bytes' /share/hardware.json)
echo "$out" | grep -q "Total size:$size" || fail "capacity is not the stick's $size: $out"

step "kernel initiator: ext4 on the stick through iSCSI"
must rig_node "$IQN"
must rig_login "$IQN"
disk=$(rig_lun_disk "$IQN") || fail "no block device for the LUN"
# The LUN takes at most 1 MiB per command (the Bulk-Only backend's
# limit). The Block Limits VPD page should tell the initiator so; where it
# does not (the stick's own page says "no limit" and the gateway passes it
# on), Linux sends up to max_sectors_kb (1280 KiB) and the gateway refuses
# the rest: say so, and hold the initiator to the limit by hand.
sgl=$(rig_lun_sg "$IQN") || fail "no sg node for the LUN"
mtl=$(sg_vpd -p bl "/dev/$sgl" 2>/dev/null | sed -n 's/.*Maximum transfer length: \([0-9]*\).*/\1/p')
if [ -z "$mtl" ] || [ "$mtl" = 0 ] || [ "$mtl" -gt 2048 ]; then
	rig_note "Block Limits VPD of the BOT LUN gives maximum transfer length '${mtl:-none}' (blocks), not the backend's 1 MiB; max_sectors_kb set to 1024 by hand"
fi
echo 1024 >"/sys/block/$disk/queue/max_sectors_kb" || fail "cannot set max_sectors_kb of $disk"
must mkfs.ext4 -q -F -E nodiscard "/dev/$disk"
mkdir -p /mnt/rig
must mount -t ext4 "/dev/$disk" /mnt/rig
rig_tree /mnt/rig/tree 40
must sync
rig_sums /mnt/rig >before.sums
must umount /mnt/rig
must rig_logout "$IQN"
must rig_login "$IQN"
disk=$(rig_lun_disk "$IQN") || fail "no block device after the second login"
echo 1024 >"/sys/block/$disk/queue/max_sectors_kb" || fail "cannot set max_sectors_kb of $disk"
e2fsck -f -n "/dev/$disk" >/dev/null || fail "fsck -n through iSCSI is not clean"
must mount -t ext4 -o ro "/dev/$disk" /mnt/rig
rig_sums /mnt/rig >iscsi.sums
must umount /mnt/rig
if ! cmp -s before.sums iscsi.sums; then
	diff before.sums iscsi.sums | head -n 10
	fail "checksums differ after logout/login"
fi
must rig_logout "$IQN"
rig_sanbridge_stop
grep -q '"pass-through device opened"' "$RIG_SANBRIDGE_LOG" || fail "no pass-through log line"

step "given back to usb-storage: the file system is on the stick"
kernel_nodes
e2fsck -f -n "$blk2" >/dev/null || fail "fsck -n of $blk2 (usb-storage) is not clean"
must mount -t ext4 -o ro "$blk2" /mnt/rig
rig_sums /mnt/rig >local.sums
must umount /mnt/rig
cmp -s before.sums local.sums || fail "the stick seen through usb-storage does not hold what was written through iSCSI"
rig_note "ext4 through iSCSI over BOT: $(wc -l <local.sums) files equal through usb-storage afterwards"
exit 0
