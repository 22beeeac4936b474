package passthrough

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const (
	iqnA = "iqn.2026-11.io.sanbridge:a"
	iqnB = "iqn.2026-11.io.sanbridge:b"
)

// hookDevice is a real emulated disk with a hook that may answer a
// command in its place (to inject a unit attention, accept a MODE
// SELECT the disk does not implement, or block), and a count of resets.
type hookDevice struct {
	*emul.Disk
	mu     sync.Mutex
	hook   func(ctx context.Context, req *sgio.Request, res *sgio.Result) bool
	resets atomic.Int32
}

func (h *hookDevice) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	h.mu.Lock()
	hook := h.hook
	h.mu.Unlock()
	if hook != nil && hook(ctx, req, res) {
		return ctx.Err()
	}
	return h.Disk.Execute(ctx, req, res)
}

func (h *hookDevice) Reset(ctx context.Context) error {
	h.resets.Add(1)
	return h.Disk.Reset(ctx)
}

func (h *hookDevice) setHook(f func(ctx context.Context, req *sgio.Request, res *sgio.Result) bool) {
	h.mu.Lock()
	h.hook = f
	h.mu.Unlock()
}

// injectUA makes the device answer its next command with a unit
// attention asc, once.
func (h *hookDevice) injectUA(asc scsi.ASC) {
	var once atomic.Bool
	h.setHook(func(_ context.Context, _ *sgio.Request, res *sgio.Result) bool {
		if !once.CompareAndSwap(false, true) {
			return false
		}
		*res = sgio.Result{Status: scsi.CheckCondition, Sense: scsi.FixedSense(scsi.SenseUnitAttention, asc)}
		return true
	})
}

func newHookDevice(t *testing.T, serial string) *hookDevice {
	return &hookDevice{Disk: newDisk(t, serial)}
}

// clearUAs consumes the unit attentions pending for n on lun with TEST
// UNIT READY until it passes.
func clearUAs(t *testing.T, tg *Target, n *iscsi.Nexus, lun uint64) {
	t.Helper()
	for range maxUnitAttentions + 1 {
		r := run(t, tg, n, lun, testinit.TUR(), 0)
		if r.Status == scsi.Good {
			return
		}
		wantSt(t, r, scsi.CheckCondition)
		if s := senseOf(t, r); s.Key != scsi.SenseUnitAttention {
			t.Fatalf("TEST UNIT READY: %v", &s)
		}
	}
	t.Fatal("unit attentions never cleared")
}

