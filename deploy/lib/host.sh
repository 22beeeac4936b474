# shellcheck shell=bash
# Host-side helpers shared by deploy/appliance/build.sh, deploy/rig/vmtest.sh
# and deploy/rig/demo.sh. Source it; it defines functions and a few paths and
# has no side effects beyond that.
#
# Paths (override with the environment):
#   SANBRIDGE_CACHE      downloads that survive clean checkouts (~/.cache/sanbridge)
#   SANBRIDGE_BUILD_DIR  build artifacts, git-ignored (REPO/deploy/.build)

SB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SB_DEPLOY="$SB_REPO/deploy"
SB_CACHE=${SANBRIDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sanbridge}
SB_BUILD=${SANBRIDGE_BUILD_DIR:-$SB_DEPLOY/.build}
SB_IMAGE="$SB_BUILD/appliance"

# Debian packages the host needs: QEMU to boot the appliance, and the tools
# that are copied from the host into the image (which therefore come from
# Debian packages, as the image must).
# tgt is not installed on the host (its service would listen on port 3260):
# sb_deb_extract unpacks it for the image; libaio1 is its one library that
# the other packages do not bring.
SB_HOST_PACKAGES="qemu-system-x86 busybox-static kmod cpio gzip open-iscsi sg3-utils libiscsi-bin e2fsprogs jq coreutils libaio1 libibverbs1 librdmacm1 libusb-1.0-0-dev pkg-config"

sb_log() { printf '%s\n' "sanbridge: $*" >&2; }

# sb_die MESSAGE logs MESSAGE as an error, records it for the caller (see
# SB_FAIL_FILE) and exits with status 1. MESSAGE says what failed and what
# to do about it.
sb_die() {
	sb_log "error: $*"
	sb_fail_record "$*"
	exit 1
}

# sb_fail_record MESSAGE appends MESSAGE to $SB_FAIL_FILE when it is set: a
# parent script (vmtest.sh) reads it to say which step of a child failed.
sb_fail_record() {
	[ -z "${SB_FAIL_FILE:-}" ] || printf '%s\n' "$*" >>"$SB_FAIL_FILE" 2>/dev/null || true
}

# sb_strict turns on errexit, nounset, pipefail and errtrace, and an ERR
# trap that names the script, line, command and status of any step that
# fails without its own message, so nothing exits silently.
sb_strict() {
	set -Eeuo pipefail
	trap 'sb_on_err $? "${BASH_SOURCE[0]:-?}" "$LINENO" "$BASH_COMMAND"' ERR
}

# sb_on_err STATUS FILE LINE COMMAND is the ERR trap of sb_strict.
sb_on_err() {
	local msg="${2#"$SB_REPO"/}:$3: '$4' failed with status $1"
	trap - ERR
	sb_log "error: $msg"
	sb_fail_record "$msg"
}

# sb_now prints seconds since the epoch with millisecond precision.
sb_now() { date +%s.%N | cut -c1-14; }

# sb_elapsed START prints the seconds since START (from sb_now), one decimal.
sb_elapsed() { awk -v s="$1" -v e="$(sb_now)" 'BEGIN { printf "%.1f", e - s }'; }

# sb_apt_install PKG... installs the packages that are not installed yet,
# running apt-get update first. It waits for a concurrent apt/dpkg run instead
# of failing on the lock.
sb_apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || sb_die "missing packages ${missing[*]}: run as root or install them"
	sb_log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	sb_apt_update
	apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		sb_die "apt-get install ${missing[*]} failed: check each with 'apt-cache policy NAME'"
}

# sb_ensure_host_packages installs everything the rig needs on the host.
sb_ensure_host_packages() {
	# shellcheck disable=SC2086
	sb_apt_install $SB_HOST_PACKAGES
}

# sb_go prints the go command to use (PATH, then /usr/local/go).
sb_go() {
	if command -v go >/dev/null 2>&1; then
		command -v go
	elif [ -x /usr/local/go/bin/go ]; then
		echo /usr/local/go/bin/go
	else
		sb_die "Go toolchain not found (need go in PATH or /usr/local/go)"
	fi
}

