#!/bin/sh
# Auto-export with the appliance's default configuration
# (/etc/sanbridge/sanbridge.hcl: one auto_export block, no lun block):
# every device `sanbridge scan` lists as exportable (the megasas disks and
# CD-ROM, the virtio-scsi disk, the USB stick through its sg node, the
# scsi_debug disks and tape) is a LUN of the appliance target, and each LUN
# the kernel initiator attaches answers INQUIRY with its own device's
# vendor, product and unit serial number; `sanbridge check` says the same before. The LUN
# numbers are kept by device identity in the state directory: after a
# restart, and after the sg nodes were renumbered (a scsi_debug disk
# deleted while the gateway is down, a new scsi_debug host taking its sg
# node, the disk scanned back under another node), every device has its
# LUN again and the new host's disks get new numbers.
# rig-timeout: 420
. "$RIG/guest/lib.sh"

CFG=/etc/sanbridge/sanbridge.hcl
IQN=iqn.2026-11.io.sanbridge:appliance
STATE=$PWD/state
SOCK=$PWD/admin.sock
SD=/sys/bus/pseudo/drivers/scsi_debug
[ -f "$CFG" ] || fail "no $CFG in the image"
grep -q '^auto_export ' "$CFG" || fail "$CFG has no auto_export block"

hctl=$(rig_hw_hctl scsi_debug 0 0 1) || fail "no scsi_debug disk at target 0 LUN 1 (sdebug-hd1)"
shost=${hctl%%:*}
added=0
cleanup() {
	rig_reset
	rig_sanbridge_stop
	[ -e "/sys/class/scsi_device/$hctl" ] || echo '- - -' >"/sys/class/scsi_host/host$shost/scan"
	[ "$added" = 1 ] && echo -1 >"$SD/add_host"
}
trap cleanup EXIT

# lun_map: "identity LUN" lines of the running gateway's auto-exported
# logical units, sorted.
lun_map() {
	sanbridge status --json --admin "$SOCK" >status.json || fail "sanbridge status"
	jq -r --arg t "$IQN" '(.lus | map({(.backend): .identity}) | add) as $id |
		.targets[] | select(.name == $t) | .luns[] | "\($id[.backend]) \(.lun)"' status.json | LC_ALL=C sort
}

start() {
	rig_sanbridge_start "$CFG" --state-dir "$STATE" --admin-socket "$SOCK"
	rig_wait_for 20 test -S "$SOCK" || fail "no admin socket"
}

step "what scan says is exportable"
sanbridge scan --json >scan.json || fail "sanbridge scan"
want=$(jq '[.[] | select(.sg != null and .sg != "")] | length' scan.json)
[ "$want" -ge 8 ] || fail "scan lists only $want exportable devices: $(jq -c '[.[] | .hctl]' scan.json)"
out=$(sanbridge check --config "$CFG" --state-dir "$STATE" 2>&1) || fail "sanbridge check: $out"
echo "$out"
echo "$out" | grep -q "exports $want device(s)" || fail "sanbridge check does not announce $want devices: $out"

step "serve the appliance config: one LUN per device"
mkdir -p "$STATE"
start
lun_map >map1.txt
cat map1.txt
expect_eq "$want" "$(wc -l <map1.txt)" "auto-exported LUNs"
expect_eq "$want" "$(jq '[.lus[] | select(.state == "present" and .auto_export == "local")] | length' status.json)" "present auto-exported logical units"

step "each LUN answers with its device's identity (kernel initiator, sg_inq)"
jq -r --arg t "$IQN" '(.lus | map({(.backend): .}) | add) as $lu |
	.targets[] | select(.name == $t) | .luns[] | "\(.lun) \($lu[.backend].hctl)"' status.json >luns.txt
