package passthrough

import (
	"context"
	"errors"
	"time"

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
// UNIT RESET, TARGET RESET), on every gateway of a shared logical unit.
func (lu *LU) clearReservation() {
	lu.reserved.Store(nil)
	if sr, ok := lu.shared.(SharedReserve); ok {
		lu.publishRelease(sr, "")
	}
}

// releaseHeldBy ends the reservation if n holds it (n's nexus ended or
// lost sight of the logical unit), on every gateway of a shared logical
// unit.
func (lu *LU) releaseHeldBy(n *nexus) {
	if !lu.reserved.CompareAndSwap(n, nil) {
		return
	}
	if sr, ok := lu.shared.(SharedReserve); ok {
		lu.publishRelease(sr, n.pr.String())
	}
}

// publishRelease ends holder's shared reservation ("": anyone's) for a
// reset or a nexus that ended, which have no command to answer. A
// failure is logged: the record goes with this gateway's lease, or is
// dropped as stale when this gateway catches up.
func (lu *LU) publishRelease(sr SharedReserve, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := sr.Release(ctx, holder); err != nil {
		lu.log.Warn().Err(err).Str("lu", lu.name).Str("holder", holder).Msg("SPC-2 reservation release not published to the other gateways")
		return
	}
	if err := lu.shared.Settle(ctx); err != nil {
		lu.log.Warn().Err(err).Str("lu", lu.name).Msg("SPC-2 reservation release not confirmed by every gateway")
	}
}

// releaseTimeout bounds publishRelease; the shared store applies its own
// shorter timeouts.
const releaseTimeout = 30 * time.Second

// SharedReserve is implemented by a [Shared] that keeps the SPC-2
// reservation with the other gateways: one holder, an I_T nexus of one
// gateway, for the whole cluster. The holder is named by its
// [PRNexus.String]. Both methods apply their outcome with
// [LU.ApplyReservation] before returning, and fail with an error
// wrapping [ErrPRUnavailable] when the store is unreachable for now.
type SharedReserve interface {
	// Reserve makes holder, an I_T nexus of this gateway, the holder
	// unless some nexus holds the reservation: false then.
	Reserve(ctx context.Context, holder string) (bool, error)
	// Release ends the reservation if holder, an I_T nexus of this
	// gateway, holds it; whoever holds it when holder is "".
	Release(ctx context.Context, holder string) error
}

// remoteHolder stands for an SPC-2 reservation holder on another
// gateway in LU.reserved: every nexus here conflicts with it. It is
// never changed.
var remoteHolder = &nexus{}

// ApplyReservation sets the SPC-2 reservation as the cluster has it:
// held by holder, an I_T nexus of this gateway; by a nexus of another
// gateway (remote); or by none (holder "" and not remote). It reports
// false when holder is not attached here (the record is stale).
func (lu *LU) ApplyReservation(holder string, remote bool) bool {
	switch {
	case remote:
		lu.reserved.Store(remoteHolder)
		return true
	case holder == "":
		lu.reserved.Store(nil)
		return true
	}
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for x := range lu.itls {
		if x.n.pr.String() == holder {
			lu.reserved.Store(x.n)
			return true
		}
	}
	lu.reserved.Store(nil)
	return false
}

// sharedReserve answers RESERVE and RELEASE on a logical unit whose SPC-2
// reservation is kept with the other gateways (the same rules as reserve
// and release, the holder's identity stored by sr). changed says whether
// the reservation changed, for the caller to wait until every gateway
// applied it.
func (lu *LU) sharedReserve(ctx context.Context, sr SharedReserve, n *nexus, cdb []byte) (r iscsi.Response, changed bool) {
	if r, bad := checkReserveCDB(cdb); bad {
		return r, false
	}
	// A holder elsewhere may just have gone without this gateway having
	// applied it yet: RESERVE asks the store, which knows.
	if h := lu.reserved.Load(); lu.pr.Active() || h != nil && h != n && h != remoteHolder && !spc2Allowed(cdb) {
		return iscsi.Response{Status: scsi.ReservationConflict}, false
	}
	fail := func(err error) (iscsi.Response, bool) {
		lu.log.Warn().Err(err).Str("lu", lu.name).Msg("shared SPC-2 reservation")
		if errors.Is(err, ErrPRUnavailable) {
			return checkCondition(scsi.SenseNotReady, ascAccessTransition), false
		}
		return checkCondition(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure), false
	}
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpReserve6, scsi.OpReserve10:
		if lu.reserved.Load() == n {
			return iscsi.Response{}, false
		}
		ok, err := sr.Reserve(ctx, n.pr.String())
		if err != nil {
			return fail(err)
		}
		if !ok {
			return iscsi.Response{Status: scsi.ReservationConflict}, false
		}
		return iscsi.Response{}, true
	default:
		if lu.reserved.Load() != n {
			return iscsi.Response{}, false
		}
		if err := sr.Release(ctx, n.pr.String()); err != nil {
			return fail(err)
		}
		return iscsi.Response{}, true
	}
}
