#!/bin/sh
# Live changes under I/O (issue 13). The Linux initiator runs a checksummed
# write/read loop on LUN 0 of one target from start to end, and that loop
# must see no I/O error and no mismatch:
#  - reloads: the config is edited and applied with SIGHUP and with
#    `sanbridge reload` (through the admin socket): a LUN added to the
#    default map (REPORT LUNS and a rescan show it), the initiator moved into
#    an initiator group whose view keeps LUN 0 and adds LUN 2, a target added
#    and one removed (a second initiator logged in to it is asked to log out
#    and its session ends), a broken file refused with its file:line and
#    nothing changed; `sanbridge status` follows each step;
#  - hot-plug: a scsi_debug disk exported as LUN 1 of another target is
#    deleted (`echo 1 > .../device/delete`) while the initiator reads it:
#    the gateway notices from the kernel's uevent, the LUN answers NOT READY,
#    LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED, its neighbour LUN
#    and the loop go on; the disk is re-added (`echo '- - -' > scan`) and is
#    put back at the same LUN, in the same session (no relogin): the
#    initiator gets POWER ON OCCURRED, its reads work again and the data
#    written before the removal is there.
# rig-timeout: 480
. "$RIG/guest/lib.sh"

T=iqn.2026-11.io.sanbridge:live
T_B=iqn.2026-11.io.sanbridge:live-b
T_C=iqn.2026-11.io.sanbridge:live-c
T_HOT=iqn.2026-11.io.sanbridge:live-hot
INIT_B=iqn.2026-11.io.sanbridge:rig-host-b
SOCK=$PWD/admin.sock
STATE=$PWD/state
CFG=$PWD/live.hcl

hctl=$(rig_hw_hctl scsi_debug 0 0 1) || fail "no scsi_debug disk at target 0 LUN 1 (sdebug-hd1)"
shost=${hctl%%:*}
sanbridge scan --json --all >scan.json || fail "sanbridge scan"
wwn=$(jq -r --arg h "$hctl" '.[] | select(.hctl == $h) | .identity.wwn // empty' scan.json)
[ -n "$wwn" ] || fail "sdebug-hd1 ($hctl) has no WWN in sanbridge scan: $(jq -c --arg h "$hctl" '.[] | select(.hctl == $h)' scan.json)"
step "hot-plug disk: sdebug-hd1 at $hctl, $wwn"

# config TAIL...: the config, with extra blocks (each argument one line).
config() {
	cat <<CFG
portal "lo" {
  listen = "$RIG_PORTAL"
}
backend "loop" {
  emulated {
    size   = "64MiB"
    serial = "live-loop"
  }
}
backend "more" {
  emulated {
    size   = "8MiB"
    serial = "live-more"
  }
}
backend "hot" {
  device {
    wwn = "$wwn"
  }
}
target "$T_HOT" {
  lun "0" {
    emulated {
      size   = "8MiB"
      serial = "live-hot-neighbour"
    }
  }
  lun "1" {
    backend = "hot"
  }
}
CFG
	for _l in "$@"; do
		echo "$_l"
	done
}

loop_pid=
hot_pid=
cleanup() {
	touch io.stop hot.stop
	rm -f hot.pause
	for _p in $loop_pid $hot_pid; do
		wait "$_p" 2>/dev/null
	done
	rig_reset
	rig_iface_delete ifB
	rig_sanbridge_stop
	# Put the scsi_debug disk back if the test left it deleted.
	[ -e "/sys/class/scsi_device/$hctl" ] || echo '- - -' >"/sys/class/scsi_host/host$shost/scan"
}
trap cleanup EXIT

# status JQ: runs JQ on `sanbridge status --json`.
status() {
	sanbridge status --json --admin "$SOCK" >status.json 2>status.err || fail "sanbridge status: $(cat status.err)"
	jq -r "$1" status.json
}

