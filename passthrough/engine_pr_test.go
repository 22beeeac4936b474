package passthrough

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// sendPROut sends PERSISTENT RESERVE OUT with service action sa, type typ and
// parameter list param.
func sendPROut(s *testinit.Session, lun uint64, sa byte, typ PRType, param []byte) *testinit.Result {
	return s.Do(lun, proutCDB(sa, 0, typ, len(param)), param, 0)
}

// prKeys reads the registered keys with PERSISTENT RESERVE IN.
func prKeys(t *testing.T, s *testinit.Session, lun uint64) []uint64 {
	t.Helper()
	r := s.Do(lun, prinCDB(saReadKeys, 512), nil, 512)
	want(t, "READ KEYS", r, scsi.Good)
	var keys []uint64
	n := int(binary.BigEndian.Uint32(r.Data[4:8]))
	for i := 8; i+8 <= 8+n && i+8 <= len(r.Data); i += 8 {
		keys = append(keys, binary.BigEndian.Uint64(r.Data[i:]))
	}
	return keys
}

// TestEnginePR: persistent reservations through the engine. A registers
// and reserves Write Exclusive; B's writes conflict and its reads pass;
// SPC-2 RESERVE conflicts while registrations exist; PREEMPT AND ABORT
// removes B's registration, aborts B's command in flight and tells B.
// Nothing reaches the device but the reads and writes.
func TestEnginePR(t *testing.T) {
	dev := newHookDevice(t, "pr")
	lu := newLU(t, "pr", dev)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	addr, _ := serve(t, tg)
	a, b := login(t, addr, iqnA, 1), login(t, addr, iqnB, 1)
	settle(t, a, 0)
	settle(t, b, 0)
	want(t, "REGISTER by A", sendPROut(a, 0, saRegister, 0, basicParams(0, 0xa, 0)), scsi.Good)
	want(t, "RESERVE WE by A", sendPROut(a, 0, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0)), scsi.Good)
	want(t, "WRITE by A", a.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.Good)
	want(t, "WRITE by B", b.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.ReservationConflict)
	want(t, "READ by B", b.Do(0, testinit.Read10(0, 1), nil, 512), scsi.Good)
	want(t, "RESERVE(6) by B", b.Do(0, testinit.Reserve6(), nil, 0), scsi.ReservationConflict)
	want(t, "RESERVE(6) by A", a.Do(0, testinit.Reserve6(), nil, 0), scsi.ReservationConflict)
	r := b.Do(0, prinCDB(saReadReservation, 64), nil, 64)
	want(t, "READ RESERVATION by B", r, scsi.Good)
	if len(r.Data) < 24 || binary.BigEndian.Uint64(r.Data[8:]) != 0xa || PRType(r.Data[21]&0x0f) != PRWriteExclusive {
		t.Fatalf("READ RESERVATION: % x", r.Data)
	}
	want(t, "REGISTER by B", sendPROut(b, 0, saRegister, 0, basicParams(0, 0xb, 0)), scsi.Good)
	want(t, "WRITE by registered B", b.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.ReservationConflict)
	if got := fmt.Sprintf("%x", prKeys(t, a, 0)); got != "[a b]" {
		t.Fatalf("keys %s", got)
	}

	started, cancelled := blocker(dev)
	blocked := b.Start(0, testinit.Read10(99, 1), nil, 512)
	waitFor(t, started, "B's READ reaching the device")
	want(t, "PREEMPT AND ABORT by A", sendPROut(a, 0, saPreemptAndAbort, PRWriteExclusive, basicParams(0xa, 0xb, 0)), scsi.Good)
	waitFor(t, cancelled, "B's READ being aborted")
	select {
	case <-blocked.Done():
		t.Fatalf("the aborted command got a response: %v", blocked.Wait())
	default:
	}
	dev.setHook(nil)
	want(t, "B after the preemption", b.Do(0, testinit.Read10(0, 1), nil, 512), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCRegistrationsPreempted)
	if got := fmt.Sprintf("%x", prKeys(t, b, 0)); got != "[a]" {
		t.Fatalf("keys after PREEMPT AND ABORT %s", got)
	}
	want(t, "A's own commands", a.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.Good)
	// CLEAR by the holder ends it all, tells the other registrants, and
	// SPC-2 works again.
	want(t, "REGISTER by B again", sendPROut(b, 0, saRegister, 0, basicParams(0, 0xbb, 0)), scsi.Good)
	want(t, "CLEAR by A", sendPROut(a, 0, saClear, 0, basicParams(0xa, 0, 0)), scsi.Good)
	want(t, "A after CLEAR", a.Do(0, testinit.TUR(), nil, 0), scsi.Good)
	want(t, "B after A's CLEAR", b.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCReservationsPreempted)
	want(t, "RESERVE(6) by B", b.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
}

// TestEnginePRRelogin: a registration made for the initiator's name (a
// name-only TransportID, SPEC_I_PT) survives a relogin with a new ISID,
// and with it the reservation.
func TestEnginePRRelogin(t *testing.T) {
	addr, w := serve(t, everyone(t, 0))
	a, b := login(t, addr, iqnA, 1), login(t, addr, iqnB, 1)
	settle(t, a, 0)
	settle(t, b, 0)
	want(t, "REGISTER A by name", sendPROut(a, 0, saRegister, 0, specParams(0, 0xa, 0, wireTID(iqnA, ""))), scsi.Good)
	want(t, "RESERVE WE by A", sendPROut(a, 0, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0)), scsi.Good)
	if err := a.Logout(); err != nil {
		t.Fatal(err)
	}
	w.waitDetach(t, port(iqnA, 1))
	a = login(t, addr, iqnA, 7)
	settle(t, a, 0)
	want(t, "WRITE by A with a new ISID", a.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.Good)
	want(t, "WRITE by B", b.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.ReservationConflict)
	want(t, "RELEASE by A with a new ISID", sendPROut(a, 0, saRelease, PRWriteExclusive, basicParams(0xa, 0, 0)), scsi.Good)
	want(t, "WRITE by B after the release", b.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.Good)
}
