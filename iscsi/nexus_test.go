package iscsi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// lifeEvent is one call the engine made into lifeHandler.
type lifeEvent struct {
	kind string // attach, exec, return, detach
	tsih uint16
	isid byte // last ISID byte, as rawInit.login sets it
}

func (e lifeEvent) String() string {
	return fmt.Sprintf("%s(isid %d, tsih %d)", e.kind, e.isid, e.tsih)
}

// lifeHandler is memHandler plus a log of Attach, Execute (call and
// return) and Detach, the nexuses' NexusControls, and two commands:
//   - 0xC3 waits for its context to end, reports that on cancelled, then
//     waits for hold to close before it returns (a command that takes
//     time to leave the medium after an abort);
//   - 0xC4 calls AbortTasks(LUN 0) of the nexus whose ISID ends in CDB
//     byte 1 and answers GOOD if every 0xC3 task had returned by then,
//     BUSY otherwise.
type lifeHandler struct {
	*memHandler
	mu        sync.Mutex
	events    []lifeEvent
	ctls      map[byte]NexusControl
	attached  chan lifeEvent
	detached  chan lifeEvent
	cancelled chan uint32
	hold      chan struct{}
	running3  atomic.Int32 // 0xC3 tasks in Execute
}

// newLifeTarget starts a test target served by a lifeHandler.
func newLifeTarget(t *testing.T) (*testTarget, *lifeHandler) {
	lh := &lifeHandler{
		ctls:      make(map[byte]NexusControl),
		attached:  make(chan lifeEvent, 16),
		detached:  make(chan lifeEvent, 16),
		cancelled: make(chan uint32, 16),
		hold:      make(chan struct{}),
	}
	tt := newTestTarget(t, func(c *Config) {
		lh.memHandler = c.Targets.All()[0].Handler.(*memHandler)
		c.Targets = StaticTargets{{Name: testIQN, Handler: lh}}
	})
	return tt, lh
}

func (h *lifeHandler) record(kind string, n *Nexus) lifeEvent {
	e := lifeEvent{kind: kind, tsih: n.TSIH, isid: n.ISID[5]}
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
	return e
}

func (h *lifeHandler) Attach(n *Nexus, ctl NexusControl) {
	h.mu.Lock()
	h.ctls[n.ISID[5]] = ctl
	h.mu.Unlock()
	h.attached <- h.record("attach", n)
}

func (h *lifeHandler) Detach(n *Nexus) {
	h.detached <- h.record("detach", n)
}

func (h *lifeHandler) Execute(ctx context.Context, cmd *Command) Response {
	h.record("exec", cmd.Nexus)
	defer h.record("return", cmd.Nexus)
	switch cmd.CDB[0] {
	case 0xc3:
		h.running3.Add(1)
		defer h.running3.Add(-1)
		h.started <- cmd.Tag
		<-ctx.Done()
		h.cancelled <- cmd.Tag
		<-h.hold
		return Response{}
	case 0xc4:
		h.mu.Lock()
		ctl := h.ctls[cmd.CDB[1]]
		h.mu.Unlock()
		ctl.AbortTasks(MakeLUN(0), false)
		if h.running3.Load() != 0 {
			return Response{Status: scsi.Busy}
		}
		return Response{}
	}
	return h.memHandler.Execute(ctx, cmd)
}

// checkLife checks the log: per session (TSIH) one Attach before any
// Execute, and one Detach after every Execute returned.
func (h *lifeHandler) checkLife(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	type life struct{ attached, detached, running int }
	lives := map[uint16]*life{}
	for i, e := range h.events {
		l := lives[e.tsih]
		if l == nil {
			l = new(life)
			lives[e.tsih] = l
		}
		bad := ""
		switch e.kind {
		case "attach":
			l.attached++
			if l.attached > 1 {
				bad = "second Attach"
			}
		case "exec":
			l.running++
			if l.attached == 0 {
				bad = "Execute before Attach"
			}
		case "return":
			l.running--
		case "detach":
			l.detached++
			switch {
			case l.attached == 0:
				bad = "Detach without Attach"
			case l.detached > 1:
				bad = "second Detach"
			case l.running > 0:
				bad = "Detach while Execute runs"
			}
		}
		if l.detached > 0 && e.kind != "detach" {
			bad = "call after Detach"
		}
		if bad != "" {
			t.Fatalf("event %d %v: %s; log %v", i, e, bad, h.events)
		}
	}
	for tsih, l := range lives {
		if l.attached != 1 || l.detached != 1 {
			t.Fatalf("session %d attached %d times, detached %d times; log %v", tsih, l.attached, l.detached, h.events)
		}
	}
}

// index returns the position of the first event of kind for tsih, or -1.
func (h *lifeHandler) index(kind string, tsih uint16) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range h.events {
		if e.kind == kind && e.tsih == tsih {
			return i
		}
	}
	return -1
}

