package passthrough

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// oneGateway is a Shared for a cluster seen from one gateway whose peers
// are only data: the groups and the local state are set by the test, and
// what the logical unit publishes is recorded.
type oneGateway struct {
	mu      sync.Mutex
	access  AccessState
	mode    ALUAMode
	groups  []PortGroup
	uas     []prUA
	aborts  []PRNexus
	settled int
	set     []map[uint16]AccessState
	remote  []PRTargetPort
}

func (g *oneGateway) Access() AccessState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.access
}
func (g *oneGateway) Mode() ALUAMode { return g.mode }
func (g *oneGateway) PortGroups() []PortGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.groups)
}
func (g *oneGateway) SetPortGroups(_ context.Context, states map[uint16]AccessState) (scsi.Status, []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.set = append(g.set, maps.Clone(states))
	return scsi.Good, nil
}
func (g *oneGateway) UA(n PRNexus, asc scsi.ASC) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.uas = append(g.uas, prUA{n, asc})
}
func (g *oneGateway) Abort(_ context.Context, n PRNexus) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.aborts = append(g.aborts, n)
}
func (g *oneGateway) Ports() []PRTargetPort { return g.remote }
func (g *oneGateway) Settle(context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.settled++
	return nil
}

// sharedTarget returns a target whose LUN 0 is a logical unit shared
// through g, with this gateway's port (TPGT 1) at relative port 0x0101.
func sharedTarget(t *testing.T, g *oneGateway) (*Target, *LU) {
	t.Helper()
	lu := newLU(t, "shared", nil)
	lu.SetShared(g)
	tg, err := NewTarget(TargetConfig{Name: testTarget, Ports: map[uint16]uint16{1: 0x0101}, LUs: []*LU{lu},
		Views: Everyone(mustView(t, Mapping{LUN: 0, LU: lu}))})
	if err != nil {
		t.Fatal(err)
	}
	return tg, lu
}