# reloaded BEFORE: waits until the last reload is newer than BEFORE (its
# time) and ok.
reloaded() {
	_n=0
	while [ "$(status '.last_reload.time')" = "$1" ]; do
		[ "$_n" -ge 300 ] && fail "no reload after 30 s"
		sleep 0.1
		_n=$((_n + 1))
	done
	[ "$(status '.last_reload.ok')" = true ] || fail "reload failed: $(status '.last_reload.error')"
	step "reloaded: $(status '.last_reload.summary'); $(status '.last_reload.changes | join(", ")')"
}

# report_luns SG: the LUN numbers REPORT LUNS returns on SG, sorted.
report_luns() {
	_out=$(sg_luns "$1" 2>&1) || fail "sg_luns $1: $_out"
	for _h in $(echo "$_out" | awk '/^ +[0-9a-fA-F]{16}$/ { print substr($1, 1, 4) }'); do
		echo $((0x$_h & 0x3fff))
	done | sort -n | tr '\n' ' ' | sed 's/ $//'
}

config "target \"$T\" {" '  lun "0" {' '    backend = "loop"' '  }' '}' \
	"target \"$T_B\" {" '  lun "0" {' '    backend = "more"' '  }' '}' >"$CFG"
mkdir -p "$STATE"
rig_sanbridge_start "$CFG" --state-dir "$STATE" --admin-socket "$SOCK"
rig_wait_for 20 test -S "$SOCK" || fail "no admin socket $SOCK"
expect_eq 3 "$(status '.targets | length')" "targets at the start"

step "log in; the checksummed loop starts on $T LUN 0"
must rig_node "$T"
must rig_login "$T" >/dev/null
sess=$(rig_session_dir "$T") || fail "no session to $T"
disk0=/dev/$(rig_session_disk "$sess" 0) || fail "no disk for LUN 0"
sg0=/dev/$(rig_session_sg "$sess" 0)
must rig_iface_new ifB "$INIT_B"
rig_node_iface "$T_B" ifB || fail "node record of $T_B through ifB"
rig_login_iface "$T_B" ifB >/dev/null || fail "login to $T_B through ifB"
expect_eq 2 "$(status '[.sessions[] | select(.discovery | not)] | length')" "sessions in sanbridge status"

io_loop() { # DEV: writes and reads back 256 KiB of random data at rotating offsets until io.stop
	_i=0
	_e=0
	while [ ! -e io.stop ]; do
		_off=$(((_i % 200) * 4))
		head -c 262144 /dev/urandom >io.w
		dd if=io.w of="$1" bs=65536 seek=$_off oflag=direct conv=notrunc status=none 2>>io.err || _e=$((_e + 1))
		dd if="$1" of=io.r bs=65536 skip=$_off count=4 iflag=direct status=none 2>>io.err || _e=$((_e + 1))
		cmp -s io.w io.r || { _e=$((_e + 1)); echo "mismatch at 64 KiB block $_off" >>io.err; }
		_i=$((_i + 1))
		echo "$_i $_e" >io.count
	done
}
: >io.err
io_loop "$disk0" &
loop_pid=$!
io_progress() { # waits until the loop made N more rounds
	_start=$(cut -d' ' -f1 io.count 2>/dev/null || echo 0)
	rig_wait_for 60 sh -c "[ \$(cut -d' ' -f1 io.count) -ge $((_start + $1)) ]" || fail "the I/O loop stalled at $(cat io.count 2>/dev/null)"
}
io_progress 3

step "reload (SIGHUP): LUN 1 added to $T's default map"
before=$(status '.last_reload.time')
config "target \"$T\" {" '  lun "0" {' '    backend = "loop"' '  }' '  lun "1" {' '    backend = "more"' '  }' '}' \
	"target \"$T_B\" {" '  lun "0" {' '    backend = "more"' '  }' '}' >"$CFG"
kill -HUP "$RIG_TARGET_PID"
reloaded "$before"
expect_eq "0 1" "$(report_luns "$sg0")" "REPORT LUNS after adding LUN 1"
must iscsiadm -m session -R >/dev/null
rig_session_sg "$sess" 1 >/dev/null || fail "LUN 1 did not appear after a rescan"
io_progress 2

