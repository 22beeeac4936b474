#!/bin/sh
# Captures the guest's SCSI sysfs tree as test data for sysfs discovery:
# /sys/class/{scsi_generic,scsi_device,scsi_host,scsi_disk,scsi_tape,bsg,block}
# entries as relative symlinks, and for every device they resolve to, that
# directory and its ancestors up to /sys/devices with their attributes copied
# as regular files (vendor, model, rev, type, wwid, vpd_pg80, vpd_pg83, ...),
# their symlinks kept as symlinks, and block devices' queue/ limits.
# Writes /share/capture/sysfs.tar.gz (deploy/rig/vmtest.sh copies it out).
# rig-timeout: 120
. "$RIG/guest/lib.sh"

[ "${RIG_CAPTURE:-0}" = 1 ] ||
	skip "sgio/discover/testdata/rig-capture exists; VMTEST_CAPTURE=1 deploy/rig/vmtest.sh 01 makes a new capture"

out=$RIG_WORK/sys
mkdir -p "$out" /share/capture
dirs=$RIG_WORK/dirs
: >"$dirs"

for class in scsi_generic scsi_device scsi_host scsi_disk scsi_tape bsg block; do
	[ -d "/sys/class/$class" ] || continue
	mkdir -p "$out/class/$class"
	for e in /sys/class/"$class"/*; do
		[ -e "$e" ] || continue
		real=$(readlink -f "$e")
		ln -s "../../${real#/sys/}" "$out/class/$class/${e##*/}"
		d=$real
		while [ "$d" != /sys/devices ] && [ "$d" != /sys ] && [ -n "$d" ]; do
			echo "$d" >>"$dirs"
			d=${d%/*}
		done
		[ "$class" = block ] && [ -d "$real/queue" ] && echo "$real/queue" >>"$dirs"
	done
done

# Attributes never read: PCI config/resources/ROM/VPD (side effects or
# hardware access), write-only triggers, firmware crash dumps.
skip_attr() {
	case "$1" in
	config | rom | vpd | resource | resource[0-9]* | remove | rescan | reset | delete | scan | \
		new_id | remove_id | bind | unbind | uevent_seqnum | *crash* | dump_* | host_reset | \
		authorized* | reset_method) return 0 ;;
	esac
	return 1
}

# One cp per directory (a fork per attribute is slow under TCG). Reads that
# fail leave empty files, which are removed: a readable attribute is never
# empty (it holds at least a newline).
for d in $(sort -u "$dirs"); do
	dst="$out/${d#/sys/}"
	mkdir -p "$dst"
	set --
	for f in "$d"/* "$d"/.[!.]*; do
		n=${f##*/}
		if [ -L "$f" ]; then
			ln -sfn "$(readlink "$f")" "$dst/$n"
		elif [ -f "$f" ] && [ -r "$f" ] && ! skip_attr "$n"; then
			set -- "$@" "$f"
		fi
	done
	[ $# -gt 0 ] && cp "$@" "$dst/" 2>/dev/null
done
find "$out" -type f -size 0 -exec rm -f {} +
files=$(find "$out" -type f | wc -l)

{
	echo "Captured by deploy/rig/tests/01-sysfs-capture.sh in the sanbridge QEMU rig."
	echo "kernel: $(uname -r)"
	echo "hardware: deploy/rig/hardware.json (copied as hardware.json)"
	echo "Attributes are regular files holding what the kernel returned when read;"
	echo "attributes that could not be read (e.g. wwid of disks without a WWN, vpd pages"
	echo "the device does not have) are absent."
} >"$out/CAPTURE-README"
cp /share/hardware.json "$out/hardware.json"
cp "$RESULTS/inventory.txt" "$out/inventory.txt" 2>/dev/null || sb-inventory >"$out/inventory.txt"

tar -czf /share/capture/sysfs.tar.gz -C "$out" .
n=$(tar -tzf /share/capture/sysfs.tar.gz | wc -l)
rig_note "sysfs capture: $files attribute files, $n entries, $(wc -c </share/capture/sysfs.tar.gz) bytes"

# The capture must hold what discovery reads for each sg node.
for sg in /sys/class/scsi_generic/*; do
	[ -e "$sg" ] || continue
	dev=$(readlink -f "$sg/device")
	for a in type vendor model rev; do
		[ -f "$out/${dev#/sys/}/$a" ] || fail "capture lacks ${dev#/sys/}/$a"
	done
	[ -e "$out/class/scsi_generic/${sg##*/}/device/vendor" ] ||
		fail "capture's class/scsi_generic/${sg##*/}/device/vendor does not resolve"
done
