#!/bin/sh
# Pass-through of a real disk: sanbridge exports the virtio-scsi disk vscsi-hd0
# (selected by its WWN, as `sanbridge scan` shows it), and initiators reach
# the device itself: INQUIRY, serial and capacity are the disk's, and data
# written through iSCSI is on the local disk, read back through its own node.
# rig-timeout: 240
. "$RIG/guest/lib.sh"

IQN=iqn.2026-11.io.sanbridge:passthrough
cat >pt.hcl <<CFG
portal "lo" {
  listen = "127.0.0.1:3260"
}
target "$IQN" {
  lun "0" {
    device {
      wwn = "naa.6001405a1b2c3d4e"
    }
  }
}
CFG
rig_sanbridge_start "$PWD/pt.hcl"
trap 'rig_reset; rig_sanbridge_stop' EXIT

hctl=$(rig_hw_hctl virtio_scsi 0 0 0) || fail "vscsi-hd0 not found"
local=$(ls /sys/class/scsi_device/$hctl/device/block/) || fail "vscsi-hd0 has no block device"
step "vscsi-hd0 is $hctl (/dev/$local)"

url=iscsi://127.0.0.1:3260/$IQN/0
step "INQUIRY, unit serial and capacity through the gateway"
out=$(iscsi-inq "$url") || fail "iscsi-inq: $out"
echo "$out" | grep -q '^Vendor:QEMU' || fail "vendor is not the disk's: $out"
echo "$out" | grep -q '^Product:VIRTIO-SCSI HD' || fail "product is not the disk's: $out"
out=$(iscsi-inq -e 1 -c 128 "$url") || fail "iscsi-inq VPD 0x80: $out"
echo "$out" | grep -q 'VSCSI0000000001' || fail "serial is not the disk's: $out"
out=$(iscsi-readcapacity16 "$url") || fail "iscsi-readcapacity16: $out"
echo "$out" | grep -q 'Total size:134217728' || fail "capacity: $out"
echo "$out" | grep -q 'LOGICAL BLOCK LENGTH IN BYTES:512' || fail "block size: $out"

step "kernel initiator: write a pattern through iSCSI, read it from the local disk"
must rig_node "$IQN"
must rig_login "$IQN"
disk=$(rig_lun_disk "$IQN") || fail "no block device for the LUN"
rig_pattern pattern.bin 4096
must dd if=pattern.bin of="/dev/$disk" bs=65536 seek=16 oflag=direct conv=notrunc status=none
must rig_logout "$IQN"
must dd if="/dev/$local" of=local.bin bs=65536 skip=16 count=32 iflag=direct status=none
cmp pattern.bin local.bin || fail "the local disk does not hold what was written through iSCSI"

step "and the other way: written locally, read through iSCSI"
head -c 1048576 /dev/urandom >random.bin
must dd if=random.bin of="/dev/$local" bs=65536 seek=64 oflag=direct conv=notrunc status=none
must rig_login "$IQN"
disk=$(rig_lun_disk "$IQN") || fail "no block device after re-login"
must dd if="/dev/$disk" of=remote.bin bs=65536 skip=64 count=16 iflag=direct status=none
cmp random.bin remote.bin || fail "iSCSI does not return what is on the local disk"

must rig_logout "$IQN"
grep -q '"pass-through device opened"' "$RIG_SANBRIDGE_LOG" || fail "no pass-through log line"
exit 0