func rtpgCDB(format byte, alloc uint32) []byte {
	c := []byte{byte(scsi.OpMaintenanceIn), format<<5 | byte(scsi.SAReportTargetPortGroups), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

func stpgCDB(plen uint32) []byte {
	c := []byte{byte(scsi.OpMaintenanceOut), byte(saSetTargetPortGroups), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[6:], plen)
	return c
}

// clearPowerOn takes the POWER ON unit attention of a new nexus.
func clearPowerOn(t *testing.T, tg *Target, n *iscsi.Nexus) {
	t.Helper()
	wantCheck(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
}

func TestReportTargetPortGroups(t *testing.T) {
	g := &oneGateway{mode: ALUAImplicit, groups: []PortGroup{
		{ID: 1, State: AccessActiveOptimized, Preferred: true, Ports: []uint16{0x0101, 0x0102}},
		{ID: 2, State: AccessUnavailable, Status: PortGroupStatusImplicit, Ports: []uint16{0x0201}},
	}}
	tg, lu := sharedTarget(t, g)
	n := nexusOf("iqn.2026-11.io.sanbridge:h", 1)
	clearPowerOn(t, tg, n)
	want := []byte{
		0, 0, 0, 28,
		0x80, 0x8f, 0, 1, 0, 0, 0, 2, 0, 0, 0x01, 0x01, 0, 0, 0x01, 0x02,
		0x03, 0x8f, 0, 2, 0, 2, 0, 1, 0, 0, 0x02, 0x01,
	}
	r, data := runData(t, tg, n, 0, rtpgCDB(0, 512), 512)
	wantSt(t, r, scsi.Good)
	if !bytes.Equal(data, want) || r.Wanted != len(want) {
		t.Fatalf("RTPG data\n% x\nwant\n% x", data, want)
	}
	// Extended header; a short allocation length cuts the data.
	r, data = runData(t, tg, n, 0, rtpgCDB(1, 10), 512)
	wantSt(t, r, scsi.Good)
	if !bytes.Equal(data, []byte{0, 0, 0, 32, 0x10, rtpgTransitionTime, 0, 0, 0x80, 0x8f}) {
		t.Fatalf("extended RTPG data % x", data)
	}
	wantCheck(t, run(t, tg, n, 0, rtpgCDB(2, 512), 512), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)

	if lu.TPGS() != ALUAImplicit {
		t.Errorf("TPGS %v", lu.TPGS())
	}
	if id, ok := lu.TargetPortGroup(0x0201); !ok || id != 2 {
		t.Errorf("group of port 0x0201: %d %v", id, ok)
	}
	if _, ok := newLU(t, "alone", nil).TargetPortGroup(1); ok {
		t.Error("a logical unit of one gateway has a target port group")
	}
}

// TestAccessStates: what each local access state lets through, and
// that a state other than active answers before any reservation check.
func TestAccessStates(t *testing.T) {
	g := &oneGateway{mode: ALUAImplicit, groups: []PortGroup{{ID: 1, Ports: []uint16{0x0101}}}}
	tg, _ := sharedTarget(t, g)
	n := nexusOf("iqn.2026-11.io.sanbridge:h", 1)
	clearPowerOn(t, tg, n)
	read := testinit.Read10(0, 1)
	wantSt(t, run(t, tg, n, 0, read, 512), scsi.Good)

	cases := []struct {
		st      AccessState
		asc     scsi.ASC
		prInOK  bool
		rtpgOK  bool
		inqOK   bool
		modeSOK bool
	}{
		{AccessTransitioning, ascAccessTransition, false, true, true, false},
		{AccessStandby, ascPortStandby, true, true, true, true},
		{AccessUnavailable, ascPortUnavailable, false, true, true, false},
		{AccessOffline, ascPortUnavailable, false, true, true, false},
	}
	for _, c := range cases {
		t.Run(c.st.String(), func(t *testing.T) {
			g.mu.Lock()
			g.access = c.st
			g.mu.Unlock()
			wantCheck(t, run(t, tg, n, 0, read, 512), scsi.SenseNotReady, c.asc)
			wantCheck(t, run(t, tg, n, 0, testinit.Write10(0, 1), 0), scsi.SenseNotReady, c.asc)
			check := func(name string, cdb []byte, ok bool) {
				r := run(t, tg, n, 0, cdb, 255)
				if s, _ := scsi.ParseSense(r.Sense); (r.Status == scsi.CheckCondition && s.Key == scsi.SenseNotReady) == ok {
					t.Errorf("%s in %v: status %v sense %v", name, c.st, r.Status, &s)
				}
			}
			check("PERSISTENT RESERVE IN", testinit.PersistentReserveIn(0, 255), c.prInOK)
			check("REPORT TARGET PORT GROUPS", rtpgCDB(0, 255), c.rtpgOK)
			check("INQUIRY", testinit.Inquiry(255), c.inqOK)
			check("MODE SENSE", testinit.ModeSense6(255), c.modeSOK)
		})
	}
}

func TestSetTargetPortGroups(t *testing.T) {
	g := &oneGateway{mode: ALUAImplicit, groups: []PortGroup{{ID: 1, Ports: []uint16{0x0101}}, {ID: 2, Ports: []uint16{0x0201}}}}
	tg, _ := sharedTarget(t, g)
	n := nexusOf("iqn.2026-11.io.sanbridge:h", 1)
	clearPowerOn(t, tg, n)
	param := []byte{0, 0, 0, 0, byte(AccessStandby), 0, 0, 2, byte(AccessActiveOptimized), 0, 0, 1}
	stpg := func(p []byte) iscsi.Response {
		cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: stpgCDB(uint32(len(p))), Write: true, WriteData: p}
		return tg.Execute(context.Background(), cmd)
	}
	// Implicit only: refused.
	wantCheck(t, stpg(param), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	g.mode = ALUABoth
	wantSt(t, stpg(param), scsi.Good)
	if len(g.set) != 1 || !maps.Equal(g.set[0], map[uint16]AccessState{1: AccessActiveOptimized, 2: AccessStandby}) {
		t.Fatalf("SetPortGroups got %v", g.set)
	}
	for name, p := range map[string][]byte{
		"unknown group":  {0, 0, 0, 0, 0, 0, 0, 9},
		"offline":        {0, 0, 0, 0, byte(AccessOffline), 0, 0, 1},
		"group twice":    {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1},
		"transitioning ": {0, 0, 0, 0, byte(AccessTransitioning), 0, 0, 1},
	} {
		wantCheck(t, stpg(p), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInParamList)
		if len(g.set) != 1 {
			t.Fatalf("%s reached SetPortGroups", name)
		}
	}
	wantCheck(t, stpg([]byte{0, 0, 0, 0, 0, 0}), scsi.SenseIllegalRequest, scsi.ASCParameterListLengthError)
}

// TestSharedReservations: a PERSISTENT RESERVE OUT on a shared logical
// unit settles across the gateways, its unit attentions and aborts are
// published, ALL_TG_PT reaches the other gateways' ports, and changes of
// access state raise ASYMMETRIC ACCESS STATE CHANGED.
func TestSharedReservations(t *testing.T) {
	g := &oneGateway{mode: ALUAImplicit, groups: []PortGroup{{ID: 1, Ports: []uint16{0x0101}}, {ID: 2, Ports: []uint16{0x0201}}},
		remote: []PRTargetPort{{Name: testTarget + ",t,0x0002", RelTargetPortID: 0x0201}}}
	tg, lu := sharedTarget(t, g)
	a, b := nexusOf("iqn.2026-11.io.sanbridge:a", 1), nexusOf("iqn.2026-11.io.sanbridge:b", 2)
	clearPowerOn(t, tg, a)
	clearPowerOn(t, tg, b)
	prOut := func(n *iscsi.Nexus, sa, typ byte, p []byte) iscsi.Response {
		cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: testinit.PersistentReserveOut(sa, typ, len(p)), Write: true, WriteData: p}
		return tg.Execute(context.Background(), cmd)
	}
	wantSt(t, prOut(a, byte(proutRegister), 0, testinit.PRParams(0, 0xa, 0x04)), scsi.Good) // ALL_TG_PT
	wantSt(t, prOut(b, byte(proutRegister), 0, testinit.PRParams(0, 0xb, 0)), scsi.Good)
	wantSt(t, prOut(b, byte(proutReserve), byte(PRWriteExclusive), testinit.PRParams(0xb, 0, 0)), scsi.Good)
	rec := lu.pr.Snapshot()
	var ports []uint16
	for _, r := range rec.Registrations {
		ports = append(ports, r.RelTargetPortID)
	}
	if !slices.Equal(ports, []uint16{0x0101, 0x0201, 0x0101}) {
		t.Fatalf("registrations through ports %x, want a's on both gateways", ports)
	}
	wantSt(t, prOut(a, byte(proutPreemptAndAbort), byte(PRWriteExclusive), testinit.PRParams(0xa, 0xb, 0)), scsi.Good)
	if g.settled != 4 {
		t.Errorf("settled %d times, want once per PR OUT", g.settled)
	}
	if len(g.aborts) != 1 || g.aborts[0].InitiatorName != "iqn.2026-11.io.sanbridge:b" {
		t.Errorf("published aborts %v", g.aborts)
	}
	if len(g.uas) != 1 || g.uas[0].asc != scsi.ASCRegistrationsPreempted {
		t.Errorf("published unit attentions %v", g.uas)
	}
	// b got it locally too.
	wantCheck(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCRegistrationsPreempted)

	lu.AccessChanged()
	wantCheck(t, run(t, tg, a, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, ascAccessStateChanged)
	wantCheck(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, ascAccessStateChanged)

	// What another gateway publishes lands here.
	lu.ApplyUA(PRNexus{InitiatorName: "iqn.2026-11.io.sanbridge:a", TargetPort: testTarget + ",t,0x0001"}, scsi.ASCReservationsReleased)
	wantCheck(t, run(t, tg, a, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCReservationsReleased)
	wantSt(t, run(t, tg, b, 0, testinit.TUR(), 0), scsi.Good)
}
