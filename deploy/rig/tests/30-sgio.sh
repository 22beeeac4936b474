#!/bin/sh
# The SG_IO backend and discovery on the rig's devices. Discovery (the
# library, and `sanbridge scan --json --all`) must report every device of
# /share/hardware.json with its configured identity and size, read through
# SG_IO. On a scsi_debug disk: INQUIRY, READ CAPACITY(16), READ/WRITE(16)
# with read-back, an out-of-range READ (CHECK CONDITION 05/21/00 as data),
# truthful transfer limits, bursts of 64 and 256 concurrent commands
# without EDOM, cancellation, the polled path of lone commands, close
# under load. Then 4 KiB read IOPS at queue depth 1 and 32 against sg_dd
# and sgp_dd on the same device (reported, not judged: TCG timing swings
# with the host's load), and last a hot unplug with commands in flight.
# rig-timeout: 900
. "$RIG/guest/lib.sh"

run_log() { # run_log NAME CMD...: runs CMD into $RESULTS/$RIG_TEST.NAME.log
	_n=$1
	shift
	"$@" >"$RESULTS/$RIG_TEST.$_n.log" 2>&1
	_rc=$?
	grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:' "$RESULTS/$RIG_TEST.$_n.log" | grep -v writer.go
	return $_rc
}

step "discovery (library) against the configured hardware"
run_log live env SANBRIDGE_RIG_HARDWARE=/share/hardware.json discover.test -test.run Live -test.v ||
	fail "discovery does not match /share/hardware.json"

step "sanbridge scan"
sanbridge scan --all | rig_show
must sanbridge scan --json --all >"$RIG_WORK/scan.json"
cp "$RIG_WORK/scan.json" "$RESULTS/$RIG_TEST.scan.json"
run_log scanjson env SANBRIDGE_RIG_HARDWARE=/share/hardware.json SANBRIDGE_SCAN_JSON="$RIG_WORK/scan.json" \
	discover.test -test.run Live -test.v ||
	fail "sanbridge scan --json does not match /share/hardware.json"

# sdebug-hd3 (scsi_debug host #0, target 1, LUN 1) is the scratch disk.
# All scsi_debug disks share one RAM store; the tests restore what they write.
hctl=$(rig_hw_hctl scsi_debug 0 1 1) || fail "no scsi_debug disk at target 1 LUN 1"
sg=/dev/$(ls "/sys/class/scsi_device/$hctl/device/scsi_generic")
blk=/dev/$(ls "/sys/class/scsi_device/$hctl/device/block")
step "SG_IO integration tests on $sg and $blk ($hctl)"
run_log integration env SANBRIDGE_SG_DEVICE="$sg" SANBRIDGE_SG_BLOCK="$blk" \
	sgio.test -test.run Integration -test.v -test.timeout 10m ||
	fail "sgio integration tests failed"

