#!/bin/sh
# CHAP with the Linux kernel initiator: a CHAP target refuses a login without
# credentials and with a wrong secret and accepts the right one; a mutual-CHAP
# target is refused by the initiator when the target's own secret is wrong and
# works when it is right. Data written through a CHAP session reads back.
# rig-targets: each
# rig-timeout: 240
. "$RIG/guest/lib.sh"

rig_target_start
trap 'rig_reset; rig_target_stop' EXIT

# login_fails IQN WHAT: the login must fail and leave no session.
login_fails() {
	if rig_login "$1" >login.out 2>&1; then
		cat login.out
		fail "login to $1 succeeded $2"
	fi
	cat login.out
	rig_session_dir "$1" >/dev/null && fail "a session to $1 exists after a failed login"
	step "refused as expected: $2"
}

step "one-way CHAP: $RIG_IQN_CHAP"
must rig_node "$RIG_IQN_CHAP"
login_fails "$RIG_IQN_CHAP" "without credentials"
must rig_node_chap "$RIG_IQN_CHAP" "$RIG_CHAP_USER" "wrong-secret-0123"
login_fails "$RIG_IQN_CHAP" "with a wrong secret"
must rig_node_chap "$RIG_IQN_CHAP" "$RIG_CHAP_USER" "$RIG_CHAP_SECRET"
must rig_login "$RIG_IQN_CHAP"
disk=$(rig_lun_disk "$RIG_IQN_CHAP") || fail "no block device for the CHAP LUN"
step "CHAP LUN is /dev/$disk"
head -c 1048576 /dev/urandom >data.bin
must dd if=data.bin of="/dev/$disk" bs=64k seek=3 oflag=direct status=none
must dd if="/dev/$disk" of=back.bin bs=64k skip=3 count=16 iflag=direct status=none
cmp data.bin back.bin || fail "data read back through the CHAP session differs"
must rig_logout "$RIG_IQN_CHAP"

step "mutual CHAP: $RIG_IQN_MUTUAL"
must rig_node "$RIG_IQN_MUTUAL"
must rig_node_chap "$RIG_IQN_MUTUAL" "$RIG_CHAP_USER" "$RIG_CHAP_SECRET" "$RIG_MUTUAL_USER" "wrong-target-secret"
login_fails "$RIG_IQN_MUTUAL" "with a wrong target secret (initiator must reject the target)"
must rig_node_chap "$RIG_IQN_MUTUAL" "$RIG_CHAP_USER" "$RIG_CHAP_SECRET" "$RIG_MUTUAL_USER" "$RIG_MUTUAL_SECRET"
must rig_login "$RIG_IQN_MUTUAL"
disk=$(rig_lun_disk "$RIG_IQN_MUTUAL") || fail "no block device for the mutual-CHAP LUN"
must dd if="/dev/$disk" of=/dev/null bs=1M count=4 iflag=direct status=none
must rig_logout "$RIG_IQN_MUTUAL"
rig_note "one-way and mutual CHAP logins accepted; missing/wrong credentials refused"