// ping sends an immediate NOP-Out and returns its ITT.
func (in *rawInit) ping() uint32 {
	in.t.Helper()
	var b BHS
	b[0] = byte(OpNOPOut) | immediateBit
	b[1] = finalBit
	itt := in.itt
	in.itt++
	b.put32(16, itt)
	b.put32(20, reservedTag)
	b.put32(24, in.cmdSN)
	in.sendRaw(&b, nil)
	return itt
}

// tmf sends an immediate task management request and returns its ITT.
func (in *rawInit) tmf(fn TMFunction, lun uint64, ref uint32) uint32 {
	in.t.Helper()
	var b BHS
	b[0] = byte(OpTaskMgmtReq) | immediateBit
	b[1] = finalBit | byte(fn)
	l := MakeLUN(lun)
	copy(b[8:16], l[:])
	itt := in.itt
	in.itt++
	b.put32(16, itt)
	b.put32(20, ref)
	b.put32(24, in.cmdSN)
	b.put32(32, in.cmdSN-1)
	in.sendRaw(&b, nil)
	return itt
}

// expect reads the next PDU and fails unless it is op for itt.
func (in *rawInit) expect(op Opcode, itt uint32, what string) *Frame {
	in.t.Helper()
	f := in.read()
	if f.BHS.Opcode() != op || f.BHS.ITT() != itt {
		in.t.Fatalf("%s: got %s for ITT %#x, want %s for %#x", what, f.BHS.Opcode(), f.BHS.ITT(), op, itt)
	}
	return f
}

var (
	blockCDB  = []byte{0xc0, 0, 0, 0, 0, 0} // returns when released or cancelled
	holdCDB   = []byte{0xc3, 0, 0, 0, 0, 0} // returns after cancellation and hold
	turCDB    = []byte{0, 0, 0, 0, 0, 0}
	noDataCmd = func(in *rawInit, cdb []byte) uint32 { return in.scsi(cdb, false, false, 0, true, nil, false) }
)

// blockedSession starts a lifeHandler target and a session (ISID ending
// in isid) with one command running in the handler until released or
// cancelled.
func blockedSession(t *testing.T, isid byte) (*testTarget, *lifeHandler, *rawInit, lifeEvent, uint32) {
	tt, lh := newLifeTarget(t)
	in := tt.dial()
	in.login(isid)
	a := <-lh.attached
	itt := noDataCmd(in, blockCDB)
	<-lh.started
	return tt, lh, in, a, itt
}

// TestAttachDetach: every way a session ends gives one Detach after its
// last Execute returned, and the Attach came before its first Execute.
func TestAttachDetach(t *testing.T) {
	t.Run("logout", func(t *testing.T) {
		_, lh, in, a, itt := blockedSession(t, 1)
		in.logout(0x2000)
		close(lh.release)
		in.expect(OpSCSIResponse, itt, "running task at logout")
		in.expect(OpLogoutResp, 0x2000, "logout")
		if d := <-lh.detached; d.tsih != a.tsih {
			t.Fatalf("detached %v, attached %v", d, a)
		}
		lh.checkLife(t)
	})
	t.Run("connection drop", func(t *testing.T) {
		_, lh, in, _, _ := blockedSession(t, 1) // its command ends with its context
		in.nc.Close()
		<-lh.detached
		lh.checkLife(t)
	})
	t.Run("reinstatement", func(t *testing.T) {
		tt, lh, _, a, _ := blockedSession(t, 5)
		in := tt.dial()
		in.login(5) // same initiator port: ends the old session first
		b := <-lh.attached
		d := <-lh.detached
		if d.tsih != a.tsih || b.tsih == a.tsih {
			t.Fatalf("attached %v then %v, detached %v", a, b, d)
		}
		itt := noDataCmd(in, turCDB)
		in.expect(OpSCSIResponse, itt, "new session")
		// RFC 7143 6.3.5: the old session is gone before the new starts.
		if lh.index("detach", a.tsih) > lh.index("attach", b.tsih) {
			t.Fatalf("new session attached before the old one was detached")
		}
		in.logout(0x2000)
		in.expect(OpLogoutResp, 0x2000, "logout")
		<-lh.detached
		lh.checkLife(t)
	})
	t.Run("shutdown", func(t *testing.T) {
		tt, lh, _, _, _ := blockedSession(t, 1)
		if err := tt.srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-lh.detached
		lh.checkLife(t)
	})
	t.Run("discovery", func(t *testing.T) {
		tt, lh := newLifeTarget(t)
		in := tt.dial()
		loginDiscovery(t, in)
		in.logout(0x2000)
		in.expect(OpLogoutResp, 0x2000, "logout")
		// A normal session after it is the first the handler hears of.
		in = tt.dial()
		in.login(2)
		if a := <-lh.attached; a.isid != 2 {
			t.Fatalf("attached %v", a)
		}
	})
}

