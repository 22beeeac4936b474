#!/usr/bin/env bash
# Builds the sanbridge appliance image (make appliance): the Debian kernel and
# an initramfs with busybox, sanbridge, the kernel modules for SAS/SCSI/USB/
# virtio hardware, and the tools the VM tests use inside (open-iscsi, libiscsi's
# iscsi-test-cu, sg3-utils, e2fsprogs, tgt as a comparison target).
#
# Output: $SANBRIDGE_BUILD_DIR/appliance/{vmlinuz,initramfs.cpio.gz,manifest.txt}
# (default deploy/.build/appliance). Downloads are cached in ~/.cache/sanbridge.
#
# Environment:
#   SANBRIDGE_BIN        use this sanbridge binary instead of building one
#   SANBRIDGE_NO_BINARY  1: build the image without sanbridge if it does not
#                        build (for working on the rig itself)
#   SANBRIDGE_GO_TAGS    build tags for sanbridge (default none: the cgo build
#                        with USB support, libusb copied in with it; "nousb"
#                        gives the static build without USB)
# shellcheck source=../lib/host.sh
. "$(dirname "$0")/../lib/host.sh" || { echo "sanbridge: error: cannot read deploy/lib/host.sh" >&2; exit 1; }
sb_strict

start=$(sb_now)
sb_ensure_host_packages
sb_kernel_fetch

# The module set: SCSI core and upper-level drivers, the HBAs QEMU emulates
# (and real appliances commonly have), USB storage, the iSCSI initiator, 9p,
# virtio networking, ext4.
MODULES="scsi_mod sd_mod sg sr_mod st ch scsi_debug virtio_pci virtio_scsi virtio_net
megaraid_sas mpt3sas usb_storage uas xhci_pci iscsi_tcp 9pnet_virtio 9p
crc32c_generic ext4"

# Binaries copied from the host's Debian packages (with their libraries).
BINARIES="iscsiadm iscsid iscsi-test-cu iscsi-inq iscsi-ls iscsi-readcapacity16 iscsi-perf
mke2fs e2fsck tune2fs dumpe2fs dd sha256sum jq"

out="$SB_IMAGE"
root="$out/root"
rm -rf "$root"
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{proc,sys,dev,run,tmp,etc,root,share,mnt}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
mkdir -p "$root/var/lib" "$root/var/log"
ln -s ../run "$root/var/run"
ln -s ../run/lock "$root/var/lock"
ln -s ../tmp "$root/var/tmp"

# busybox and its applets (real binaries copied later replace the applet links).
install -m 0755 /bin/busybox "$root/usr/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /usr/bin/busybox "$root/$applet"
done

