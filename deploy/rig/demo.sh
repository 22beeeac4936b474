#!/usr/bin/env bash
# The demo (make demo): boots the sanbridge appliance under QEMU with realistic
# hardware (megasas SAS HBA with two disks and a CD-ROM, a virtio-scsi disk, a
# USB stick, scsi_debug disks and tape; deploy/rig/hardware.json) and serves
# iSCSI on 127.0.0.1:PORT through QEMU's restricted user-mode forward.
# Ctrl-C stops sanbridge in the guest and powers the guest off.
#
# Environment:
#   SANBRIDGE_DEMO_PORT    host port of the forward (default 3260)
#   SANBRIDGE_DEMO_CONFIG  sanbridge config for the guest (default
#                          deploy/appliance/demo.hcl; its 127.0.0.1:3260
#                          advertise address is rewritten to the port)
#   SANBRIDGE_SKIP_BUILD   1: use the existing image
# shellcheck source=../lib/host.sh
. "$(dirname "$0")/../lib/host.sh" || { echo "sanbridge: error: cannot read deploy/lib/host.sh" >&2; exit 1; }
sb_strict

port=${SANBRIDGE_DEMO_PORT:-3260}
config=${SANBRIDGE_DEMO_CONFIG:-$SB_DEPLOY/appliance/demo.hcl}
run="$SB_BUILD/demo"
share="$run/share"
iqn=iqn.2026-11.io.sanbridge:demo

sb_ensure_host_packages
[ "${SANBRIDGE_SKIP_BUILD:-0}" = 1 ] || "$SB_DEPLOY/appliance/build.sh"
sb_image_check

mkdir -p "$run"
exec 9>"$run.lock"
flock -n 9 || sb_die "another demo is running from $SB_BUILD"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	sb_die "127.0.0.1:$port is in use; stop what listens there or set SANBRIDGE_DEMO_PORT"
fi

rm -rf "$share"
mkdir -p "$share/control"
sed "s/127\.0\.0\.1:3260/127.0.0.1:$port/g" "$config" >"$share/sanbridge.hcl"
iqn=$(sed -n 's/^target "\([^"]*\)".*/\1/p' "$share/sanbridge.hcl" | head -n 1)
cp "$SB_DEPLOY/rig/hardware.json" "$share/hardware.json"
sb_hw_guest_env >"$share/hardware.env"
sb_hw_disks "$run" # kept between runs

mapfile -t qemu_args < <(
	sb_qemu_base "sanbridge.mode=demo"
	echo -nic
	echo "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$port-:3260"
	sb_qemu_share "$share"
	sb_hw_qemu_args "$run"
	echo -serial
	echo "file:$run/console.log"
	echo -monitor
	echo none
)

qpid=
tpid=
stopping=0
stop() {
	[ "$stopping" = 0 ] || return 0
	stopping=1
	trap '' INT
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		echo
		sb_log "stopping: asking the guest to stop sanbridge and power off"
		touch "$share/control/stop"
		for _ in $(seq 1 300); do
			kill -0 "$qpid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$qpid" 2>/dev/null; then
			sb_log "guest still running after 30 s; terminating QEMU"
			kill -TERM "$qpid" 2>/dev/null || true
			sleep 2
			kill -KILL "$qpid" 2>/dev/null || true
		fi
		wait "$qpid" 2>/dev/null || true
	fi
	[ -z "$tpid" ] || kill "$tpid" 2>/dev/null || true
	sb_log "stopped"
}
trap stop EXIT
trap 'exit 130' INT TERM

: >"$run/console.log"
sb_log "booting the appliance (TCG); console log: $run/console.log"
setsid qemu-system-x86_64 "${qemu_args[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!
tail -n +1 -F --pid="$qpid" "$run/console.log" 2>/dev/null &
tpid=$!

# Wait until sanbridge answers through the forward (an explicit-URL tool:
# nothing follows the guest's SendTargets addresses).
up=0
for _ in $(seq 1 90); do
	kill -0 "$qpid" 2>/dev/null || break
	if timeout 10 iscsi-inq "iscsi://127.0.0.1:$port/$iqn/0" >/dev/null 2>&1; then
		up=1
		break
	fi
	sleep 2
done
# SendTargets must advertise the forward, never the guest's own address
# (iscsi-ls without -s only lists; it connects to nothing it is told).
if [ "$up" = 1 ]; then
	portals=$(timeout 20 iscsi-ls "iscsi://127.0.0.1:$port" 2>/dev/null | sed -n 's/.* Portal:\([^,]*\),.*/\1/p' | sort -u | tr '\n' ' ')
	if [ "$portals" != "127.0.0.1:$port " ]; then
		sb_log "warning: SendTargets advertises '${portals% }', not 127.0.0.1:$port: do not run discovery from this host"
	fi
fi
# What the target exports: LUN 0 (the emulated disk) and every rig device
# auto_export added, each with the identity it answers INQUIRY with.
lunlist=
if [ "$up" = 1 ]; then
	for lun in $(timeout 60 iscsi-ls -s "iscsi://127.0.0.1:$port" 2>/dev/null | sed -n 's/^[[:space:]]*Lun:\([0-9]*\).*/\1/p'); do
		inq=$(timeout 20 iscsi-inq "iscsi://127.0.0.1:$port/$iqn/$lun" 2>/dev/null) || continue
		type=$(echo "$inq" | sed -n 's/^Peripheral Device Type:\(.*\)/\1/p' | head -n 1)
		vendor=$(echo "$inq" | sed -n 's/^Vendor:\(.*\)/\1/p' | head -n 1)
		product=$(echo "$inq" | sed -n 's/^Product:\(.*\)/\1/p' | head -n 1)
		lunlist="$lunlist$(printf '   LUN %-3s %-28s %s %s' "$lun" "$type" "$vendor" "$product")
"
	done
fi
if [ "$up" != 1 ]; then
	kill -0 "$qpid" 2>/dev/null || { cat "$run/qemu.log" >&2; sb_die "QEMU exited"; }
	sb_log "warning: sanbridge does not answer on 127.0.0.1:$port yet; see the console above"
else
	cat <<EOF

================================================================================
 sanbridge appliance is up: iSCSI on 127.0.0.1:$port (forwarded into the guest)
   target $iqn
$lunlist
 From this machine:
   iscsi-inq iscsi://127.0.0.1:$port/$iqn/0
   iscsi-readcapacity16 iscsi://127.0.0.1:$port/$iqn/0
   iscsi-ls -s iscsi://127.0.0.1:$port     (SendTargets advertises 127.0.0.1:$port)
 With the Linux initiator (needs a kernel with iscsi_tcp):
   iscsiadm -m discovery -t sendtargets -p 127.0.0.1:$port
   iscsiadm -m node -T $iqn -p 127.0.0.1:$port --login

 Ctrl-C stops the appliance.
================================================================================

EOF
fi
wait "$qpid" || true
qpid=