# sb_kernel_package prints the name of the Debian kernel image package that
# linux-image-amd64 currently depends on (e.g. linux-image-6.1.0-57-amd64;
# the name moves with Debian's point releases, so it is looked up, never
# pinned). SANBRIDGE_KERNEL_PACKAGE overrides the lookup.
sb_kernel_package() {
	local pkg=${SANBRIDGE_KERNEL_PACKAGE:-}
	if [ -z "$pkg" ]; then
		pkg=$(sb_apt_depends linux-image-amd64 'linux-image-[0-9]')
	fi
	if [ -z "$pkg" ]; then
		sb_log "apt-cache knows no linux-image-amd64: running apt-get update"
		sb_apt_update
		pkg=$(sb_apt_depends linux-image-amd64 'linux-image-[0-9]')
	fi
	[ -n "$pkg" ] || sb_die "cannot find the kernel package linux-image-amd64 depends on (apt-cache depends linux-image-amd64 lists none; check /etc/apt/sources.list)"
	echo "$pkg"
}

# sb_apt_update runs apt-get update, waiting for a concurrent apt/dpkg run.
sb_apt_update() {
	apt-get -o DPkg::Lock::Timeout=900 update -qq >&2 ||
		sb_die "apt-get update failed (network or /etc/apt/sources.list)"
}

# sb_apt_depends PKG REGEX prints the first dependency of PKG whose name
# matches REGEX, or nothing (never fails: apt-cache's own failure for an
# unknown package means "none").
sb_apt_depends() {
	local out
	out=$(apt-cache depends "$1" 2>/dev/null) || out=""
	awk -v re="^$2" '$1 == "Depends:" && $2 ~ re { print $2; exit }' <<<"$out"
}

# sb_apt_candidate PKG prints the version apt would install of PKG, or
# nothing when apt knows no such package.
sb_apt_candidate() {
	local out
	out=$(apt-cache policy "$1" 2>/dev/null) || out=""
	awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }' <<<"$out"
}

# sb_newest_file GLOB... prints the last existing path the globs match in
# sorted order, or nothing (an empty cache is not an error).
sb_newest_file() {
	local f last=""
	for f in "$@"; do
		[ -e "$f" ] && last=$f
	done
	printf '%s' "$last"
}

# sb_apt_download DIR PKG[=VER] downloads a .deb into DIR (apt-get download
# prints why it fails; this adds what failed and what to try).
sb_apt_download() {
	local dir=$1 spec=$2
	mkdir -p "$dir" || sb_die "cannot create the download cache $dir"
	if ! (cd "$dir" && apt-get download "$spec" >&2); then
		sb_die "apt-get download $spec failed: check the package with 'apt-cache policy ${spec%%=*}', run 'apt-get update', or set SANBRIDGE_CACHE to a writable directory"
	fi
}

