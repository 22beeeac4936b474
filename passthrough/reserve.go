package passthrough

import (
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// SPC-2 reservations (SPC-2 7.21, 7.23, 5.5.1): RESERVE(6)/(10) reserve
// the whole logical unit for one I_T nexus, RELEASE(6)/(10) end it. The
// gateway keeps them itself, per I_T nexus and logical unit, and never
// forwards them: the device sees a single initiator, the gateway. A
// reservation ends on RELEASE by its holder, when the holder's nexus
// ends (logout, connection loss, reinstatement), and on LOGICAL UNIT
// RESET and TARGET RESET. The holder is read with one atomic load on
// every command; nothing else happens while no reservation exists.

// spc2Allowed reports whether cdb may run on a logical unit that another
// I_T nexus has reserved (SPC-2 5.5.1, the commands a reservation does
// not conflict with): INQUIRY, REQUEST SENSE, REPORT LUNS, RELEASE, and
// PREVENT ALLOW MEDIUM REMOVAL with PREVENT 00b. Everything else,
// reads and TEST UNIT READY included, gets RESERVATION CONFLICT.
func spc2Allowed(cdb []byte) bool {
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpInquiry, scsi.OpRequestSense, scsi.OpReportLUNs, scsi.OpRelease6, scsi.OpRelease10:
		return true
	case scsi.OpPreventAllowMediumRemoval:
		return len(cdb) >= 6 && cdb[4]&0x03 == 0
	}
	return false
}

// spc2Conflict reports whether an SPC-2 reservation held by another
// nexus forbids cdb from n.
func (lu *LU) spc2Conflict(n *nexus, cdb []byte) bool {
	h := lu.reserved.Load()
	return h != nil && h != n && !spc2Allowed(cdb)
}

// reserve answers RESERVE(6) and RESERVE(10) from n. Third-party and
// extent reservations (obsolete in SPC-2, SPC-2 7.21) are refused with
// INVALID FIELD IN CDB; a reservation held by another nexus has already
// been answered with RESERVATION CONFLICT by the pipeline.
func (lu *LU) reserve(n *nexus, cdb []byte) iscsi.Response {
	if r, bad := checkReserveCDB(cdb); bad {
		return r
	}
	// SPC-4 5.13.3: while persistent reservation registrations exist,
	// RESERVE and RELEASE conflict whoever sends them.
	if lu.pr.Active() {
		return iscsi.Response{Status: scsi.ReservationConflict}
	}
	if !lu.reserved.CompareAndSwap(nil, n) && lu.reserved.Load() != n {
		return iscsi.Response{Status: scsi.ReservationConflict}
	}
	return iscsi.Response{}
}

// release answers RELEASE(6) and RELEASE(10) from n: the holder's
// reservation ends; from anyone else it is GOOD and changes nothing
// (SPC-2 7.23).
func (lu *LU) release(n *nexus, cdb []byte) iscsi.Response {
	if r, bad := checkReserveCDB(cdb); bad {
		return r
	}
	if lu.pr.Active() {
		return iscsi.Response{Status: scsi.ReservationConflict}
	}
	lu.reserved.CompareAndSwap(n, nil)
	return iscsi.Response{}
}

// checkReserveCDB refuses the third-party and extent forms of RESERVE
// and RELEASE: (6) byte 1 bits 4-0 (third-party ID, 3RDPTY, EXTENT);
// (10) byte 1 bit 4 (3RDPTY), bit 1 (LONGID) and bit 0 (EXTENT).
func checkReserveCDB(cdb []byte) (iscsi.Response, bool) {
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpReserve6, scsi.OpRelease6:
		if len(cdb) < 6 {
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(0, 7)}, true
		}
		if b := cdb[1] & 0x1f; b != 0 {
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(1, highBit(b))}, true
		}
	case scsi.OpReserve10, scsi.OpRelease10:
		if len(cdb) < 10 {
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(0, 7)}, true
		}
		if b := cdb[1] & 0x13; b != 0 {
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(1, highBit(b))}, true
		}
	}
	return iscsi.Response{}, false
}

// highBit returns the most significant set bit of b (b != 0).
func highBit(b byte) int {
	for i := 7; i > 0; i-- {
		if b&(1<<i) != 0 {
			return i
		}
	}
	return 0
}

// clearReservation ends the SPC-2 reservation whoever holds it (LOGICAL
// UNIT RESET, TARGET RESET).
func (lu *LU) clearReservation() { lu.reserved.Store(nil) }

// releaseHeldBy ends the reservation if n holds it (n's nexus ended or
// lost sight of the logical unit).
func (lu *LU) releaseHeldBy(n *nexus) { lu.reserved.CompareAndSwap(n, nil) }