# copy_elf FILE [DEST]: copies an ELF program or library and, recursively
# through ldd, the shared libraries it needs.
copy_elf() {
	local src=$1 dst=${2:-$1} lib
	rm -f "$root$dst"
	install -D -m 0755 "$src" "$root$dst"
	local libs
	# ldd fails on a static binary: no libraries then, not an error.
	libs=$(ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }') || libs=""
	for lib in $libs; do
		[ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
}

for b in $BINARIES; do
	p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$b") || sb_die "$b not found on the host"
	copy_elf "$p" "/usr/${p#/usr}"
done
for p in /usr/bin/sg_* /usr/bin/sgp_dd /usr/bin/sgm_dd /usr/bin/sginfo /usr/bin/sg_map26; do
	[ -f "$p" ] && [ "$(head -c 4 "$p" | tail -c 3)" = ELF ] && copy_elf "$p"
done
# tgt (the comparison target) is unpacked, not installed: its package would
# start a tgt service on the host's port 3260.
tgtroot=$(sb_deb_extract tgt)
for b in tgtd tgtadm tgtimg; do
	copy_elf "$tgtroot/usr/sbin/$b" "/usr/sbin/$b"
done
# mtx and tapeinfo drive the virtual tape library tgt serves (rig 48-tape).
mtxroot=$(sb_deb_extract mtx)
for b in mtx tapeinfo; do
	copy_elf "$mtxroot/usr/sbin/$b" "/usr/sbin/$b"
done
ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
ln -sf e2fsck "$root/usr/sbin/fsck.ext4"

# Kernel and module closure.
kmods="$SB_KROOT/lib/modules/$SB_KVER"
for m in $MODULES; do
	modprobe -d "$SB_KROOT" -S "$SB_KVER" --show-depends "$m" ||
		sb_die "module $m not found in $SB_KVER"
done | awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
	rel=${ko#"$SB_KROOT"}
	install -D -m 0644 "$ko" "$root/usr${rel#/usr}"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
	install -m 0644 "$kmods/$f" "$root/usr/lib/modules/$SB_KVER/$f"
done
depmod -b "$root" "$SB_KVER"
cp "$SB_KROOT/boot/vmlinuz-$SB_KVER" "$out/vmlinuz"

# sanbridge itself.
# copy_elf brings the libraries of a dynamically linked (cgo) build along.
if [ -n "${SANBRIDGE_BIN:-}" ]; then
	copy_elf "$SANBRIDGE_BIN" /usr/sbin/sanbridge
else
	go=$(sb_go)
	ver=$(git -C "$SB_REPO" describe --always --dirty 2>/dev/null || echo dev)
	tags=${SANBRIDGE_GO_TAGS:-}
	cgo=1
	case " $tags " in *" nousb "*) cgo=0 ;; esac
	if (cd "$SB_REPO" && CGO_ENABLED=$cgo "$go" build -tags "$tags" -trimpath \
		-ldflags="-s -w -X main.version=$ver" -o "$out/sanbridge" ./cmd/sanbridge); then
		copy_elf "$out/sanbridge" /usr/sbin/sanbridge
	elif [ "${SANBRIDGE_NO_BINARY:-0}" = 1 ]; then
		sb_log "warning: sanbridge does not build; image has no sanbridge (SANBRIDGE_NO_BINARY=1)"
	else
		sb_die "go build ./cmd/sanbridge failed"
	fi
fi

# Files of the image.
install -m 0755 "$SB_DEPLOY/appliance/init" "$root/init"
install -m 0755 "$SB_DEPLOY/appliance/sb-inventory" "$root/usr/sbin/sb-inventory"
install -D -m 0644 "$SB_DEPLOY/appliance/sanbridge.hcl" "$root/etc/sanbridge/sanbridge.hcl"
install -D -m 0644 /etc/mke2fs.conf "$root/etc/mke2fs.conf"
mkdir -p "$root/etc/iscsi/nodes" "$root/etc/iscsi/send_targets" "$root/etc/iscsi/ifaces"
cat >"$root/etc/iscsi/iscsid.conf" <<'EOF'
# open-iscsi defaults inside the sanbridge appliance (tests log in by hand).
node.startup = manual
node.session.timeo.replacement_timeout = 15
node.conn[0].timeo.login_timeout = 15
node.conn[0].timeo.logout_timeout = 15
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 5
node.session.initial_login_retry_max = 2
node.session.cmds_max = 128
node.session.queue_depth = 32
node.session.iscsi.InitialR2T = No
node.session.iscsi.ImmediateData = Yes
node.session.iscsi.FirstBurstLength = 262144
node.session.iscsi.MaxBurstLength = 16776192
node.conn[0].iscsi.MaxRecvDataSegmentLength = 262144
discovery.sendtargets.iscsi.MaxRecvDataSegmentLength = 32768
node.session.scan = auto
EOF
echo "InitiatorName=iqn.2026-11.io.sanbridge:appliance" >"$root/etc/iscsi/initiatorname.iscsi"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\ntape:x:26:\nnogroup:x:65534:\n' >"$root/etc/group"
echo sanbridge >"$root/etc/hostname"
printf '127.0.0.1 localhost sanbridge\n::1 localhost\n' >"$root/etc/hosts"
cat >"$root/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PS1='sanbridge# '
EOF
: >"$root/etc/fstab"

git_rev=$(cd "$SB_REPO" && git rev-parse --short HEAD 2>/dev/null || echo none)
{
	echo "kernel=$SB_KVER"
	echo "busybox=$(dpkg-query -W -f='${Version}' busybox-static)"
	echo "sanbridge=$([ -x "$root/usr/sbin/sanbridge" ] && echo "built from $git_rev" || echo missing)"
	echo "modules=$(find "$root/usr/lib/modules" -name '*.ko' | wc -l)"
	echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out/manifest.txt"
install -m 0644 "$out/manifest.txt" "$root/etc/sanbridge/manifest.txt"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0) |
	gzip -6 >"$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"

size_root=$(du -sm "$root" | cut -f1)
size_gz=$(du -k "$out/initramfs.cpio.gz" | cut -f1)
size_kernel=$(du -k "$out/vmlinuz" | cut -f1)
echo "image_initramfs_kib=$size_gz" >>"$out/manifest.txt"
sb_log "appliance image: $out (kernel $SB_KVER $size_kernel KiB, initramfs $size_gz KiB gzip, $size_root MiB unpacked) in $(sb_elapsed "$start") s"
