#!/bin/sh
# Raw O_DIRECT I/O through the kernel initiator: a known pattern (every 512-byte
# sector names its own number) written with dd oflag=direct at several block
# sizes and offsets, read back with iflag=direct after logout/login, compared
# byte for byte; plus random data at the end of the LUN.
# rig-targets: each
# rig-timeout: 240
. "$RIG/guest/lib.sh"

rig_target_start
trap 'rig_reset; rig_target_stop' EXIT

must rig_node "$RIG_IQN_OPEN"
must rig_login "$RIG_IQN_OPEN"
disk=$(rig_lun_disk "$RIG_IQN_OPEN") || fail "no block device"
sectors=$(cat /sys/block/$disk/size)
step "/dev/$disk: $sectors sectors"

step "pattern: 4 MiB"
rig_pattern pattern.bin 8192
head -c 4194304 /dev/urandom >random.bin
head -c 262144 pattern.bin >small.bin
end=$((sectors * 512))

# Each I/O is a round trip through an emulated CPU: small block sizes get
# small regions.
# write BS OFFSET FILE
write() {
	must dd if="$3" of="/dev/$disk" bs="$1" seek=$(($2 / $1)) oflag=direct conv=notrunc status=none
}
# check BS OFFSET FILE [LENGTH]: reads LENGTH bytes (default: the file's
# size) at OFFSET and compares them with the start of FILE.
check() {
	_len=${4:-$(wc -c <"$3")}
	must dd if="/dev/$disk" of=readback.bin bs="$1" skip=$(($2 / $1)) count=$((_len / $1)) iflag=direct status=none
	head -c "$_len" "$3" | cmp - readback.bin || fail "read back of $3 at byte $2 with bs=$1 differs"
}

step "write: pattern at 0 (bs=1M) and 20 MiB (bs=64k), 256 KiB at 40 MiB (bs=4k), random at the end (bs=128k)"
write 1048576 0 pattern.bin
write 65536 20971520 pattern.bin
write 4096 41943040 small.bin
write 131072 $((end - 4194304)) random.bin
check 1048576 0 pattern.bin
check 262144 20971520 pattern.bin
check 4096 41943040 small.bin
check 131072 $((end - 4194304)) random.bin

step "logout, login, read back with other block sizes"
must rig_logout "$RIG_IQN_OPEN"
must rig_login "$RIG_IQN_OPEN"
disk=$(rig_lun_disk "$RIG_IQN_OPEN") || fail "no block device after re-login"
check 65536 0 pattern.bin
check 4096 20971520 pattern.bin 524288
check 1048576 20971520 pattern.bin
check 512 41943040 small.bin 131072
check 524288 $((end - 4194304)) random.bin

step "read at the end of the LUN returns nothing"
n=$(dd if="/dev/$disk" bs=512 skip="$sectors" count=1 iflag=direct 2>/dev/null | wc -c)
expect_eq 0 "$n" "bytes read at the end"
rig_note "O_DIRECT pattern write/read-back equal at bs 512..1M across a re-login"
