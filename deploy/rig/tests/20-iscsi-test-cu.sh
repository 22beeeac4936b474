#!/bin/sh
# libiscsi's iscsi-test-cu inside the guest over 127.0.0.1: the iSCSI families
# and the SCSI families the emulated disk claims (issue 2). CUnit counts
# [SKIPPED] tests as passed, so the log is parsed for passed / failed /
# skipped per test. sanbridge must have no failure; tgtd (the comparison peer)
# must fail no test beyond its known failures (../shared/RIG.md baseline).
# rig-targets: each
# rig-timeout: 600
. "$RIG/guest/lib.sh"

FAMILIES="iSCSI.iSCSIcmdsn iSCSI.iSCSIdatasn iSCSI.iSCSIResiduals iSCSI.iSCSITMF"
for s in Inquiry ReadCapacity10 ReadCapacity16 Read6 Read10 Read12 Read16 \
	Write10 Write12 Write16 WriteVerify10 WriteVerify12 WriteVerify16 \
	Verify10 Verify12 Verify16 WriteSame10 WriteSame16 Unmap TestUnitReady \
	ModeSense6 ReportSupportedOpcodes Mandatory NoMedia; do
	FAMILIES="$FAMILIES SCSI.$s"
done

# Failures tgtd 1.0.85 is known to have among these families.
TGTD_KNOWN="iSCSIdatasn.iSCSIDataSnInvalid"

rig_target_start
trap 'rig_target_stop' EXIT

url="iscsi://$RIG_HOST/$RIG_IQN_OPEN/$RIG_LUN"
# One run per family, so the log shows where the time goes.
: >cu.log
for fam in $FAMILIES; do
	t0=$(now)
	timeout 300 iscsi-test-cu -d -t "$fam" "$url" >>cu.log 2>&1
	rc=$?
	step "$fam: status $rc, $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
done
cp cu.log "$RESULTS/$RIG_TEST.cu.log"

rig_cu_results cu.log >results.txt

total=$(wc -l <results.txt)
pass=$(grep -c ' pass$' results.txt)
skipn=$(grep -c ' skip$' results.txt)
failn=$(grep -c ' fail$' results.txt)
ran=$(awk '$1 == "tests" { n += $3 } END { print n + 0 }' cu.log)
cufail=$(awk '$1 == "tests" { n += $5 } END { print n + 0 }' cu.log)

grep ' fail$' results.txt | sed 's/^/failed: /'
grep ' skip$' results.txt | sed 's/^/skipped: /'
rig_note "iscsi-test-cu: $total tests, $pass passed, $failn failed, $skipn skipped (CUnit: ran ${ran:-?}, failed ${cufail:-?})"

rig_cu_check cu.log results.txt

if [ "${RIG_TARGET_KIND}" = tgtd ]; then
	unexpected=$(grep ' fail$' results.txt | cut -d' ' -f1 | while read -r t; do
		case " $TGTD_KNOWN " in *" $t "*) ;; *) echo "$t" ;; esac
	done)
	[ -z "$unexpected" ] || fail "tgtd failed beyond its known failures: $unexpected"
else
	[ "$failn" = 0 ] || fail "$failn iscsi-test-cu tests failed: $(grep ' fail$' results.txt | cut -d' ' -f1 | tr '\n' ' ')"
fi
