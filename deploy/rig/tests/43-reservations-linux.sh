#!/bin/sh
# Reservations with the Linux initiator (issue 11): two open-iscsi ifaces
# with different initiator names log in to one sanbridge target that passes
# through a scsi_debug disk. Host A registers (APTPL) and reserves Write
# Exclusive with sg_persist; host B sees A's key and reservation, its WRITE
# gets RESERVATION CONFLICT (sg_raw, and dd on its block device fails) while
# its READ works and A's write lands. sanbridge is restarted with the same
# state directory: after a new login the registrations and the reservation
# are still there and still enforced, and A, back with a new ISID, takes the
# reservation over with PREEMPT of its own key. Then SPC-2: RESERVE(6) from
# A, B's WRITE conflicts, B's RELEASE changes nothing, A's RELEASE lets B
# write, and a reservation ends when its holder logs out.
# rig-timeout: 240
. "$RIG/guest/lib.sh"

IQN=iqn.2026-11.io.sanbridge:resv
INIT_A=iqn.2026-11.io.sanbridge:rig-host-a
INIT_B=iqn.2026-11.io.sanbridge:rig-host-b
KEY_A=0xa1a1a1
KEY_B=0xb2b2b2
STATE=$PWD/state

hctl=$(rig_hw_hctl scsi_debug 0 1 0) || fail "no scsi_debug disk at target 1 LUN 0 (sdebug-hd2)"
sg=/dev/$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic")
step "scsi_debug disk sdebug-hd2 is $hctl ($sg)"
sg_turs "$sg" >/dev/null 2>&1

mkdir -p "$STATE"
rig_passthrough_config "$IQN" "$sg" >resv.hcl
start_gateway() {
	rig_sanbridge_start "$PWD/resv.hcl" --state-dir "$STATE"
}

cleanup() {
	rig_reset
	rig_iface_delete ifA
	rig_iface_delete ifB
	rig_sanbridge_stop
}
trap cleanup EXIT
start_gateway
must rig_iface_new ifA "$INIT_A"
must rig_iface_new ifB "$INIT_B"

login() { # login: both hosts; sets sgA sgB sdB
	for i in ifA ifB; do
		rig_node_iface "$IQN" $i || fail "node record through $i"
		rig_login_iface "$IQN" $i >/dev/null || fail "login through $i"
	done
	sA=$(rig_session_dir_iface "$IQN" ifA) || fail "no session through ifA"
	sB=$(rig_session_dir_iface "$IQN" ifB) || fail "no session through ifB"
	expect_eq "$INIT_A" "$(cat "$sA/initiatorname")" "initiator name of ifA's session"
	expect_eq "$INIT_B" "$(cat "$sB/initiatorname")" "initiator name of ifB's session"
	sgA=/dev/$(rig_session_sg "$sA" 0) || fail "no sg device for A"
	sgB=/dev/$(rig_session_sg "$sB" 0) || fail "no sg device for B"
	sdB=/dev/$(rig_session_disk "$sB" 0) || fail "no block device for B"
	step "A: $sgA, B: $sgB ($sdB)"
	ready "$sgA"
	ready "$sgB"
}
logout() {
	rig_logout_iface "$IQN" ifA >/dev/null || fail "logout of ifA"
	rig_logout_iface "$IQN" ifB >/dev/null || fail "logout of ifB"
}

# ready SG: consumes pending unit attentions (TEST UNIT READY until GOOD).
ready() {
	_n=0
	until sg_turs "$1" >/dev/null 2>&1; do
		_n=$((_n + 1))
		[ "$_n" -ge 5 ] && fail "$1 not ready: $(sg_turs "$1" 2>&1)"
	done
}

