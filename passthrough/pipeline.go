package passthrough

import (
	"context"
	"encoding/binary"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Execute implements iscsi.Handler. A command goes through these stages,
// each of which may answer it:
//
//	REPORT LUNS       answered from the nexus' view
//	lookup            a LUN outside the view: LOGICAL UNIT NOT SUPPORTED
//	unit attention    a pending condition is reported (ua.go)
//	shared LU         asymmetric access across gateways (alua.go)
//	reservations      SPC-2 (reserve.go) and persistent (pr.go) conflicts
//	policy            the device type's and the configuration's: refused
//	                  opcodes, read-only mappings (policy.go)
//	answer here       RESERVE/RELEASE, PERSISTENT RESERVE IN/OUT, REPORT
//	                  TARGET PORT GROUPS of an unshared logical unit
//	range             block commands beyond the capacity (disks)
//	device            everything else passes to the device, cut to what
//	                  its CDB moves and to what the path carries (exec.go,
//	                  split.go); INQUIRY with the gateway's pages
//	                  (inquiry.go)
//	fix-ups           unit attentions for the other nexuses, capacity,
//	                  mode parameters (mode.go), block limits
//	sense format      what the logical unit's D_SENSE says
//
// The common case (no unit attention pending, no reservation, a command
// within the path) costs a few atomic loads and a table lookup besides
// the lookup, and allocates nothing here.
func (t *Target) Execute(ctx context.Context, cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	if len(cdb) == 0 {
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	}
	n := t.nexusOf(cmd.Nexus)
	nv := n.view.Load()
	if scsi.Opcode(cdb[0]) == scsi.OpReportLUNs {
		// REPORT LUNS reports no unit attention; it clears REPORTED LUNS
		// DATA HAS CHANGED on every logical unit of the nexus (SPC-4
		// 6.33).
		for _, x := range nv.itls {
			x.ua.remove(scsi.ASCReportedLUNsDataChanged)
		}
		return reportLUNs(nv.View, cmd)
	}
	m, x, ok := nv.lookup(cmd.LUN)
	if !ok {
		return noSuchLUN(cmd)
	}
	lu := m.LU
	r := lu.execute(ctx, n, m, x, cmd)
	if len(r.Sense) > 0 {
		senseFormat(&r, lu.dsense.Load(), lu.pol.dt, scsi.Opcode(cdb[0]))
	}
	return r
}

// execute runs cmd on the logical unit of mapping m, whose I_T_L nexus
// for n is x: the stages after the lookup.
func (lu *LU) execute(ctx context.Context, n *nexus, m *Mapping, x *itl, cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	op := scsi.Opcode(cdb[0])
	if x.ua.pending() {
		if r, ok := unitAttention(n, x, cmd); ok {
			return r
		}
	}
	if lu.shared != nil {
		// Several gateways serve lu: the access state, REPORT/SET TARGET
		// PORT GROUPS and PR OUT across gateways (alua.go).
		if r, ok := lu.sharedStage(ctx, n, cmd); ok {
			return r
		}
	}
	if conflicts(n, lu, cdb) {
		return iscsi.Response{Status: scsi.ReservationConflict}
	}
	if m.ReadOnly && lu.pol.writeClass(cdb) {
		return checkCondition(scsi.SenseDataProtect, scsi.ASCWriteProtected)
	}
	if lu.pol.rules[op].refuse {
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	}
	switch op {
	case scsi.OpReserve6, scsi.OpReserve10:
		return lu.reserve(n, cdb)
	case scsi.OpRelease6, scsi.OpRelease10:
		return lu.release(n, cdb)
	case scsi.OpPersistentReserveIn:
		return lu.persistentReserveIn(ctx, n, cmd)
	case scsi.OpPersistentReserveOut:
		return lu.persistentReserveOut(ctx, n, cmd)
	case scsi.OpMaintenanceIn, scsi.OpMaintenanceOut:
		// Asymmetric access is the gateway's (alua.go answers it for a
		// shared logical unit); the device's own target port groups are
		// those of the ports between it and the gateway.
		if sa, ok := scsi.HasServiceAction(cdb); ok && sa == scsi.SAReportTargetPortGroups {
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(1, 4)}
		}
	}
	if lu.capStale.Load() {
		lu.refreshCapacity(ctx)
	}
	g := lu.Geometry()
	p, ok := lu.makePlan(cmd, &g)
	if !ok {
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	if g.Blocks > 0 && rangeChecked(g.Type) && !inRange(&p, g.Blocks) {
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	}
	var r iscsi.Response
	switch {
	case op == scsi.OpInquiry:
		r = lu.inquiry(ctx, n, cmd, &p)
	default:
		r = lu.do(ctx, cmd, &p)
	}
	lu.observe(cmd, &r) // READ CAPACITY, INQUIRY: the geometry Admit uses
	switch r.Status {
	case scsi.Good:
		switch op {
		case scsi.OpModeSelect6, scsi.OpModeSelect10:
			// SPC-4 6.9: the other I_T nexuses learn that the shared
			// mode parameters changed.
			lu.noteModeSelect(cmd)
			lu.raiseUA(scsi.ASCModeParametersChanged, n)
		case scsi.OpModeSense6, scsi.OpModeSense10:
			lu.fixModeSense(cmd, &r, m.ReadOnly)
		case scsi.OpFormatUnit:
			if rangeChecked(lu.pol.dt) {
				lu.capStale.Store(true) // a format may change the block size
			}
		case scsi.OpReadBlockLimits:
			lu.fixBlockLimits(cmd, &r)
		case scsi.OpMaintenanceIn:
			if sa, _ := scsi.HasServiceAction(cdb); sa == scsi.SAReportSupportedOpcodes {
				lu.fixSupportedOpcodes(cmd, &r)
			}
		}
	case scsi.CheckCondition:
		// The device reports a unit attention to the one initiator it
		// knows, the gateway: this nexus gets it now, the others later.
		if asc, ok := deviceUA(r.Sense); ok {
			lu.deviceChanged(asc)
			lu.raiseUA(asc, n)
		}
	}
	return r
}

// inRange reports whether the blocks a command addresses lie within a
// medium of capacity blocks (SBC-4 4.5): the READ/WRITE family, and the
// commands with a starting LBA that the decoder does not count as block
// transfers (GET LBA STATUS, READ LONG, WRITE LONG: the LBA must exist).
func inRange(p *plan, capacity uint64) bool {
	if p.x.Block {
		return p.x.InRange(capacity)
	}
	cdb := p.cdb
	be := binary.BigEndian
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpServiceActionIn16:
		switch scsi.ServiceAction(cdb[1] & 0x1f) {
		case scsi.SAGetLBAStatus, scsi.SAReadLong16:
			return be.Uint64(cdb[2:10]) < capacity
		}
	case scsi.OpServiceActionOut16:
		if scsi.ServiceAction(cdb[1]&0x1f) == scsi.SAWriteLong16 {
			return be.Uint64(cdb[2:10]) < capacity
		}
	case scsi.OpReadLong10, scsi.OpWriteLong10:
		return uint64(be.Uint32(cdb[2:6])) < capacity
	}
	return true
}