# sb_kernel_fetch downloads (once) and unpacks (once) the guest kernel and
# sets SB_KVER and SB_KROOT (a tree with boot/vmlinuz-KVER and lib/modules/KVER
# with depmod output).
sb_kernel_fetch() {
	local pkg deb dir
	pkg=$(sb_kernel_package)
	SB_KVER=${pkg#linux-image-}
	dir="$SB_CACHE/kernel"
	SB_KROOT="$dir/$SB_KVER"
	mkdir -p "$dir" || sb_die "cannot create the download cache $dir"
	if [ ! -e "$SB_KROOT/.complete" ]; then
		deb=$(sb_newest_file "$dir/${pkg}_"*.deb)
		if [ -z "$deb" ]; then
			sb_log "downloading $pkg"
			sb_apt_download "$dir" "$pkg"
			deb=$(sb_newest_file "$dir/${pkg}_"*.deb)
			[ -n "$deb" ] || sb_die "apt-get download $pkg left no ${pkg}_*.deb in $dir"
		fi
		sb_log "unpacking $(basename "$deb")"
		rm -rf "$SB_KROOT.tmp" "$SB_KROOT"
		dpkg -x "$deb" "$SB_KROOT.tmp" || sb_die "dpkg -x $deb failed (a damaged download? delete it and retry)"
		depmod -b "$SB_KROOT.tmp" "$SB_KVER" || sb_die "depmod -b $SB_KROOT.tmp $SB_KVER failed (is kmod installed?)"
		mv "$SB_KROOT.tmp" "$SB_KROOT"
		touch "$SB_KROOT/.complete"
	fi
	[ -f "$SB_KROOT/boot/vmlinuz-$SB_KVER" ] || sb_die "no vmlinuz in $SB_KROOT (delete $SB_KROOT and retry)"
}

# sb_deb_extract PKG: downloads (once per version) and unpacks the Debian
# package PKG without installing it; prints the directory it is unpacked in.
sb_deb_extract() {
	local pkg=$1 ver dir deb
	ver=$(sb_apt_candidate "$pkg")
	if [ -z "$ver" ]; then
		sb_apt_update
		ver=$(sb_apt_candidate "$pkg")
		[ -n "$ver" ] || sb_die "apt knows no Debian package $pkg (apt-cache policy $pkg shows no candidate)"
	fi
	dir="$SB_CACHE/debs/$pkg/${ver//:/_}"
	if [ ! -e "$dir/.complete" ]; then
		sb_log "downloading $pkg $ver"
		rm -rf "$dir"
		sb_apt_download "$dir" "$pkg=$ver"
		deb=$(sb_newest_file "$dir"/*.deb)
		[ -n "$deb" ] || sb_die "apt-get download $pkg=$ver left no .deb in $dir"
		dpkg -x "$deb" "$dir/root" || sb_die "dpkg -x $deb failed (a damaged download? delete $dir and retry)"
		touch "$dir/.complete"
	fi
	echo "$dir/root"
}

# sb_image_check fails unless an appliance image has been built.
sb_image_check() {
	[ -f "$SB_IMAGE/vmlinuz" ] && [ -f "$SB_IMAGE/initramfs.cpio.gz" ] ||
		sb_die "no appliance image in $SB_IMAGE: run deploy/appliance/build.sh"
}

# sb_hw_disks RUNDIR creates (sparse) backing files for the QEMU drives listed
# in deploy/rig/hardware.json under RUNDIR/disks, keeping existing ones.
sb_hw_disks() {
	local run=$1 id size
	mkdir -p "$run/disks"
	jq -r '.devices[] | select(.qemu != null) | "\(.id) \(.size_bytes)"' "$SB_DEPLOY/rig/hardware.json" |
		while read -r id size; do
			[ -f "$run/disks/$id.img" ] || truncate -s "$size" "$run/disks/$id.img"
		done
}

# sb_hw_qemu_args RUNDIR prints the QEMU arguments (one per line) for the
# hardware in deploy/rig/hardware.json, with drives backed by RUNDIR/disks.
sb_hw_qemu_args() {
	jq -r --arg disks "$1/disks" -f "$SB_DEPLOY/rig/qemu-args.jq" "$SB_DEPLOY/rig/hardware.json"
}

# sb_hw_guest_env prints the shell fragment the guest sources to recreate the
# hardware that lives inside the guest kernel (scsi_debug).
sb_hw_guest_env() {
	jq -r -f "$SB_DEPLOY/rig/guest-env.jq" "$SB_DEPLOY/rig/hardware.json"
}

# sb_qemu_base prints the QEMU arguments common to every boot (one per line).
# The caller adds the network (-nic none, or the restricted forward), the
# share and the hardware.
sb_qemu_base() {
	local append=$1
	printf '%s\n' -accel tcg -machine pc -smp "${SANBRIDGE_VM_CPUS:-2}" -m "${SANBRIDGE_VM_MEM:-1536}" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$SB_IMAGE/vmlinuz" -initrd "$SB_IMAGE/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=4 clocksource=tsc tsc=reliable $append"
}

# sb_qemu_share DIR prints the arguments for the 9p share the guest mounts.
sb_qemu_share() {
	printf '%s\n' -virtfs "local,path=$1,mount_tag=share,security_model=none,id=share"
}
