#!/bin/sh
# iSCSI pass-through against tgt's: one scsi_debug disk (delay=0) served by
# sanbridge (device LUN, SG_IO) and then by tgtd (bs_sg, --device-type pt),
# each measured with iscsi-perf, 4 KiB random reads at queue depth 1 and 32,
# several alternating rounds. Fails when sanbridge does not serve the disk
# cleanly (an iscsi-perf error or no I/O); tgtd's outcome is reported, not
# judged (its sg back end answers errors under load), and so are the
# figures (TCG timing swings with the host's load).
# rig-timeout: 400
. "$RIG/guest/lib.sh"

hctl=$(rig_hw_hctl scsi_debug 0 0 0) || fail "no scsi_debug disk at target 0 LUN 0"
sg=/dev/$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic")
IQN=iqn.2026-11.io.sanbridge:ptperf
step "scsi_debug disk $hctl ($sg)"

rig_passthrough_config "$IQN" "$sg" >ptperf.hcl

perf() { # perf URL QD: IOPS of iscsi-perf (4 KiB random reads, about 8 s)
	iscsi-perf -l -r -m "$2" -b 8 "$1" >perf.out 2>&1 &
	_p=$!
	sleep 8
	# SIGINT lets the commands in flight finish; a target that never
	# answers them gets the client killed.
	kill -INT "$_p" 2>/dev/null
	rig_wait_for 5 sh -c "! kill -0 $_p" || { kill -KILL "$_p" 2>/dev/null; echo "(iscsi-perf killed: commands never completed)" >>perf.out; }
	wait "$_p" 2>/dev/null
	{
		echo "== iscsi-perf -m $2 $1"
		tr '\r' '\n' <perf.out | tail -n 5
	} >>"$RESULTS/$RIG_TEST.iscsi-perf.log"
	if grep -qi 'error\|fail\|killed' perf.out; then
		sed 's/^/    | /' perf.out | tail -n 5 >&2
		echo 0
		return
	fi
	tr '\r' '\n' <perf.out | sed -nE 's/.*iops average ([0-9]+).*/\1/p' | tail -n 1
}

port_free() { ! _port_listening 3260; }

sanbridge_round() {
	rig_sanbridge_start "$PWD/ptperf.hcl" --log-level info
	for qd in 1 32; do
		v=$(perf "iscsi://127.0.0.1:3260/$IQN/0" $qd)
		[ "${v:-0}" -gt 0 ] || { rig_sanbridge_stop; fail "iscsi-perf QD$qd against sanbridge: no I/O or errors"; }
		echo "sanbridge QD$qd $v" >>perf.tsv
	done
	rig_sanbridge_stop
}

tgtd_round() {
	tgtd -f --iscsi portal=127.0.0.1:3260 </dev/null >>"$RESULTS/$RIG_TEST.tgtd.log" 2>&1 &
	tpid=$!
	rig_wait_for 20 _port_listening 3260 || fail "tgtd not listening"
	must tgtadm --lld iscsi --op new --mode target --tid 1 -T "$IQN"
	# LUN 1: tgt's LUN 0 is its own controller.
	must tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --bstype sg --device-type pt -b "$sg"
	must tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
	for qd in 1 32; do
		v=$(perf "iscsi://127.0.0.1:3260/$IQN/1" $qd)
		echo "tgtd QD$qd ${v:-0}" >>perf.tsv
	done
	kill "$tpid" 2>/dev/null
	rig_wait_for 5 sh -c "! kill -0 $tpid" || kill -KILL "$tpid" 2>/dev/null
	wait "$tpid" 2>/dev/null
	rig_wait_for 20 port_free || fail "tgtd did not release port 3260"
}

: >perf.tsv
for round in 1 2 3; do
	step "round $round"
	sanbridge_round
	tgtd_round
done
cp perf.tsv "$RESULTS/$RIG_TEST.perf.tsv"
cat perf.tsv
med() { awk -v k="$1 $2" '$1" "$2 == k {print $3}' perf.tsv | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]+0}'; }
rig_note "iSCSI pass-through, 4K random reads, median IOPS of 3 rounds: QD1 sanbridge $(med sanbridge QD1) vs tgtd bs_sg $(med tgtd QD1); QD32 sanbridge $(med sanbridge QD32) vs tgtd bs_sg $(med tgtd QD32)"
exit 0
