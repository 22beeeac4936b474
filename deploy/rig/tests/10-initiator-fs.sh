#!/bin/sh
# The Linux kernel initiator against the target over 127.0.0.1: SendTargets
# discovery, login without CHAP, the LUN appears as a block device; mkfs.ext4,
# a tree of files, sync, checksums; logout, login again, fsck -n clean,
# checksums equal.
# rig-targets: each
# rig-timeout: 300
. "$RIG/guest/lib.sh"

rig_target_start
trap 'rig_reset; rig_target_stop' EXIT

step "discovery"
rig_discover >discovery.txt 2>&1 || { cat discovery.txt; fail "SendTargets discovery failed"; }
cat discovery.txt
grep -q "^$RIG_PORTAL,[0-9]* $RIG_IQN_OPEN\$" discovery.txt ||
	fail "discovery does not list $RIG_IQN_OPEN at $RIG_PORTAL"

step "login $RIG_IQN_OPEN"
must rig_login "$RIG_IQN_OPEN"
disk=$(rig_lun_disk "$RIG_IQN_OPEN") || fail "no block device for LUN $RIG_LUN"
size=$(($(cat /sys/block/$disk/size) * 512))
step "LUN $RIG_LUN is /dev/$disk, $size bytes"
expect_eq "$RIG_LUN_SIZE" "$size" "LUN size"

step "mkfs.ext4"
must mkfs.ext4 -q -F -E nodiscard "/dev/$disk"
mkdir -p /mnt/rig
must mount -t ext4 "/dev/$disk" /mnt/rig
step "write a tree of files"
rig_tree /mnt/rig/tree 120
must sync
rig_sums /mnt/rig >before.sums
step "$(wc -l <before.sums) files, $(du -sk /mnt/rig | cut -f1) KiB"
must umount /mnt/rig

step "logout, login"
must rig_logout "$RIG_IQN_OPEN"
[ ! -e "/dev/$disk" ] || rig_wait_for 10 test ! -e "/dev/$disk" || fail "/dev/$disk still present after logout"
must rig_login "$RIG_IQN_OPEN"
disk=$(rig_lun_disk "$RIG_IQN_OPEN") || fail "no block device after the second login"
echo 3 >/proc/sys/vm/drop_caches

step "fsck -n /dev/$disk"
e2fsck -f -n "/dev/$disk" || fail "fsck -n is not clean (status $?)"
must mount -t ext4 -o ro "/dev/$disk" /mnt/rig
rig_sums /mnt/rig >after.sums
must umount /mnt/rig
if ! cmp -s before.sums after.sums; then
	diff before.sums after.sums | head -n 20
	fail "checksums differ after logout/login"
fi
rig_note "ext4 on /dev/$disk: $(wc -l <after.sums) files equal after re-login, fsck clean"