step "4 KiB read IOPS on $sg, paired runs"
command -v sg_dd >/dev/null && command -v sgp_dd >/dev/null && command -v sgm_dd >/dev/null ||
	fail "sg_dd, sgp_dd or sgm_dd (sg3-utils) missing from the image"
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
bench() { # bench PATTERN COUNT: IOPS of the benchmark PATTERN over COUNT reads
	SANBRIDGE_SG_DEVICE=$sg sgio.test -test.run '^$' -test.bench "$1" -test.benchtime "$2x" 2>/dev/null |
		awk '/^Benchmark/{for(i=2;i<=NF;i++) if($i=="IOPS") v=$(i-1)} END{printf "%d\n", v}'
}
sgdd() { # sgdd [COUNT]: IOPS of sg_dd over COUNT (default 3000) 4 KiB reads, one SG_IO ioctl each
	_n=${1:-3000}
	t=$(sg_dd if="$sg" of=/dev/null bs=512 bpt=8 count=$((_n * 8)) time=1 2>&1 | sed -n 's/.*data: \([0-9.]*\) secs.*/\1/p')
	awk -v t="$t" -v n="$_n" 'BEGIN{ if (t > 0) printf "%d", n/t; else print 0 }'
}
# Columns: sg_dd (QD1) before and after sgio QD1 (the ratio uses their
# mean, so that a drift of the host's load during a pair cancels out),
# sgio QD1 as the gateway uses it (polled, solo descriptor, data lent
# with ExecuteLent) and with the data copied into the caller's buffer
# (Execute), sgp_dd (16 threads on one
# descriptor), sgio QD1 without the solo descriptor, without polling,
# the Go floor (a bare loop of raw SG_IO ioctls, what sg_dd does), sgio
# QD32, the polled path's own floor (its system calls in a bare loop),
# and sgm_dd (sg_dd with the reserved buffer mapped: the kernel copies no
# data at all).
: >"$RIG_WORK/bench"
for i in 1 2 3 4 5; do
	d1=$(sgdd)
	a1=$(bench 'SGRead4K/^async-lent$/QD1$' 3000)
	c1=$(bench 'SGRead4K/^async$/QD1$' 3000)
	d2=$(sgdd)
	t=$(sgp_dd if="$sg" of=/dev/null bs=512 bpt=8 thr=16 count=64000 time=1 2>&1 | sed -n 's/.*was \([0-9.]*\) secs.*/\1/p')
	sgp=$(awk -v t="$t" 'BEGIN{ if (t > 0) printf "%d", 8000/t; else print 0 }')
	ns=$(bench 'SGRead4K/^async-nosolo$/QD1$' 3000)
	u1=$(bench 'SGRead4K/^async-unpolled$/QD1$' 3000)
	fl=$(bench 'SGRead4KBareLoop/^ioctl$' 3000)
	a32=$(bench 'SGRead4K/^async$/QD32$' 8000)
	pf=$(bench 'SGRead4KBareLoop/^polled$' 3000)
	t=$(sgm_dd if="$sg" of=/dev/null bs=512 bpt=8 count=24000 time=1 2>&1 | sed -n 's/.*data[^0-9]*\([0-9.]*\) secs.*/\1/p' | head -1)
	sgm=$(awk -v t="$t" 'BEGIN{ if (t > 0) printf "%d", 3000/t; else print 0 }')
	sgdd=$(( (d1 + d2) / 2 ))
	echo "$sgdd $sgp $a1 $u1 $fl $a32 $pf $ns $sgm $c1" >>"$RIG_WORK/bench"
	echo "pair $i: sg_dd(QD1)=$d1/$d2 sgio(QD1)=$a1 copied(QD1)=$c1 sgp_dd(QD16)=$sgp no-solo(QD1)=$ns unpolled(QD1)=$u1 go-floor(QD1)=$fl sgio(QD32)=$a32 polled-floor(QD1)=$pf sgm_dd(QD1)=$sgm"
done
col() { awk -v c="$1" '{print $c}' "$RIG_WORK/bench" | median; }
ratio() { awk -v a="$1" -v b="$2" '$b > 0 {printf "%.2f\n", $a/$b}' "$RIG_WORK/bench" | median; }
cp "$RIG_WORK/bench" "$RESULTS/$RIG_TEST.bench.txt"
rig_note "4K read IOPS, medians of 5 pairs: QD1 sgio $(col 3) vs sg_dd $(col 1), ratio $(ratio 3 1) (copied into the caller's buffer $(col 10), ratio $(ratio 10 1); without the solo descriptor $(col 8), ratio $(ratio 8 1); unpolled $(col 4), ratio $(ratio 4 1)); Go floor $(col 5), ratio $(ratio 5 1); polled floor $(col 7), sgio/polled floor $(ratio 3 7); sgm_dd $(col 9), ratio $(ratio 9 1), sgio/sgm_dd $(ratio 3 9); QD32 sgio $(col 6) vs sgp_dd QD16 $(col 2), ratio $(ratio 6 2)"

