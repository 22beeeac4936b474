#!/bin/sh
# `sanbridge scan` in the guest lists every SCSI device of the rig: each
# device of hardware.json appears (by H:C:T:L) in `scan --json --all` with the
# configured vendor, product and revision, the right sg node, and, for disks,
# the configured size. Shows the scan table on the console. (Identity, WWN and
# transport details are checked by discovery's own tests against the capture.)
# rig-timeout: 120
. "$RIG/guest/lib.sh"

command -v sanbridge >/dev/null || fail "no sanbridge binary in the image"
step "sanbridge scan --all"
t0=$(now)
sanbridge scan --all >scan.txt 2>scan.err || { cat scan.err; fail "sanbridge scan failed"; }
{
	echo "sanbridge scan --all in the guest:"
	cat scan.txt
} | rig_show
sanbridge scan --json --all >scan.json 2>scan.err || { cat scan.err; fail "sanbridge scan --json failed"; }
cp scan.json "$RESULTS/scan.json"
secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
jq -e 'type == "array"' scan.json >/dev/null || fail "scan --json is not a JSON array"
# One jq run (each process start is slow under TCG): hctl vendor product rev sg
# size, "-" for empty fields (tabs are IFS white space: empty fields collapse).
jq -r 'def d: if . == null or . == "" then "-" else tostring end;
	.[] | [.hctl, .vendor, .product, .revision, .sg, .size_bytes] | map(d) | @tsv' scan.json >scan.tsv ||
	fail "unexpected scan --json structure"

errors=0
bad() {
	echo "MISMATCH $id ($hctl): $*"
	errors=$((errors + 1))
}
want=0
tab=$(printf '\t')
while IFS=$tab read -r id drv hidx tgt lun ptype vendor product rev _ _ size _; do
	want=$((want + 1))
	hctl=$(rig_hw_hctl "$drv" "$hidx" "$tgt" "$lun") || { bad "not in the guest (see 00-hardware)"; continue; }
	entry=$(awk -F"$tab" -v h="$hctl" '$1 == h { print; exit }' scan.tsv)
	[ -n "$entry" ] || { bad "missing from scan --json --all"; continue; }
	IFS=$tab read -r _ s_vendor s_product s_rev s_sg s_size <<EOT
$entry
EOT
	got="$s_vendor|$s_product|$s_rev"
	[ "$got" = "$vendor|$product|$rev" ] || bad "identity '$got', want '$vendor|$product|$rev'"
	sg=$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic" 2>/dev/null)
	[ "$s_sg" = "/dev/$sg" ] || bad "sg '$s_sg', want '/dev/$sg'"
	if [ "$ptype" = 0 ] && [ "$size" != - ]; then
		[ "$s_size" = "$size" ] || bad "size_bytes $s_size, want $size"
	fi
done <"/share/hardware.tsv"

have=$(jq 'length' scan.json)
[ "$have" -ge "$want" ] || bad "scan lists $have devices, hardware.json has $want"
rig_note "scan (with SG_IO queries) took ${secs}s: $have devices, $errors mismatches against hardware.json"
[ "$errors" = 0 ] || fail "$errors mismatches between sanbridge scan and hardware.json"