head -c 512 /dev/urandom >a.blk
head -c 512 /dev/urandom >b.blk
write10() { # write10 SG FILE: WRITE(10) of one block at LBA 2048; prints sg_raw's output
	sg_raw -s 512 -i "$2" "$1" 2a 00 00 00 08 00 00 00 01 00 2>&1
}
read10() { # read10 SG FILE: READ(10) of one block at LBA 2048 into FILE
	sg_raw -r 512 -o "$2" "$1" 28 00 00 00 08 00 00 00 01 00 2>&1
}
conflicts() { # conflicts OUTPUT: sg_raw's output names RESERVATION CONFLICT
	echo "$1" | grep -qi 'reservation conflict'
}
writes() { # writes WHO SG FILE: the write succeeds and reads back
	_o=$(write10 "$2" "$3") || fail "$1's WRITE failed: $_o"
	_o=$(read10 "$2" back.blk) || fail "$1's READ failed: $_o"
	cmp -s "$3" back.blk || fail "$1 does not read back what it wrote"
}
write_conflicts() { # write_conflicts WHO SG
	_o=$(write10 "$2" b.blk) && fail "$1's WRITE succeeded during the reservation: $_o"
	conflicts "$_o" || fail "$1's WRITE failed without RESERVATION CONFLICT: $_o"
}
reads() { # reads WHO SG
	_o=$(read10 "$2" r.blk) || fail "$1's READ failed during a Write Exclusive reservation: $_o"
}

login

step "persistent reservation: B registers, A registers with APTPL and reserves Write Exclusive"
out=$(sg_persist -n --out --register --param-sark=$KEY_B "$sgB" 2>&1) || fail "B's REGISTER: $out"
out=$(sg_persist -n --out --register --param-sark=$KEY_A --param-aptpl "$sgA" 2>&1) || fail "A's REGISTER: $out"
out=$(sg_persist -n --out --reserve --param-rk=$KEY_A --prout-type=1 "$sgA" 2>&1) || fail "A's RESERVE: $out"

# check_pr WHEN: B sees both keys and A's Write Exclusive reservation, B's
# RESERVE and WRITE conflict, B's READ works.
check_pr() {
	step "$1: B reads keys and reservation"
	keys=$(sg_persist -n --in --read-keys "$sgB" 2>&1) || fail "B's READ KEYS: $keys"
	echo "$keys"
	echo "$keys" | grep -q "$KEY_A" || fail "$1: A's key missing from READ KEYS: $keys"
	echo "$keys" | grep -q "$KEY_B" || fail "$1: B's key missing from READ KEYS: $keys"
	resv=$(sg_persist -n --in --read-reservation "$sgB" 2>&1) || fail "B's READ RESERVATION: $resv"
	echo "$resv"
	echo "$resv" | grep -qi "key=$KEY_A" || fail "$1: the reservation is not A's: $resv"
	echo "$resv" | grep -qi 'type: *Write Exclusive$' || fail "$1: not Write Exclusive: $resv"
	step "$1: B's RESERVE and WRITE conflict, its READ works"
	out=$(sg_persist -n --out --reserve --param-rk=$KEY_B --prout-type=1 "$sgB" 2>&1) &&
		fail "$1: B reserved over A's reservation: $out"
	echo "$out" | grep -qi 'reservation conflict' || fail "$1: B's RESERVE failed without RESERVATION CONFLICT: $out"
	write_conflicts B "$sgB"
	reads B "$sgB"
	dd if=b.blk of="$sdB" bs=512 seek=2048 count=1 oflag=direct conv=notrunc 2>/dev/null &&
		fail "$1: dd to B's $sdB succeeded during the reservation"
	must dd if="$sdB" of=/dev/null bs=512 skip=2048 count=1 iflag=direct status=none
}
# a_writes WHEN: the holder writes, and B reads what A wrote.
a_writes() {
	step "$1: A (the holder) writes, B reads it"
	writes A "$sgA" a.blk
	must read10 "$sgB" r.blk >/dev/null
	cmp -s a.blk r.blk || fail "$1: B does not read what A wrote"
}
check_pr "reserved"
a_writes "reserved"