step "4 KiB read IOPS at QD1 on $sg, interleaved in one process"
# sgio against the Go raw SG_IO loop (sg_dd's system call) and its own
# polled floor, in alternating chunks of one process (see
# BenchmarkSGRead4KInterleaved): steady where the paired runs above swing.
: >"$RIG_WORK/inter"
for i in 1 2 3 4 5; do
	SANBRIDGE_SG_DEVICE=$sg sgio.test -test.run '^$' -test.bench 'SGRead4KInterleaved' -test.benchtime 4000x 2>/dev/null |
		awk '/^Benchmark/{for(i=2;i<=NF;i++) v[$i]=$(i-1); printf "%s %s %s %s %s %s %s\n", v["lent/ioctl"], v["copied/ioctl"], v["polled/ioctl"], v["lent-IOPS"], v["copied-IOPS"], v["ioctl-IOPS"], v["polled-IOPS"]}' >>"$RIG_WORK/inter"
done
sed 's/^/interleaved: lent\/ioctl copied\/ioctl polled\/ioctl lent copied ioctl polled: /' "$RIG_WORK/inter"
cp "$RIG_WORK/inter" "$RESULTS/$RIG_TEST.interleaved.txt"
icol() { awk -v c="$1" '{print $c}' "$RIG_WORK/inter" | median; }
[ "$(wc -l <"$RIG_WORK/inter")" -eq 5 ] || fail "interleaved benchmark gave no figures"
rig_note "4K read QD1 interleaved, medians of 5 runs: sgio lent $(icol 4) (copied $(icol 5)) vs Go raw SG_IO loop $(icol 6): ratio $(icol 1) (copied $(icol 2)); polled floor/ioctl $(icol 3); with the paired Go loop/sg_dd ratio $(ratio 5 1): sgio/sg_dd $(awk -v a="$(icol 1)" -v b="$(ratio 5 1)" 'BEGIN{printf "%.2f", a*b}')"

step "sanbridge bench (the gateway binary, sgio as the gateway uses it) against sg_dd and sgp_dd"
sb() { # sb COUNT QD: IOPS of "sanbridge bench"
	sanbridge bench --count "$1" --qd "$2" "$sg" | sed -n 's/.* s: \([0-9]*\) IOPS.*/\1/p'
}
sanbridge bench --count 2000 "$sg" || fail "sanbridge bench failed"
: >"$RIG_WORK/sb"
for i in 1 2 3 4 5 6 7 8 9; do
	d1=$(sgdd 8000)
	b1=$(sb 8000 1)
	d2=$(sgdd 8000)
	b32=$(sb 16000 32)
	t=$(sgp_dd if="$sg" of=/dev/null bs=512 bpt=8 thr=16 count=128000 time=1 2>&1 | sed -n 's/.*was \([0-9.]*\) secs.*/\1/p')
	sgp=$(awk -v t="$t" 'BEGIN{ if (t > 0) printf "%d", 16000/t; else print 0 }')
	echo "$(( (d1 + d2) / 2 )) $b1 $sgp $b32" >>"$RIG_WORK/sb"
	echo "sandwich $i: sg_dd=$d1/$d2 sanbridge-bench(QD1)=$b1 sgp_dd(QD16)=$sgp sanbridge-bench(QD32)=$b32"
done
cp "$RIG_WORK/sb" "$RESULTS/$RIG_TEST.bench-binary.txt"
scol() { awk -v c="$1" '{print $c}' "$RIG_WORK/sb" | median; }
sratio() { awk -v a="$1" -v b="$2" '$b > 0 {printf "%.2f\n", $a/$b}' "$RIG_WORK/sb" | median; }
rig_note "sanbridge bench, medians of 9: QD1 $(scol 2) vs sg_dd $(scol 1), ratio $(sratio 2 1); QD32 $(scol 4) vs sgp_dd QD16 $(scol 3), ratio $(sratio 4 3)"

step "hot unplug of $sg with commands in flight"
run_log hotunplug env SANBRIDGE_SG_DEVICE="$sg" SANBRIDGE_SG_HOTUNPLUG=1 sgio.test -test.run HotUnplug -test.v ||
	fail "hot unplug"
rig_wait_for 10 test -e "/sys/class/scsi_device/$hctl" || fail "$hctl did not come back after the rescan"