// loginDiscovery performs a one-PDU discovery session login.
func loginDiscovery(t *testing.T, in *rawInit) {
	t.Helper()
	var b BHS
	b[0] = byte(OpLoginReq) | immediateBit
	b[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	b[8] = 0x80
	b[13] = 9
	b.put32(16, in.itt)
	b.put32(24, in.cmdSN)
	in.sendRaw(&b, textKV("InitiatorName=iqn.2026-11.io.sanbridge:initiator", "SessionType=Discovery"))
	f := in.read()
	if f.BHS.Opcode() != OpLoginResp || LoginStatus(f.BHS.u16(36)) != LoginSuccess {
		t.Fatalf("discovery login: %s %v", f.BHS.Opcode(), LoginStatus(f.BHS.u16(36)))
	}
	in.itt++
}

// TestAbortTasksWaitsForExecute: NexusControl.AbortTasks, called from
// inside another nexus' Execute, cancels the task's own context and
// returns only after that task's Execute returned; the aborted task gets
// no response.
func TestAbortTasksWaitsForExecute(t *testing.T) {
	tt, lh := newLifeTarget(t)
	a := tt.dial()
	a.login(1)
	<-lh.attached
	b := tt.dial()
	b.login(2)
	<-lh.attached
	noDataCmd(a, holdCDB)
	<-lh.started
	abort := noDataCmd(b, []byte{0xc4, 1, 0, 0, 0, 0})
	<-lh.cancelled
	// B's abort is still waiting for A's task: B's next PDU answers a ping.
	b.expect(OpNOPIn, b.ping(), "ping while AbortTasks waits")
	close(lh.hold)
	if f := b.expect(OpSCSIResponse, abort, "AbortTasks caller"); f.BHS[3] != byte(scsi.Good) {
		t.Fatalf("AbortTasks returned while the aborted Execute ran (status %#x)", f.BHS[3])
	}
	// A hears nothing of its aborted task: the next PDU answers a TUR.
	a.expect(OpSCSIResponse, noDataCmd(a, turCDB), "after the abort")
}

// TestTMFAnsweredAfterExecute: each aborting task management function
// cancels the affected task's own context, and its response goes out
// only once that task's Execute returned; the task gets no response.
func TestTMFAnsweredAfterExecute(t *testing.T) {
	for _, tc := range []struct {
		fn    TMFunction
		other bool // the task runs in another session of the target
	}{
		{TMFAbortTask, false},
		{TMFAbortTaskSet, false},
		{TMFClearTaskSet, false},
		{TMFLogicalUnitReset, false},
		{TMFTargetWarmReset, false},
		{TMFTargetWarmReset, true},
	} {
		t.Run(fmt.Sprintf("%v/other=%v", tc.fn, tc.other), func(t *testing.T) {
			tt, lh := newLifeTarget(t)
			victim := tt.dial()
			victim.login(1)
			issuer := victim
			if tc.other {
				issuer = tt.dial()
				issuer.login(2)
			}
			ref := noDataCmd(victim, holdCDB)
			<-lh.started
			tmf := issuer.tmf(tc.fn, 0, ref)
			<-lh.cancelled
			issuer.expect(OpNOPIn, issuer.ping(), "ping while the aborted task runs")
			close(lh.hold)
			f := issuer.expect(OpTaskMgmtResp, tmf, tc.fn.String())
			if TMFResponse(f.BHS[2]) != TMFComplete || lh.running3.Load() != 0 {
				t.Fatalf("response %v with %d tasks in Execute", TMFResponse(f.BHS[2]), lh.running3.Load())
			}
			victim.expect(OpSCSIResponse, noDataCmd(victim, turCDB), "after the abort")
		})
	}
}

// TestLUNResetLeavesOtherNexuses: LOGICAL UNIT RESET aborts the issuing
// nexus' tasks for the LUN; other nexuses are the handler's (through
// NexusControl), since only it knows which logical unit their LUN
// numbers name.
func TestLUNResetLeavesOtherNexuses(t *testing.T) {
	tt, lh := newLifeTarget(t)
	a := tt.dial()
	a.login(1)
	b := tt.dial()
	b.login(2)
	other := noDataCmd(a, blockCDB)
	<-lh.started
	noDataCmd(b, blockCDB) // aborted: no response
	<-lh.started
	tmf := b.tmf(TMFLogicalUnitReset, 0, reservedTag)
	if f := b.expect(OpTaskMgmtResp, tmf, "LUN RESET"); TMFResponse(f.BHS[2]) != TMFComplete {
		t.Fatalf("response %v", TMFResponse(f.BHS[2]))
	}
	b.expect(OpNOPIn, b.ping(), "after the reset")
	close(lh.release)
	a.expect(OpSCSIResponse, other, "other nexus' task")
}
