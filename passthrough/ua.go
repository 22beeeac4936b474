package passthrough

import (
	"sync"
	"sync/atomic"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// maxUnitAttentions bounds the unit attention conditions queued for one
// I_T_L nexus.
const maxUnitAttentions = 16

// uaQueue holds the unit attention conditions pending for one I_T_L
// nexus (SAM-5 5.14). Conditions are reported one at a time, in order of
// precedence (uaPrecedence) and, within a precedence, oldest first. The
// queue is bounded: when it is full, a new condition replaces the newest
// one of the lowest precedence if it outranks it, and is dropped
// otherwise, so the oldest and the most important conditions survive.
// POWER ON, RESET, OR BUS DEVICE RESET OCCURRED supersedes every other
// condition (the device server may have lost whatever they reported).
type uaQueue struct {
	n  atomic.Int32 // len(q): the per-command check reads only this
	mu sync.Mutex
	q  []scsi.ASC
}

// uaPrecedence ranks a unit attention condition by SAM-5 5.14's
// precedence list, 0 being the highest: reset conditions first, then
// the rest.
func uaPrecedence(a scsi.ASC) int {
	switch a {
	case scsi.ASCPowerOnOrReset:
		return 0
	case scsi.ASCPowerOnOccurred, scsi.ASCDeviceInternalReset:
		return 1
	case scsi.ASCBusResetOccurred, ascMicrocodeChanged:
		return 2
	case scsi.ASCBusDeviceResetOccurred:
		return 3
	case scsi.ASCITNexusLossOccurred:
		return 4
	case ascCommandsClearedByPowerLoss:
		return 5
	}
	if a.Code() == 0x29 {
		// Other 29h conditions are protocol specific: with the bus resets.
		return 2
	}
	return 6
}

// Additional sense codes only the unit attention precedence names.
const (
	ascMicrocodeChanged           scsi.ASC = 0x3f01
	ascCommandsClearedByPowerLoss scsi.ASC = 0x2f01
)

// isReset reports whether a is one of the 29h family (a reset of some
// kind), which SAM-5 ranks above every other unit attention and above
// BUSY and RESERVATION CONFLICT.
func isReset(a scsi.ASC) bool { return a.Code() == 0x29 }

// pending reports whether any condition is queued.
func (u *uaQueue) pending() bool { return u.n.Load() != 0 }

// add establishes condition a.
func (u *uaQueue) add(a scsi.ASC) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := uaPrecedence(a)
	for _, q := range u.q {
		if q == a {
			return // already pending: one report says it
		}
		if isReset(q) && isReset(a) && uaPrecedence(q) < p {
			return // a wider reset is pending and implies this one
		}
	}
	if a == scsi.ASCPowerOnOrReset {
		u.q = u.q[:0]
	}
	if len(u.q) >= maxUnitAttentions {
		last := len(u.q) - 1
		if uaPrecedence(u.q[last]) <= p {
			return // full of conditions at least as important: keep them
		}
		u.q = u.q[:last]
	}
	// Insert after every condition of the same or higher precedence.
	i := len(u.q)
	for i > 0 && uaPrecedence(u.q[i-1]) > p {
		i--
	}
	u.q = append(u.q, 0)
	copy(u.q[i+1:], u.q[i:])
	u.q[i] = a
	u.n.Store(int32(len(u.q)))
}

// peek returns the condition that would be reported next.
func (u *uaQueue) peek() (scsi.ASC, bool) {
	if !u.pending() {
		return 0, false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.q) == 0 {
		return 0, false
	}
	return u.q[0], true
}

// take removes and returns the condition to report next.
func (u *uaQueue) take() (scsi.ASC, bool) {
	if !u.pending() {
		return 0, false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.q) == 0 {
		return 0, false
	}
	a := u.q[0]
	u.q = append(u.q[:0], u.q[1:]...)
	u.n.Store(int32(len(u.q)))
	return a, true
}

// remove clears condition a if it is pending.
func (u *uaQueue) remove(a scsi.ASC) {
	if !u.pending() {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, q := range u.q {
		if q == a {
			u.q = append(u.q[:i], u.q[i+1:]...)
			u.n.Store(int32(len(u.q)))
			return
		}
	}
}

// snapshot returns the pending conditions in reporting order.
func (u *uaQueue) snapshot() []scsi.ASC {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]scsi.ASC(nil), u.q...)
}

// reportsUA reports whether a command receives a pending unit attention
// as CHECK CONDITION. INQUIRY and REPORT LUNS never do (REPORT LUNS
// clears REPORTED LUNS DATA HAS CHANGED instead), and REQUEST SENSE
// returns it as its data (SAM-5 5.14, SPC-4 6.39).
func reportsUA(op scsi.Opcode) bool {
	switch op {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return false
	}
	return true
}

// deviceUA returns the additional sense code when sense reports a unit
// attention, in either format.
func deviceUA(sense []byte) (scsi.ASC, bool) {
	if len(sense) < 4 {
		return 0, false
	}
	switch sense[0] & 0x7f {
	case scsi.RespFixedCurrent, scsi.RespFixedDeferred:
		if len(sense) >= 14 && scsi.SenseKey(sense[2]&0x0f) == scsi.SenseUnitAttention {
			return scsi.NewASC(sense[12], sense[13]), true
		}
	case scsi.RespDescriptorCurrent, scsi.RespDescriptorDeferred:
		if scsi.SenseKey(sense[1]&0x0f) == scsi.SenseUnitAttention {
			return scsi.NewASC(sense[2], sense[3]), true
		}
	}
	return 0, false
}
