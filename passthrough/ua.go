package passthrough

import (
	"sync"
	"sync/atomic"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// itl names an I_T_L nexus: the device sees one initiator (the bridge), so
// unit attentions for each real initiator port are kept here.
type itl struct {
	initiator string // SCSI initiator port name (name,i,0xISID)
	lun       uint64
}

// unitAttentions queues unit attention conditions per I_T_L nexus
// (SAM-5 5.14): each is reported once, oldest first, to the next command
// that may receive it.
type unitAttentions struct {
	nexuses sync.Map     // initiator ports with a live session -> struct{}
	count   atomic.Int64 // conditions pending: the fast path checks it
	mu      sync.Mutex
	pending map[itl][]scsi.ASC
}

func newUnitAttentions() *unitAttentions {
	return &unitAttentions{pending: make(map[itl][]scsi.ASC)}
}

// seen records a live initiator port.
func (u *unitAttentions) seen(port string) {
	if _, ok := u.nexuses.Load(port); !ok {
		u.nexuses.LoadOrStore(port, struct{}{})
	}
}

// gone forgets an initiator port and its pending conditions.
func (u *unitAttentions) gone(port string) {
	u.nexuses.Delete(port)
	u.mu.Lock()
	for k, q := range u.pending {
		if k.initiator == port {
			u.count.Add(-int64(len(q)))
			delete(u.pending, k)
		}
	}
	u.mu.Unlock()
}

// raise queues asc for lun on every live initiator port except skip.
func (u *unitAttentions) raise(lun uint64, asc scsi.ASC, skip string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.nexuses.Range(func(key, _ any) bool {
		port := key.(string)
		if port == skip {
			return true
		}
		k := itl{port, lun}
		q := u.pending[k]
		if len(q) >= 8 {
			// Bounded: the oldest conditions are dropped first.
			q = q[1:]
			u.count.Add(-1)
		}
		u.pending[k] = append(q, asc)
		u.count.Add(1)
		return true
	})
}

// take pops the oldest condition for port and lun, if any.
func (u *unitAttentions) take(port string, lun uint64) (scsi.ASC, bool) {
	if u.count.Load() == 0 {
		return 0, false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	k := itl{port, lun}
	q := u.pending[k]
	if len(q) == 0 {
		return 0, false
	}
	asc := q[0]
	u.count.Add(-1)
	if len(q) == 1 {
		delete(u.pending, k)
	} else {
		u.pending[k] = q[1:]
	}
	return asc, true
}

// reportsUA says whether an opcode receives a pending unit attention.
// INQUIRY, REPORT LUNS and REQUEST SENSE do not (SAM-5 5.14, SPC-4 5.14);
// REQUEST SENSE returns it as its data instead.
func reportsUA(op scsi.Opcode) bool {
	switch op {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return false
	}
	return true
}

// portOf returns the initiator port name of a nexus.
func portOf(n *iscsi.Nexus) string { return n.InitiatorPort() }
