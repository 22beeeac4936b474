package passthrough

import (
	"context"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Execute implements iscsi.Handler. A command goes through these stages,
// each of which may answer it:
//
//	REPORT LUNS       answered from the nexus' view
//	lookup            a LUN outside the view: LOGICAL UNIT NOT SUPPORTED
//	unit attention    a pending condition is reported (ua.go)
//	reservations      SPC-2 (reserve.go) and persistent (pr.go) conflicts
//	policy            read-only mappings refuse write-class commands
//	answer here       RESERVE/RELEASE, PERSISTENT RESERVE IN/OUT
//	device            everything else passes to the device
//	fix-ups           unit attentions for the other nexuses, WP
//
// The common case (no unit attention pending, no reservation) costs two
// atomic loads besides the lookup, and allocates nothing here.
func (t *Target) Execute(ctx context.Context, cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	if len(cdb) == 0 {
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	}
	n := t.nexusOf(cmd.Nexus)
	nv := n.view.Load()
	op := scsi.Opcode(cdb[0])
	if op == scsi.OpReportLUNs {
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
	if m.ReadOnly && writeClass(cdb) {
		return checkCondition(scsi.SenseDataProtect, scsi.ASCWriteProtected)
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
	}
	r := lu.do(ctx, cmd)
	lu.observe(cmd, &r) // READ CAPACITY, INQUIRY: the geometry Admit uses
	switch r.Status {
	case scsi.Good:
		switch op {
		case scsi.OpModeSelect6, scsi.OpModeSelect10:
			// SPC-4 6.9: the other I_T nexuses learn that the shared
			// mode parameters changed.
			lu.raiseUA(scsi.ASCModeParametersChanged, n)
		case scsi.OpModeSense6, scsi.OpModeSense10:
			if m.ReadOnly {
				setWP(cmd, &r)
			}
		}
	case scsi.CheckCondition:
		// The device reports a unit attention to the one initiator it
		// knows, the gateway: this nexus gets it now, the others later.
		if asc, ok := deviceUA(r.Sense); ok {
			lu.raiseUA(asc, n)
		}
	}
	return r
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