// conflicts reports whether a reservation of lu forbids cdb from n:
// an SPC-2 reservation held by another nexus, or the persistent
// reservation (PERSISTENT RESERVE IN and OUT never conflict with it; a
// RESERVE or RELEASE while registrations exist conflicts in reserve.go).
func conflicts(n *nexus, lu *LU, cdb []byte) bool {
	if lu.spc2Conflict(n, cdb) {
		return true
	}
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpPersistentReserveIn, scsi.OpPersistentReserveOut:
		return false
	}
	return lu.prConflict(n, cdb)
}

// unitAttention reports a pending unit attention condition of x to cmd
// when SAM-5 5.14 says so: INQUIRY neither reports nor clears it,
// REQUEST SENSE returns it as its data and clears it, any other command
// is terminated with CHECK CONDITION, UNIT ATTENTION and clears it. A
// reset condition (29h) takes precedence over RESERVATION CONFLICT, and
// RESERVATION CONFLICT over the other conditions, which stay pending
// (SAM-5 5.3.2, status precedence).
func unitAttention(n *nexus, x *itl, cmd *iscsi.Command) (iscsi.Response, bool) {
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpInquiry:
		return iscsi.Response{}, false
	case scsi.OpRequestSense:
		if a, ok := x.ua.take(); ok {
			return senseAsData(cmd, scsi.NewSense(scsi.SenseUnitAttention, a)), true
		}
		return iscsi.Response{}, false
	}
	a, ok := x.ua.peek()
	if !ok || !isReset(a) && conflicts(n, x.lu, cmd.CDB) {
		return iscsi.Response{}, false
	}
	if a, ok = x.ua.take(); !ok {
		return iscsi.Response{}, false
	}
	return checkCondition(scsi.SenseUnitAttention, a), true
}
