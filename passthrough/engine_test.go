package passthrough

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// The tests in this file run the real engine over loopback with
// testinit sessions: what they check crosses iSCSI (logins, logouts,
// connection loss, task management).

// watched is a Target that reports each Detach, so that a test knows
// when the engine has ended a nexus.
type watched struct {
	*Target
	detached chan string // initiator ports
}

func (w *watched) Detach(in *iscsi.Nexus) {
	w.Target.Detach(in)
	w.detached <- in.InitiatorPort()
}

// waitDetach waits for the engine to detach port's nexus.
func (w *watched) waitDetach(t *testing.T, port string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case p := <-w.detached:
			if p == port {
				return
			}
		case <-deadline:
			t.Fatalf("%s was never detached", port)
		}
	}
}

// serve runs an engine with one portal for tg and returns its address.
func serve(t *testing.T, tg *Target) (string, *watched) {
	t.Helper()
	w := &watched{Target: tg, detached: make(chan string, 64)}
	srv, err := iscsi.NewServer(iscsi.Config{
		Portals: []iscsi.Portal{{Listen: "127.0.0.1:0", Group: 1}},
		Targets: iscsi.StaticTargets{{Name: testTarget, Handler: w}},
		Log:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := srv.Listen(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeListeners(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ls[0].Addr().String(), w
}

// login opens a session of initiator name with ISID ...isid.
func login(t *testing.T, addr, name string, isid byte) *testinit.Session {
	t.Helper()
	s, err := testinit.Dial(context.Background(), addr, testinit.Config{
		InitiatorName: name, TargetName: testTarget, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// port returns the initiator port name of a session.
func port(name string, isid byte) string {
	return (&iscsi.Nexus{InitiatorName: name, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}}).InitiatorPort()
}

// want fails unless r has status st (and, for CHECK CONDITION, key and
// asc when given).
func want(t *testing.T, what string, r *testinit.Result, st scsi.Status, kasc ...any) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%s: %v", what, r.Err)
	}
	if r.Status != st {
		t.Fatalf("%s: %v, want %v", what, r, st)
	}
	if len(kasc) == 2 {
		s := r.SenseData()
		if s.Key != kasc[0].(scsi.SenseKey) || s.ASC != kasc[1].(scsi.ASC) {
			t.Fatalf("%s: %v, want %v %v", what, r, kasc[0], kasc[1])
		}
	}
}

// settle consumes the unit attentions a new nexus has on lun.
func settle(t *testing.T, s *testinit.Session, lun uint64) {
	t.Helper()
	for range maxUnitAttentions + 1 {
		r := s.Do(lun, testinit.TUR(), nil, 0)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Status == scsi.Good {
			return
		}
		if r.Status != scsi.CheckCondition || r.SenseData().Key != scsi.SenseUnitAttention {
			t.Fatalf("TEST UNIT READY on LUN %d: %v", lun, r)
		}
	}
	t.Fatal("unit attentions never cleared")
}

func block(n int) []byte { return make([]byte, 512*n) }

// TestEngineSPC2: RESERVE(6) through the engine, with two initiator
// names and two ISIDs of one name; the reservation ends with the
// holder's logout and with its connection loss.
func TestEngineSPC2(t *testing.T) {
	addr, w := serve(t, everyone(t, 0))
	a := login(t, addr, iqnA, 1)
	a2 := login(t, addr, iqnA, 2)
	b := login(t, addr, iqnB, 1)
	for _, s := range []*testinit.Session{a, a2, b} {
		settle(t, s, 0)
	}
	want(t, "RESERVE by A", a.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
	for name, s := range map[string]*testinit.Session{"B": b, "A, other ISID": a2} {
		want(t, "WRITE by "+name, s.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.ReservationConflict)
		want(t, "READ by "+name, s.Do(0, testinit.Read10(0, 1), nil, 512), scsi.ReservationConflict)
		want(t, "RELEASE by "+name, s.Do(0, testinit.Release6(), nil, 0), scsi.Good)
		want(t, "INQUIRY by "+name, s.Do(0, testinit.Inquiry(36), nil, 36), scsi.Good)
	}
	want(t, "WRITE by A", a.Do(0, testinit.Write10(0, 1), block(1), 0), scsi.Good)
	if err := a.Logout(); err != nil {
		t.Fatal(err)
	}
	w.waitDetach(t, port(iqnA, 1))
	want(t, "RESERVE by B after A's logout", b.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
	want(t, "READ by A2", a2.Do(0, testinit.Read10(0, 1), nil, 512), scsi.ReservationConflict)
	b.Close() // connection loss, no logout
	w.waitDetach(t, port(iqnB, 1))
	want(t, "RESERVE by A2 after B's connection loss", a2.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
	// A logs in again: a new nexus, with its own POWER ON, and no
	// reservation of its own.
	a = login(t, addr, iqnA, 1)
	want(t, "first command of a new nexus", a.Do(0, testinit.Read10(0, 1), nil, 512), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	want(t, "READ by the new A", a.Do(0, testinit.Read10(0, 1), nil, 512), scsi.ReservationConflict)
}

// TestEngineMasking: REPORT LUNS, commands and task management follow
// each initiator's view through the engine.
func TestEngineMasking(t *testing.T) {
	lu0, lu1 := newLU(t, "d0", nil), newLU(t, "d1", nil)
	va := mustView(t, Mapping{LUN: 0, LU: lu0}, Mapping{LUN: 1, LU: lu1})
	vb := mustView(t, Mapping{LUN: 7, LU: lu1, ReadOnly: true})
	tg := newTarget(t, func(name string) View {
		if name == iqnA {
			return va
		}
		return vb
	}, lu0, lu1)
	addr, _ := serve(t, tg)
	a, b := login(t, addr, iqnA, 1), login(t, addr, iqnB, 1)
	for _, tc := range []struct {
		s    *testinit.Session
		want string
	}{{a, "[0 1]"}, {b, "[7]"}} {
		r := tc.s.Do(0, testinit.ReportLUNs(256), nil, 256)
		want(t, "REPORT LUNS", r, scsi.Good)
		if got := fmt.Sprint(reportedLUNs(t, r.Data)); got != tc.want {
			t.Errorf("REPORT LUNS %s, want %s", got, tc.want)
		}
	}
	want(t, "TUR outside the view", b.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	want(t, "READ outside the view", b.Do(1, testinit.Read10(0, 1), nil, 512), scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	r := b.Do(0, testinit.Inquiry(36), nil, 36)
	want(t, "INQUIRY outside the view", r, scsi.Good)
	if len(r.Data) == 0 || r.Data[0] != 0x7f {
		t.Fatalf("INQUIRY outside the view: % x", r.Data)
	}
	for _, fn := range []iscsi.TMFunction{iscsi.TMFLogicalUnitReset, iscsi.TMFAbortTaskSet, iscsi.TMFClearTaskSet} {
		if got, err := b.TMF(fn, 0, 0); err != nil || got != iscsi.TMFLUNNotExist {
			t.Errorf("%v to a LUN outside the view: %v %v", fn, got, err)
		}
	}
	if got, err := b.TMF(iscsi.TMFAbortTaskSet, 7, 0); err != nil || got != iscsi.TMFComplete {
		t.Errorf("ABORT TASK SET in the view: %v %v", got, err)
	}
	settle(t, b, 7)
	want(t, "WRITE to a read-only mapping", b.Do(7, testinit.Write10(0, 1), block(1), 0), scsi.CheckCondition, scsi.SenseDataProtect, scsi.ASCWriteProtected)
	settle(t, a, 1)
	want(t, "WRITE by A to the same LU", a.Do(1, testinit.Write10(0, 1), block(1), 0), scsi.Good)
}

// TestEngineUnitAttentionAtLogin: the first command after login on each
// logical unit reports POWER ON, RESET, OR BUS DEVICE RESET OCCURRED,
// and only the first.
func TestEngineUnitAttentionAtLogin(t *testing.T) {
	addr, _ := serve(t, everyone(t, 0, 1))
	s := login(t, addr, iqnA, 1)
	want(t, "INQUIRY", s.Do(0, testinit.Inquiry(36), nil, 36), scsi.Good)
	for _, lun := range []uint64{0, 1} {
		want(t, "first READ", s.Do(lun, testinit.Read10(0, 1), nil, 512), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
		want(t, "second READ", s.Do(lun, testinit.Read10(0, 1), nil, 512), scsi.Good)
	}
}

// blocker makes the device hold READ(10) of LBA 99 until the command's
// context ends, and reports that on cancelled.
func blocker(dev *hookDevice) (started, cancelled chan struct{}) {
	started, cancelled = make(chan struct{}, 8), make(chan struct{}, 8)
	dev.setHook(func(ctx context.Context, req *sgio.Request, res *sgio.Result) bool {
		if req.CDB[0] != byte(scsi.OpRead10) || binary.BigEndian.Uint32(req.CDB[2:]) != 99 {
			return false
		}
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		*res = sgio.Result{}
		return true
	})
	return started, cancelled
}

// waitFor waits for a signal from the device hook.
func waitFor(t *testing.T, c chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never happened", what)
	}
}

// TestEngineLUNReset: a LUN RESET from one initiator aborts another
// initiator's command on the same logical unit (seen under another LUN
// number), resets the device, ends the SPC-2 reservation and reports
// BUS DEVICE RESET FUNCTION OCCURRED to both.
func TestEngineLUNReset(t *testing.T) {
	dev := newHookDevice(t, "reset")
	lu := newLU(t, "reset", dev)
	va := mustView(t, Mapping{LUN: 0, LU: lu})
	vb := mustView(t, Mapping{LUN: 3, LU: lu})
	tg := newTarget(t, func(name string) View {
		if name == iqnA {
			return va
		}
		return vb
	}, lu)
	addr, _ := serve(t, tg)
	a, b := login(t, addr, iqnA, 1), login(t, addr, iqnB, 1)
	settle(t, a, 0)
	settle(t, b, 3)
	want(t, "RESERVE by A", a.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
	want(t, "RESERVE by B", b.Do(3, testinit.Reserve6(), nil, 0), scsi.ReservationConflict)
	want(t, "RELEASE by A", a.Do(0, testinit.Release6(), nil, 0), scsi.Good)
	started, cancelled := blocker(dev)
	blocked := b.Start(3, testinit.Read10(99, 1), nil, 512)
	waitFor(t, started, "B's READ reaching the device")
	want(t, "RESERVE by A", a.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
	if got, err := a.TMF(iscsi.TMFLogicalUnitReset, 0, 0); err != nil || got != iscsi.TMFComplete {
		t.Fatalf("LUN RESET: %v %v", got, err)
	}
	waitFor(t, cancelled, "B's READ being aborted")
	if dev.resets.Load() != 1 {
		t.Fatalf("%d device resets, want 1", dev.resets.Load())
	}
	select {
	case <-blocked.Done():
		t.Fatalf("the aborted command got a response: %v", blocked.Wait())
	default:
	}
	want(t, "A after the reset", a.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
	want(t, "B after the reset", b.Do(3, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
	want(t, "RESERVE by B after the reset", b.Do(3, testinit.Reserve6(), nil, 0), scsi.Good)
}