// TestReportLUNsPerView: each initiator's REPORT LUNS lists its own view;
// allocation rules as before.
func TestReportLUNsPerView(t *testing.T) {
	lu0, lu1, lu2 := newLU(t, "d0", nil), newLU(t, "d1", nil), newLU(t, "d2", nil)
	va := mustView(t, Mapping{LUN: 3, LU: lu1}, Mapping{LUN: 0, LU: lu0}, Mapping{LUN: 300, LU: lu2})
	vb := mustView(t, Mapping{LUN: 5, LU: lu1, ReadOnly: true})
	tg := newTarget(t, func(name string) View {
		switch name {
		case iqnA:
			return va
		case iqnB:
			return vb
		}
		return View{}
	}, lu0, lu1, lu2)
	for _, tc := range []struct {
		name string
		want string
	}{{iqnA, "[0 3 300]"}, {iqnB, "[5]"}, {"iqn.2026-11.io.sanbridge:nobody", "[]"}} {
		n := nexusOf(tc.name, 1)
		tg.Attach(n, nil)
		r, data := runData(t, tg, n, 7, testinit.ReportLUNs(4096), 4096)
		wantSt(t, r, scsi.Good)
		if got := fmt.Sprint(reportedLUNs(t, data)); got != tc.want {
			t.Errorf("%s: REPORT LUNS %s, want %s", tc.name, got, tc.want)
		}
	}
	n := nexusOf(iqnA, 1)
	// Truncated to the allocation length, Wanted says the full size.
	r := run(t, tg, n, 0, testinit.ReportLUNs(16), 16)
	if r.ReadLen != 16 || r.Wanted != 16 {
		t.Fatalf("truncated: len %d wanted %d", r.ReadLen, r.Wanted)
	}
	// Allocation length below 16 and a bad SELECT REPORT are errors.
	wantCheck(t, run(t, tg, n, 0, testinit.ReportLUNs(8), 8), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	c := testinit.ReportLUNs(64)
	c[2] = 7
	wantCheck(t, run(t, tg, n, 0, c, 64), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
}

// TestMasking: a LUN outside the initiator's view does not exist for it,
// even when another initiator has a logical unit there.
func TestMasking(t *testing.T) {
	lu0, lu1 := newLU(t, "d0", nil), newLU(t, "d1", nil)
	va := mustView(t, Mapping{LUN: 0, LU: lu0}, Mapping{LUN: 1, LU: lu1})
	vb := mustView(t, Mapping{LUN: 1, LU: lu1})
	tg := newTarget(t, func(name string) View {
		if name == iqnA {
			return va
		}
		return vb
	}, lu0, lu1)
	a, b := nexusOf(iqnA, 1), nexusOf(iqnB, 1)
	tg.Attach(a, nil)
	tg.Attach(b, nil)
	clearUAs(t, tg, a, 0)
	wantCheck(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	wantCheck(t, run(t, tg, b, 0, testinit.Read10(0, 1), 512), scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	r, data := runData(t, tg, b, 0, testinit.Inquiry(36), 36)
	wantSt(t, r, scsi.Good)
	if len(data) != 36 || data[0] != 0x7f {
		t.Fatalf("INQUIRY outside the view: % x, want peripheral qualifier 011b type 1Fh", data)
	}
	r, data = runData(t, tg, b, 0, testinit.RequestSense(18), 18)
	wantSt(t, r, scsi.Good)
	if s, _ := scsi.ParseSense(data); s.ASC != scsi.ASCLUNNotSupported {
		t.Fatalf("REQUEST SENSE outside the view: %v", &s)
	}
	// The same LUN number works for a, and LUN 1 for both.
	wantSt(t, run(t, tg, a, 0, testinit.Read10(0, 1), 512), scsi.Good)
	if !tg.HasLUN(a, iscsi.MakeLUN(0)) || tg.HasLUN(b, iscsi.MakeLUN(0)) || !tg.HasLUN(b, iscsi.MakeLUN(1)) {
		t.Fatal("HasLUN does not follow the views")
	}
	if got := tg.TaskManagement(context.Background(), b, iscsi.TMFLogicalUnitReset, iscsi.MakeLUN(0)); got != iscsi.TMFLUNNotExist {
		t.Fatalf("LU reset outside the view: %v", got)
	}
}

// TestUnitAttentionAtAttach: a new nexus gets POWER ON, RESET, OR BUS
// DEVICE RESET OCCURRED once per logical unit; INQUIRY and REPORT LUNS
// leave it pending, REQUEST SENSE returns and clears it.
func TestUnitAttentionAtAttach(t *testing.T) {
	tg := everyone(t, 0, 1, 2)
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	wantSt(t, run(t, tg, n, 0, testinit.Inquiry(36), 36), scsi.Good)
	wantSt(t, run(t, tg, n, 0, testinit.ReportLUNs(64), 64), scsi.Good)
	wantCheck(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	wantSt(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.Good)
	// LUN 1 still has its own.
	wantCheck(t, run(t, tg, n, 1, testinit.Read10(0, 1), 512), scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	wantSt(t, run(t, tg, n, 1, testinit.Read10(0, 1), 512), scsi.Good)
	// REQUEST SENSE on LUN 2 returns it as data, in the format asked.
	c := testinit.RequestSense(32)
	c[1] = 0x01 // DESC
	r, data := runData(t, tg, n, 2, c, 32)
	wantSt(t, r, scsi.Good)
	if s, _ := scsi.ParseSense(data); !s.Descriptor || s.Key != scsi.SenseUnitAttention || s.ASC != scsi.ASCPowerOnOrReset {
		t.Fatalf("REQUEST SENSE: %v (descriptor %v)", &s, s.Descriptor)
	}
	wantSt(t, run(t, tg, n, 2, testinit.TUR(), 0), scsi.Good)
	// A second session of the same initiator is a new nexus: its own.
	n2 := nexusOf(iqnA, 2)
	tg.Attach(n2, nil)
	wantCheck(t, run(t, tg, n2, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	wantSt(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.Good)
}

// TestDeviceUAFanOut: a unit attention the device reports goes to the
// initiator whose command got it and is queued for every other nexus of
// the logical unit, once.
func TestDeviceUAFanOut(t *testing.T) {
	dev := newHookDevice(t, "fan")
	lu := newLU(t, "fan", dev)
	other := newLU(t, "other", nil)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu}, Mapping{LUN: 1, LU: other})), lu, other)
	a, b, c := nexusOf(iqnA, 1), nexusOf(iqnB, 1), nexusOf(iqnB, 2)
	for _, n := range []*iscsi.Nexus{a, b, c} {
		tg.Attach(n, nil)
		clearUAs(t, tg, n, 0)
		clearUAs(t, tg, n, 1)
	}
	dev.injectUA(scsi.ASCCapacityDataChanged)
	wantCheck(t, run(t, tg, a, 0, testinit.Read10(0, 1), 512), scsi.SenseUnitAttention, scsi.ASCCapacityDataChanged)
	wantSt(t, run(t, tg, a, 0, testinit.Read10(0, 1), 512), scsi.Good)
	for _, n := range []*iscsi.Nexus{b, c} {
		wantSt(t, run(t, tg, n, 1, testinit.TUR(), 0), scsi.Good) // another LU: nothing
		wantCheck(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCCapacityDataChanged)
		wantSt(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.Good)
	}
}

// TestModeSelectUA: a MODE SELECT that succeeds gives the other nexuses
// MODE PARAMETERS CHANGED.
func TestModeSelectUA(t *testing.T) {
	dev := newHookDevice(t, "ms")
	// The emulated disk has no changeable mode parameters: accept the
	// MODE SELECT here, as a device with a changeable page would.
	dev.setHook(func(_ context.Context, req *sgio.Request, res *sgio.Result) bool {
		if scsi.Opcode(req.CDB[0]) != scsi.OpModeSelect6 {
			return false
		}
		*res = sgio.Result{}
		return true
	})
	lu := newLU(t, "ms", dev)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	a, b := nexusOf(iqnA, 1), nexusOf(iqnB, 1)
	for _, n := range []*iscsi.Nexus{a, b} {
		tg.Attach(n, nil)
		clearUAs(t, tg, n, 0)
	}
	param := make([]byte, 4+12)
	param[4], param[5] = 0x0a, 0x0a
	cmd := &iscsi.Command{Nexus: a, LUN: iscsi.MakeLUN(0), CDB: []byte{byte(scsi.OpModeSelect6), 0x10, 0, 0, byte(len(param)), 0}, Write: true, WriteData: param}
	wantSt(t, tg.Execute(context.Background(), cmd), scsi.Good)
	wantSt(t, run(t, tg, a, 0, testinit.TUR(), 0), scsi.Good)
	wantCheck(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCModeParametersChanged)
}

// TestReadOnlyMapping: a read-only mapping refuses write-class commands
// and reports WP; another initiator's read-write mapping of the same
// logical unit does not.
func TestReadOnlyMapping(t *testing.T) {
	lu := newLU(t, "ro", nil)
	ro := mustView(t, Mapping{LUN: 0, LU: lu, ReadOnly: true})
	rw := mustView(t, Mapping{LUN: 0, LU: lu})
	tg := newTarget(t, func(name string) View {
		if name == iqnA {
			return ro
		}
		return rw
	}, lu)
	a, b := nexusOf(iqnA, 1), nexusOf(iqnB, 1)
	for _, n := range []*iscsi.Nexus{a, b} {
		tg.Attach(n, nil)
		clearUAs(t, tg, n, 0)
	}
	writes := [][]byte{
		testinit.Write10(0, 1),
		{0x0a, 0, 0, 0, 1, 0},                                  // WRITE(6)
		{0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},    // WRITE(16)
		{0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0},                      // WRITE SAME(10)
		{0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},    // WRITE SAME(16)
		{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0},                     // UNMAP
		{0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},    // COMPARE AND WRITE
		{0x2e, 0, 0, 0, 0, 0, 0, 0, 1, 0},                      // WRITE AND VERIFY(10)
		{0x04, 0, 0, 0, 0, 0},                                  // FORMAT UNIT
		{0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0, 0x0b, 0, 0, 0, 0},    // WRITE(32)
		{0x9f, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // WRITE LONG(16)
	}
	for _, c := range writes {
		cmd := &iscsi.Command{Nexus: a, LUN: iscsi.MakeLUN(0), CDB: c, Write: true, WriteData: make([]byte, 512)}
		r := tg.Execute(context.Background(), cmd)
		if s := senseOf(t, r); s.Key != scsi.SenseDataProtect || s.ASC != scsi.ASCWriteProtected {
			t.Errorf("%v on a read-only mapping: %v", scsi.Opcode(c[0]), &s)
		}
	}
	wantSt(t, run(t, tg, a, 0, testinit.Read10(0, 1), 512), scsi.Good)
	wantSt(t, run(t, tg, a, 0, []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0), scsi.Good) // SYNCHRONIZE CACHE
	cmd := &iscsi.Command{Nexus: b, LUN: iscsi.MakeLUN(0), CDB: testinit.Write10(0, 1), Write: true, WriteData: make([]byte, 512)}
	wantSt(t, tg.Execute(context.Background(), cmd), scsi.Good)
	for _, tc := range []struct {
		cdb []byte
		off int
	}{{testinit.ModeSense6(255), 2}, {testinit.ModeSense10(255), 3}} {
		for _, n := range []*iscsi.Nexus{a, b} {
			r, data := runData(t, tg, n, 0, tc.cdb, 255)
			wantSt(t, r, scsi.Good)
			if wp := data[tc.off]&0x80 != 0; wp != (n == a) {
				t.Errorf("%v for %s: WP %v", scsi.Opcode(tc.cdb[0]), n.InitiatorName, wp)
			}
		}
	}
}

// TestResetsAndClearTaskSet: LOGICAL UNIT RESET resets the device, ends
// the SPC-2 reservation and gives every nexus of the logical unit BUS
// DEVICE RESET FUNCTION OCCURRED; CLEAR TASK SET gives the others
// COMMANDS CLEARED BY ANOTHER INITIATOR; TARGET RESET resets them all.
func TestResetsAndClearTaskSet(t *testing.T) {
	dev := newHookDevice(t, "reset")
	lu := newLU(t, "reset", dev)
	other := newLU(t, "other", nil)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu}, Mapping{LUN: 1, LU: other})), lu, other)
	a, b := nexusOf(iqnA, 1), nexusOf(iqnB, 1)
	for _, n := range []*iscsi.Nexus{a, b} {
		tg.Attach(n, nil)
		clearUAs(t, tg, n, 0)
		clearUAs(t, tg, n, 1)
	}
	ctx := context.Background()
	wantSt(t, run(t, tg, a, 0, testinit.Reserve6(), 0), scsi.Good)
	wantSt(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.ReservationConflict)
	if r := tg.TaskManagement(ctx, b, iscsi.TMFLogicalUnitReset, iscsi.MakeLUN(0)); r != iscsi.TMFComplete {
		t.Fatalf("LU reset: %v", r)
	}
	if dev.resets.Load() != 1 {
		t.Fatalf("%d device resets, want 1", dev.resets.Load())
	}
	for _, n := range []*iscsi.Nexus{a, b} {
		wantCheck(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
		wantSt(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.Good) // reservation gone
		wantSt(t, run(t, tg, n, 1, testinit.TUR(), 0), scsi.Good) // the other LU untouched
	}
	if r := tg.TaskManagement(ctx, a, iscsi.TMFClearTaskSet, iscsi.MakeLUN(1)); r != iscsi.TMFComplete {
		t.Fatalf("CLEAR TASK SET: %v", r)
	}
	wantSt(t, run(t, tg, a, 1, testinit.TUR(), 0), scsi.Good)
	wantCheck(t, run(t, tg, b, 1, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCCommandsClearedByAnother)
	wantSt(t, run(t, tg, a, 0, testinit.Reserve6(), 0), scsi.Good)
	if r := tg.TaskManagement(ctx, a, iscsi.TMFTargetWarmReset, iscsi.LUN{}); r != iscsi.TMFComplete {
		t.Fatalf("target reset: %v", r)
	}
	for _, lun := range []uint64{0, 1} {
		wantCheck(t, run(t, tg, b, lun, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
	}
	wantSt(t, run(t, tg, b, 0, testinit.Reserve6(), 0), scsi.Good) // a's reservation ended
	if dev.resets.Load() != 2 {
		t.Fatalf("%d device resets, want 2", dev.resets.Load())
	}
}

// TestSPC2Reserve: RESERVE(6)/(10) per I_T nexus: conflicts for other
// initiators and other ISIDs of the same one, the commands SPC-2 allows,
// RELEASE by a non-holder, Detach ending the reservation, and the
// refused third-party and extent forms.
func TestSPC2Reserve(t *testing.T) {
	tg := everyone(t, 0)
	a, a2, b := nexusOf(iqnA, 1), nexusOf(iqnA, 2), nexusOf(iqnB, 1)
	for _, n := range []*iscsi.Nexus{a, a2, b} {
		tg.Attach(n, nil)
		clearUAs(t, tg, n, 0)
	}
	wantSt(t, run(t, tg, a, 0, testinit.Reserve6(), 0), scsi.Good)
	wantSt(t, run(t, tg, a, 0, testinit.Reserve6(), 0), scsi.Good) // the holder may reserve again
	for _, n := range []*iscsi.Nexus{a2, b} {
		cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: testinit.Write10(0, 1), Write: true, WriteData: make([]byte, 512)}
		wantSt(t, tg.Execute(context.Background(), cmd), scsi.ReservationConflict)
		wantSt(t, run(t, tg, n, 0, testinit.Read10(0, 1), 512), scsi.ReservationConflict)
		wantSt(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.ReservationConflict)
		wantSt(t, run(t, tg, n, 0, testinit.ModeSense6(255), 255), scsi.ReservationConflict)
		wantSt(t, run(t, tg, n, 0, testinit.Reserve6(), 0), scsi.ReservationConflict)
		wantSt(t, run(t, tg, n, 0, []byte{byte(scsi.OpPersistentReserveIn), 0, 0, 0, 0, 0, 0, 0, 255, 0}, 255), scsi.ReservationConflict)
		// Allowed under a reservation (SPC-2 5.5.1).
		wantSt(t, run(t, tg, n, 0, testinit.Inquiry(36), 36), scsi.Good)
		wantSt(t, run(t, tg, n, 0, testinit.ReportLUNs(64), 64), scsi.Good)
		wantSt(t, run(t, tg, n, 0, testinit.RequestSense(18), 18), scsi.Good)
		wantSt(t, run(t, tg, n, 0, []byte{0x1e, 0, 0, 0, 0, 0}, 0), scsi.Good) // PREVENT ALLOW, allow
		wantSt(t, run(t, tg, n, 0, testinit.Release6(), 0), scsi.Good)         // a no-op
	}
	wantSt(t, run(t, tg, a, 0, testinit.Read10(0, 1), 512), scsi.Good) // still a's
	// A pending reset condition outranks the conflict; others wait.
	tg.nexusOf(b).view.Load().itls[0].ua.add(scsi.ASCModeParametersChanged)
	wantSt(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.ReservationConflict)
	tg.nexusOf(b).view.Load().itls[0].ua.add(scsi.ASCPowerOnOrReset)
	wantCheck(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	// The holder's nexus ends: so does the reservation.
	tg.Detach(a)
	wantSt(t, run(t, tg, b, 0, testinit.Reserve6(), 0), scsi.Good)
	wantSt(t, run(t, tg, a2, 0, testinit.Read10(0, 1), 512), scsi.ReservationConflict)
	wantSt(t, run(t, tg, b, 0, []byte{byte(scsi.OpRelease10), 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0), scsi.Good)
	wantSt(t, run(t, tg, a2, 0, []byte{byte(scsi.OpReserve10), 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0), scsi.Good)
	wantSt(t, run(t, tg, b, 0, testinit.Read10(0, 1), 512), scsi.ReservationConflict)
	// Third-party and extent forms are refused.
	for _, c := range [][]byte{
		{byte(scsi.OpReserve6), 0x01, 0, 0, 0, 0},
		{byte(scsi.OpReserve6), 0x10, 0, 0, 0, 0},
		{byte(scsi.OpReserve10), 0x10, 0, 3, 0, 0, 0, 0, 0, 0},
		{byte(scsi.OpRelease10), 0x02, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		wantCheck(t, run(t, tg, a2, 0, c, 0), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
}

// TestSetViews: a view change raises REPORTED LUNS DATA HAS CHANGED for
// the nexuses whose view changed, REPORT LUNS clears it, a logical unit
// that stays keeps its state, and one that goes ends the reservation.
func TestSetViews(t *testing.T) {
	lu0, lu1 := newLU(t, "d0", nil), newLU(t, "d1", nil)
	v1 := mustView(t, Mapping{LUN: 0, LU: lu0}, Mapping{LUN: 1, LU: lu1})
	tg := newTarget(t, Everyone(v1), lu0, lu1)
	a, b := nexusOf(iqnA, 1), nexusOf(iqnB, 1)
	for _, n := range []*iscsi.Nexus{a, b} {
		tg.Attach(n, nil)
		clearUAs(t, tg, n, 0)
		clearUAs(t, tg, n, 1)
	}
	wantSt(t, run(t, tg, a, 1, testinit.Reserve6(), 0), scsi.Good)
	// a loses LUN 1 and sees LUN 0 at 4; b keeps its view.
	va := mustView(t, Mapping{LUN: 4, LU: lu0})
	changed, err := tg.SetViews([]*LU{lu0, lu1}, func(name string) View {
		if name == iqnA {
			return va
		}
		return v1
	})
	if err != nil || changed != 1 {
		t.Fatalf("SetViews: %d changed, %v; want 1", changed, err)
	}
	wantSt(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.Good)
	wantSt(t, run(t, tg, b, 1, testinit.Reserve6(), 0), scsi.Good) // a's reservation went with its view
	wantCheck(t, run(t, tg, a, 0, testinit.TUR(), 0), scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	wantCheck(t, run(t, tg, a, 4, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCReportedLUNsDataChanged)
	wantSt(t, run(t, tg, a, 4, testinit.TUR(), 0), scsi.Good)
	// Once more, cleared by REPORT LUNS this time.
	wantSt(t, run(t, tg, b, 1, testinit.Release6(), 0), scsi.Good)
	vb := mustView(t, Mapping{LUN: 0, LU: lu0}, Mapping{LUN: 2, LU: lu1})
	if changed, _ := tg.SetViews([]*LU{lu0, lu1}, func(string) View { return vb }); changed != 2 {
		t.Fatalf("second SetViews changed %d nexuses, want 2", changed)
	}
	r, data := runData(t, tg, b, 0, testinit.ReportLUNs(64), 64)
	wantSt(t, r, scsi.Good)
	if got := fmt.Sprint(reportedLUNs(t, data)); got != "[0 2]" {
		t.Fatalf("REPORT LUNS after the change: %s", got)
	}
	for _, lun := range []uint64{0, 2} {
		wantSt(t, run(t, tg, b, lun, testinit.TUR(), 0), scsi.Good)
	}
	// a's LUN 2 is new to it: it has the condition, and so has LUN 0.
	wantCheck(t, run(t, tg, a, 2, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCReportedLUNsDataChanged)
	wantCheck(t, run(t, tg, a, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCReportedLUNsDataChanged)
}

// failingDevice is a device whose transport reports the given outcome.
type failingDevice struct {
	res *sgio.Result
	err error
}

func (f *failingDevice) Execute(_ context.Context, _ *sgio.Request, res *sgio.Result) error {
	*res = sgio.Result{}
	if f.res != nil {
		*res = *f.res
	}
	return f.err
}
func (f *failingDevice) Limits() sgio.Limits { return sgio.Limits{QueueDepth: 1} }
func (f *failingDevice) Close() error        { return nil }

// oneLU returns a target serving dev at LUN 0 to everyone, and an
// attached nexus with its unit attention already consumed.
func oneLU(t *testing.T, dev sgio.Device) (*Target, *iscsi.Nexus) {
	t.Helper()
	lu := newLU(t, "dev", dev)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	tg.nexusOf(n).view.Load().itls[0].ua.take()
	return tg, n
}

func TestTransportErrorsBecomeSense(t *testing.T) {
	cases := []struct {
		name   string
		dev    *failingDevice
		status scsi.Status
		key    scsi.SenseKey
		asc    scsi.ASC
	}{
		{"gone", &failingDevice{err: fmt.Errorf("ioctl: %w", sgio.ErrGone)}, scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure},
		{"queue full", &failingDevice{err: sgio.ErrQueueFull}, scsi.TaskSetFull, 0, 0},
		{"too large", &failingDevice{err: sgio.ErrTooLarge}, scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"timeout", &failingDevice{err: sgio.ErrTimeout}, scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout},
		{"DID_NO_CONNECT", &failingDevice{res: &sgio.Result{HostStatus: scsi.HostNoConnect}}, scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure},
		{"DID_BUS_BUSY", &failingDevice{res: &sgio.Result{HostStatus: scsi.HostBusBusy}}, scsi.Busy, 0, 0},
		{"DID_RESET", &failingDevice{res: &sgio.Result{HostStatus: scsi.HostReset}}, scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset},
		{"check without sense", &failingDevice{res: &sgio.Result{Status: scsi.CheckCondition}}, scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg, n := oneLU(t, tc.dev)
			r := run(t, tg, n, 0, testinit.Read10(0, 1), 512)
			wantSt(t, r, tc.status)
			if tc.status == scsi.CheckCondition {
				wantCheck(t, r, tc.key, tc.asc)
			}
		})
	}
}

// cdbRecorder records the CDBs a device receives.
type cdbRecorder struct{ got [][]byte }

func (c *cdbRecorder) Execute(_ context.Context, r *sgio.Request, res *sgio.Result) error {
	c.got = append(c.got, append([]byte(nil), r.CDB...))
	*res = sgio.Result{}
	return nil
}
func (c *cdbRecorder) Limits() sgio.Limits { return sgio.Limits{QueueDepth: 1} }
func (c *cdbRecorder) Close() error        { return nil }

// TestCDBTrimmedToItsLength: the engine hands over the 16 CDB bytes of the
// BHS; the device gets the CDB's own length. RESERVE and RELEASE never
// reach it; a vendor-specific command, allowed, passes as it came.
func TestCDBTrimmedToItsLength(t *testing.T) {
	rec := &cdbRecorder{}
	lu, err := NewLU(context.Background(), LUConfig{Name: "dev", Device: rec, Policy: PolicyConfig{Allow: []byte{0xc0}}})
	if err != nil {
		t.Fatal(err)
	}
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	tg.nexusOf(n).view.Load().itls[0].ua.take()
	rec.got = nil // what the gateway asked the device at NewLU
	for _, cdb := range [][]byte{
		make([]byte, 16), // TEST UNIT READY: 6
		append([]byte{0x28}, make([]byte, 15)...), // READ(10): 10
		append([]byte{0xa8}, make([]byte, 15)...), // READ(12): 12
		append([]byte{0x88}, make([]byte, 15)...), // READ(16): 16
		append([]byte{0xc0}, make([]byte, 15)...), // vendor specific: as is
		append(testinit.Reserve6(), make([]byte, 10)...),
		append(testinit.Release6(), make([]byte, 10)...),
	} {
		run(t, tg, n, 0, cdb, 0)
	}
	var lens []int
	for _, c := range rec.got {
		lens = append(lens, len(c))
	}
	if fmt.Sprint(lens) != "[6 10 12 16 16]" {
		t.Fatalf("CDB lengths %v", lens)
	}
}

// lendingDevice lends its own buffer for data-in, as the SG backend's
// solo descriptor does, and counts the releases.
type lendingDevice struct {
	failingDevice
	buf      []byte
	released int
}

func (l *lendingDevice) ExecuteLent(ctx context.Context, req *sgio.Request, res *sgio.Result) ([]byte, func(), error) {
	if err := l.Execute(ctx, req, res); err != nil {
		return nil, nil, err
	}
	return l.buf[:min(res.Transferred(len(req.Data)), len(l.buf))], func() { l.released++ }, nil
}

// TestLentData: data a device lends goes into the response with its
// release, and is released at once when a transport failure replaces
// the data.
func TestLentData(t *testing.T) {
	dev := &lendingDevice{buf: []byte("lent data, not the engine's buffer")}
	dev.res = &sgio.Result{Resid: 512 - 9}
	tg, n := oneLU(t, dev)
	r := run(t, tg, n, 0, testinit.Read10(0, 1), 512)
	if r.Status != scsi.Good || r.ReadLen != 9 || string(r.ReadData) != "lent data" || r.Release == nil {
		t.Fatalf("response %+v, want the 9 lent bytes and a release", r)
	}
	if dev.released != 0 {
		t.Fatal("released before the engine sent the data")
	}
	r.Release()
	dev.res = &sgio.Result{HostStatus: scsi.HostBusBusy}
	r = run(t, tg, n, 0, testinit.Read10(0, 1), 512)
	if r.Status != scsi.Busy || r.ReadData != nil || r.Release != nil || dev.released != 2 {
		t.Fatalf("transport failure: response %+v, %d releases; want BUSY, no data and both buffers released", r, dev.released)
	}
}

// TestNewTargetErrors: configurations NewTarget refuses.
func TestNewTargetErrors(t *testing.T) {
	lu := newLU(t, "x", nil)
	v := Everyone(mustView(t, Mapping{LUN: 0, LU: lu}))
	for name, c := range map[string]TargetConfig{
		"no name":        {Views: v},
		"no views":       {Name: testTarget},
		"zero port id":   {Name: testTarget, Views: v, Ports: map[uint16]uint16{1: 0}},
		"duplicate port": {Name: testTarget, Views: v, Ports: map[uint16]uint16{1: 3, 2: 3}},
	} {
		c.Log = zerolog.Nop()
		if _, err := NewTarget(c); err == nil {
			t.Errorf("%s: NewTarget succeeded", name)
		}
	}
	if _, err := NewLU(context.Background(), LUConfig{Name: "nodev"}); err == nil {
		t.Error("NewLU without a device succeeded")
	}
}