step "reload (sanbridge reload): the initiator joins a group whose view has LUNs 0 and 2; $T_C added, $T_B removed"
config "initiator_group \"rig\" {" "  initiators = [\"$RIG_INITIATOR\"]" "}" \
	"target \"$T\" {" '  lun "0" {' '    backend = "loop"' '  }' '  lun "1" {' '    backend = "more"' '  }' \
	'  view "rig" {' '    lun "0" {' '      backend = "loop"' '    }' '    lun "2" {' '      emulated {' '        size = "4MiB"' '      }' '    }' '  }' '}' \
	"target \"$T_C\" {" '  lun "0" {' '    backend = "more"' '  }' '}' >"$CFG"
out=$(sanbridge reload --admin "$SOCK" 2>&1) || fail "sanbridge reload: $out"
echo "$out"
echo "$out" | grep -q "1 session(s) that lost their access" || fail "the session to the removed $T_B was not asked to log out: $out"
expect_eq "0 2" "$(report_luns "$sg0")" "REPORT LUNS in the group's view"
rig_wait_for 30 sh -c "[ \$(sanbridge status --json --admin '$SOCK' | jq '[.sessions[] | select(.target == \"$T_B\")] | length') = 0 ]" ||
	fail "the session to the removed $T_B is still there: $(status '.sessions')"
step "the session to $T_B ended"
# The initiator keeps trying to log in again (target not found): stop it.
iscsiadm -m node -T "$T_B" -p "$RIG_PORTAL" -I ifB --logout >/dev/null 2>&1
iscsiadm -m node -T "$T_B" -o delete >/dev/null 2>&1
found=$(iscsiadm -m discovery -t sendtargets -p "$RIG_PORTAL" -o nonpersistent 2>&1) || fail "discovery: $found"
echo "$found" | grep -q "$T_C" || fail "discovery does not list the new $T_C: $found"
echo "$found" | grep -q "$T_B" && fail "discovery still lists the removed $T_B: $found"
io_progress 2

step "a broken file is refused with its line, and changes nothing"
cp "$CFG" good.hcl
printf 'target "%s" {\n  lun "0" {\n    backend = "nope"\n  }\n}\n' "$T_B" >>"$CFG"
out=$(sanbridge reload --admin "$SOCK" 2>&1) && fail "sanbridge reload accepted a broken file: $out"
echo "$out" | grep -q "live.hcl:" || fail "the refusal does not name the file and line: $out"
step "refused: $(echo "$out" | head -n 1)"
[ "$(status '.last_reload.ok')" = false ] || fail "status does not show the failed reload"
expect_eq "0 2" "$(report_luns "$sg0")" "REPORT LUNS after the refused reload"
cp good.hcl "$CFG"