step "restart sanbridge with the same state directory ($STATE)"
logout
rig_sanbridge_stop
cp "$RIG_SANBRIDGE_LOG" "$RESULTS/$RIG_TEST.sanbridge-1.log"
ls -l "$STATE"
[ -n "$(ls -A "$STATE")" ] || fail "the state directory is empty after an APTPL registration"
start_gateway
login
isid() { # isid LOG INITIATOR: the ISIDs of INITIATOR's sessions in LOG
	sed -n "s/.*\"initiator\":\"$2\",\"isid\":\"\([0-9a-f]*\)\".*session established.*/\1/p" "$1" | tr '\n' ' '
}
rig_note "A's ISID before the restart: $(isid "$RESULTS/$RIG_TEST.sanbridge-1.log" "$INIT_A")after: $(isid "$RIG_SANBRIDGE_LOG" "$INIT_A")"
check_pr "after the restart"
# open-iscsi logs in with a new ISID (its session number), so A comes back
# as a new I_T nexus, neither registered nor the holder (SPC-4 5.13.5). It
# registers again and preempts its own old registration, which moves the
# reservation to its new nexus (SPC-4 PREEMPT naming the reservation
# holder's key).
step "after the restart: A registers its new nexus and preempts its old one"
out=$(sg_persist -n --out --register-ignore --param-sark=$KEY_A --param-aptpl "$sgA" 2>&1) ||
	fail "A's REGISTER AND IGNORE EXISTING KEY: $out"
out=$(sg_persist -n --out --preempt --param-rk=$KEY_A --param-sark=$KEY_A --prout-type=1 "$sgA" 2>&1) ||
	fail "A's PREEMPT of its own key: $out"
ready "$sgB"
keys=$(sg_persist -n --in --read-keys "$sgA" 2>&1) || fail "A's READ KEYS: $keys"
expect_eq 1 "$(echo "$keys" | grep -c "^ *$KEY_A\$")" "registrations with A's key after its PREEMPT (READ KEYS: $keys)"
check_pr "A's reservation again"
a_writes "A's reservation again"

step "A clears: no key, no reservation, B writes"
out=$(sg_persist -n --out --clear --param-rk=$KEY_A "$sgA" 2>&1) || fail "A's CLEAR: $out"
ready "$sgB"
keys=$(sg_persist -n --in --read-keys "$sgB" 2>&1) || fail "B's READ KEYS: $keys"
echo "$keys" | grep -qi 'no registered reservation keys' || fail "keys left after CLEAR: $keys"
writes B "$sgB" b.blk

step "SPC-2: RESERVE(6) from A"
out=$(sg_raw "$sgA" 16 00 00 00 00 00 2>&1) || fail "A's RESERVE(6): $out"
write_conflicts B "$sgB"
out=$(read10 "$sgB" r.blk) && fail "B's READ succeeded during A's RESERVE(6): $out"
conflicts "$out" || fail "B's READ failed without RESERVATION CONFLICT: $out"
out=$(sg_raw "$sgB" 16 00 00 00 00 00 2>&1) && fail "B's RESERVE(6) succeeded over A's: $out"
conflicts "$out" || fail "B's RESERVE(6) failed without RESERVATION CONFLICT: $out"
out=$(sg_raw "$sgB" 17 00 00 00 00 00 2>&1) || fail "B's RELEASE(6) (not the holder) is not GOOD: $out"
write_conflicts B "$sgB"
writes A "$sgA" a.blk
out=$(sg_raw "$sgA" 17 00 00 00 00 00 2>&1) || fail "A's RELEASE(6): $out"
writes B "$sgB" b.blk

step "SPC-2: the reservation ends when its holder logs out"
out=$(sg_raw "$sgA" 16 00 00 00 00 00 2>&1) || fail "A's RESERVE(6): $out"
write_conflicts B "$sgB"
rig_logout_iface "$IQN" ifA >/dev/null || fail "logout of ifA"
writes B "$sgB" b.blk
rig_logout_iface "$IQN" ifB >/dev/null || fail "logout of ifB"
exit 0
