package passthrough

import (
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

var _ iscsi.Inliner = (*Target)(nil)

// Inline implements iscsi.Inliner: a command may run on the connection's
// reader when nothing in its way through the pipeline can wait for
// something that stalls. That holds for the data path (READ, WRITE, TEST
// UNIT READY) of a logical unit of this gateway alone (no cluster stage)
// whose device never blocks (sgio.NonBlocker: a memory disk) and whose
// capacity need not be read again; the queue-depth wait it may meet is
// for other commands on the same memory. Everything else (reservations
// with their store, devices that do I/O, a shared logical unit) runs on
// an executor.
func (t *Target) Inline(cmd *iscsi.Command) bool {
	if len(cmd.CDB) == 0 {
		return false
	}
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpRead6, scsi.OpRead10, scsi.OpRead12, scsi.OpRead16,
		scsi.OpWrite6, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16,
		scsi.OpTestUnitReady:
	default:
		return false
	}
	v, ok := t.nexuses.Load(cmd.Nexus)
	if !ok {
		return false // Execute attaches it, and logs that
	}
	m, _, ok := v.(*nexus).view.Load().lookup(cmd.LUN)
	if !ok {
		return false
	}
	lu := m.LU
	if lu.shared != nil || lu.capStale.Load() {
		return false
	}
	nb, ok := lu.dev.(sgio.NonBlocker)
	return ok && nb.NonBlocking()
}