step "hot-plug: write a pattern to $T_HOT LUN 1, then read it in a loop"
must rig_node "$T_HOT"
must rig_login "$T_HOT" >/dev/null
hsess=$(rig_session_dir "$T_HOT") || fail "no session to $T_HOT"
hsid=${hsess##*/}
hdisk=/dev/$(rig_session_disk "$hsess" 1) || fail "no disk for $T_HOT LUN 1"
hsg=/dev/$(rig_session_sg "$hsess" 1)
hsg0=/dev/$(rig_session_sg "$hsess" 0)
rig_pattern hot.bin 256
must dd if=hot.bin of="$hdisk" bs=65536 seek=32 oflag=direct conv=notrunc status=none
hot_loop() { # DEV: reads 4 KiB every 0.2 s until hot.stop (not while hot.pause); logs ok/err lines
	while [ ! -e hot.stop ]; do
		if [ -e hot.pause ]; then
			touch hot.paused
			sleep 0.2
			continue
		fi
		rm -f hot.paused
		if dd if="$1" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null; then echo ok; else echo err; fi >>hot.log
		sleep 0.2
	done
}
: >hot.log
hot_loop "$hdisk" &
hot_pid=$!
rig_wait_for 20 grep -q ok hot.log || fail "the reads of $T_HOT LUN 1 fail before the removal"

step "delete $hctl"
echo 1 >"/sys/class/scsi_device/$hctl/device/delete" || fail "deleting $hctl"
rig_wait_for 30 sh -c "[ \$(sanbridge status --json --admin '$SOCK' | jq -r '.lus[] | select(.backend == \"hot\") | .state') = gone ]" ||
	fail "sanbridge did not notice the removal: $(status '.lus[] | select(.backend == "hot")')"
step "sanbridge: $(status '.lus[] | select(.backend == "hot") | "\(.identity) \(.state)"')"
out=$(sg_turs -v "$hsg" 2>&1) && fail "TEST UNIT READY on the removed device's LUN succeeded"
echo "$out" | grep -qi "not ready" && echo "$out" | grep -qi "manual intervention" ||
	fail "TEST UNIT READY on the removed device's LUN: want NOT READY, MANUAL INTERVENTION REQUIRED, got: $out"
step "LUN 1 while gone: $(echo "$out" | grep -i 'manual intervention' | head -n 1)"
n_ok=$(grep -c ok hot.log)
rig_wait_for 20 sh -c "tail -n 1 hot.log | grep -q err" || fail "the initiator's reads do not fail while the device is gone"
must sg_turs "$hsg0" >/dev/null
expect_eq "0 1" "$(report_luns "$hsg0")" "REPORT LUNS of $T_HOT while LUN 1 is gone"
io_progress 1

step "re-add the disk (scan of host$shost); the reads pause so that this test's TEST UNIT READY is the first command after"
touch hot.pause
rig_wait_for 20 test -e hot.paused || fail "the read loop did not pause"
echo '- - -' >"/sys/class/scsi_host/host$shost/scan" || fail "scan of host$shost"
rig_wait_for 60 sh -c "[ \$(sanbridge status --json --admin '$SOCK' | jq -r '.lus[] | select(.backend == \"hot\") | .state') = reattached ]" ||
	fail "sanbridge did not re-attach the disk: $(status '.lus[] | select(.backend == "hot")')"
step "sanbridge: $(status '.lus[] | select(.backend == "hot") | "\(.identity) \(.state) at \(.sg) (\(.hctl))"')"
expect_eq hot "$(status ".targets[] | select(.name == \"$T_HOT\") | .luns[] | select(.lun == 1) | .backend")" "backend of $T_HOT LUN 1"
out=$(sg_turs -v "$hsg" 2>&1) && fail "the first command after the return got no unit attention"
echo "$out" | grep -qi "unit attention" && echo "$out" | grep -qi "power on occurred" ||
	fail "the first command after the return: want UNIT ATTENTION, POWER ON OCCURRED, got: $out"
step "first command after the return: $(echo "$out" | grep -i 'power on' | head -n 1)"
must sg_turs "$hsg"
rm -f hot.pause
rig_wait_for 60 sh -c "tail -n 1 hot.log | grep -q ok" || fail "the initiator's reads did not resume: $(tail -n 5 hot.log)"
step "reads resumed ($(grep -c ok hot.log) ok, $(grep -c err hot.log) failed while gone)"
[ "$(grep -c ok hot.log)" -gt "$n_ok" ] || fail "no successful read after the return"
expect_eq "$hsid" "$(basename "$(rig_session_dir "$T_HOT")")" "session of $T_HOT (no relogin)"
must dd if="$hdisk" of=hot.back bs=65536 skip=32 count=2 iflag=direct status=none
cmp hot.bin hot.back || fail "the data written before the removal is not there after the return"

step "stop the loops"
touch io.stop hot.stop
wait "$loop_pid"
wait "$hot_pid"
set -- $(cat io.count)
step "I/O loop on $T LUN 0: $1 rounds, $2 errors"
[ "$2" = 0 ] || fail "the I/O loop saw $2 errors: $(tail -n 5 io.err)"
[ "$1" -ge 8 ] || fail "the I/O loop made only $1 rounds"
[ -s io.err ] && fail "the I/O loop logged: $(tail -n 5 io.err)"
disk0n=${disk0#/dev/}
dmesg | grep -q "$disk0n.*I/O error\|I/O error.*dev $disk0n" && fail "kernel I/O errors on $disk0n: $(dmesg | grep "$disk0n" | tail -n 3)"
rig_note "loop: $1 rounds without error through 3 reloads and a hot-plug"
exit 0