must rig_node "$IQN"
must rig_login "$IQN" >/dev/null
sess=$(rig_session_dir "$IQN") || fail "no session to $IQN"
types=
while read -r lun dh; do
	sg=$(rig_session_sg "$sess" "$lun") || fail "the kernel attached no LUN $lun ($dh)"
	inq=$(sg_inq "/dev/$sg" 2>&1) || fail "sg_inq LUN $lun ($dh): $inq"
	vendor=$(echo "$inq" | sed -n 's/^ *Vendor identification: *//p' | sed 's/ *$//')
	product=$(echo "$inq" | sed -n 's/^ *Product identification: *//p' | sed 's/ *$//')
	wv=$(jq -r --arg h "$dh" '.[] | select(.hctl == $h) | .vendor' scan.json)
	wp=$(jq -r --arg h "$dh" '.[] | select(.hctl == $h) | .product' scan.json)
	expect_eq "$wv|$wp" "$vendor|$product" "INQUIRY of LUN $lun ($dh)"
	serial=$(jq -r --arg h "$dh" '.[] | select(.hctl == $h) | .identity.serial // empty' scan.json)
	if [ -n "$serial" ]; then
		out=$(sg_inq -p 0x80 "/dev/$sg" 2>&1) || fail "VPD 0x80 of LUN $lun: $out"
		echo "$out" | grep -q "$serial" || fail "LUN $lun ($dh): unit serial is not $serial: $out"
	fi
	types="$types $(jq -r --arg h "$dh" '.[] | select(.hctl == $h) | .type' scan.json)"
	echo "LUN $lun: $dh $vendor $product ${serial:+serial $serial}" | rig_show
done <luns.txt
for t in disk cdrom tape; do
	echo "$types" | grep -qw "$t" || fail "no $t among the auto-exported LUNs:$types"
done

must rig_logout "$IQN" >/dev/null
rig_reset

step "restart: the same LUNs"
rig_sanbridge_stop
start
lun_map >map2.txt
diff map1.txt map2.txt || fail "LUN numbers changed across a restart"
old_sg=$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic")
rig_sanbridge_stop

step "renumber: delete $hctl ($old_sg), add a scsi_debug host, scan $hctl back"
echo 1 >"/sys/class/scsi_device/$hctl/device/delete" || fail "deleting $hctl"
rig_wait_for 20 sh -c "[ ! -e /sys/class/scsi_generic/$old_sg ]" || fail "$old_sg did not go away"
before=$(ls /sys/class/scsi_device | wc -l)
echo 1 >"$SD/add_host" || fail "add_host"
added=1
rig_wait_for 60 sh -c "[ \$(ls /sys/class/scsi_device | wc -l) -ge $((before + 4)) ]" || fail "the new scsi_debug host's disks did not appear"
echo '- - -' >"/sys/class/scsi_host/host$shost/scan" || fail "scan of host$shost"
rig_wait_for 30 test -e "/sys/class/scsi_device/$hctl" || fail "$hctl did not come back"
rig_wait_for 30 sh -c "ls /sys/class/scsi_device/$hctl/device/scsi_generic | grep -q sg" || fail "$hctl has no sg node"
new_sg=$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic")
step "$hctl is $new_sg now (was $old_sg)"
[ "$new_sg" != "$old_sg" ] || rig_note "the kernel gave $hctl its old node $old_sg back: the LUN map is checked anyway"
start
lun_map >map3.txt
# Every device of before keeps its LUN; the new disks have new numbers.
while read -r id lun; do
	grep -qx "$id $lun" map3.txt || fail "$id was LUN $lun before the renumbering: now $(grep "^$id " map3.txt)"
done <map1.txt
expect_eq $((want + 4)) "$(wc -l <map3.txt)" "LUNs with the new host's disks"
dups=$(awk '{ print $2 }' map3.txt | sort | uniq -d)
[ -z "$dups" ] || fail "LUN numbers used twice: $dups"
rig_note "auto-export: $want devices, LUNs kept across a restart and sg renumbering ($old_sg -> $new_sg)"
exit 0
