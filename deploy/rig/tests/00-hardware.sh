#!/bin/sh
# The guest sees exactly the hardware of deploy/rig/hardware.json (QEMU's
# megasas/virtio-scsi/USB devices and scsi_debug's disks and tape), with the
# configured identities, and SG_IO works on every sg node. Prints the
# /sys/class/scsi_generic inventory on the console.
# rig-timeout: 120
. "$RIG/guest/lib.sh"

step "inventory"
sb-inventory >"$RESULTS/inventory.txt"
sb-inventory -k >"$RESULTS/inventory.keys"
{
	echo "/sys/class/scsi_generic inventory of the guest:"
	cat "$RESULTS/inventory.txt"
} | rig_show

trim() { sed 's/[[:space:]]*$//'; }

errors=0
bad() {
	echo "MISMATCH $id: $*"
	errors=$((errors + 1))
}

want=0
tab=$(printf '\t')
while IFS=$tab read -r id drv hidx tgt lun ptype vendor product rev serial wwn size lbs; do
	want=$((want + 1))
	rig_hw_host "$drv" "$hidx" >/dev/null || { bad "no SCSI host #$hidx of driver $drv"; continue; }
	hctl=$(rig_hw_hctl "$drv" "$hidx" "$tgt" "$lun") || { bad "no device at target $tgt lun $lun of host #$hidx of $drv"; continue; }
	dev=$(readlink -f "/sys/class/scsi_device/$hctl/device")
	echo "$id -> $hctl"
	[ "$(cat "$dev/type")" = "$ptype" ] || bad "type $(cat "$dev/type"), want $ptype"
	[ "$(trim <"$dev/vendor")" = "$vendor" ] || bad "vendor '$(trim <"$dev/vendor")', want '$vendor'"
	[ "$(trim <"$dev/model")" = "$product" ] || bad "product '$(trim <"$dev/model")', want '$product'"
	[ "$(trim <"$dev/rev")" = "$rev" ] || bad "revision '$(trim <"$dev/rev")', want '$rev'"
	if [ "$serial" != - ]; then
		got=$(tail -c +5 "$dev/vpd_pg80" 2>/dev/null | tr -d '\000' | trim)
		[ "$got" = "$serial" ] || bad "VPD 0x80 serial '$got', want '$serial'"
	fi
	if [ "$wwn" != - ]; then
		got=$(cat "$dev/wwid" 2>/dev/null)
		[ "$got" = "naa.${wwn#0x}" ] || bad "wwid '$got', want 'naa.${wwn#0x}'"
	fi
	sg=$(ls "$dev/scsi_generic" 2>/dev/null)
	[ -n "$sg" ] || bad "no sg node"
	case "$ptype" in
	0)
		blk=$(ls "$dev/block" 2>/dev/null)
		[ -n "$blk" ] || { bad "no block device"; continue; }
		got=$(($(cat "/sys/block/$blk/size") * 512))
		[ "$got" = "$size" ] || bad "size $got, want $size"
		got=$(cat "/sys/block/$blk/queue/logical_block_size")
		[ "$got" = "$lbs" ] || bad "logical block size $got, want $lbs"
		;;
	1)
		ls "$dev/scsi_tape" 2>/dev/null | grep -qx 'st[0-9]*' || bad "no st tape node"
		;;
	5)
		ls "$dev/block" 2>/dev/null | grep -q '^sr' || bad "no sr node"
		;;
	esac
	# SG_IO works: INQUIRY through the sg node returns the same vendor.
	if [ -n "$sg" ]; then
		got=$(sg_inq "/dev/$sg" 2>&1 | sed -n 's/^ *Vendor identification: *//p' | trim)
		[ "$got" = "$vendor" ] || bad "sg_inq /dev/$sg vendor '$got', want '$vendor'"
	fi
done <"/share/hardware.tsv"

have=$(ls /sys/class/scsi_device | wc -l)
[ "$have" = "$want" ] || bad "guest has $have SCSI devices, hardware.json lists $want"
rig_note "$want devices checked, $errors mismatches"
[ "$errors" = 0 ] || fail "$errors mismatches between the guest and hardware.json"
