package emul

import (
	"context"

	"github.com/sanbridge/sanbridge/sgio"
)

// Reset implements [sgio.Resetter]: a logical unit reset of the disk.
// Commands run synchronously inside Execute, so none is left to abort,
// and the disk keeps no state a reset clears (its mode parameters are
// fixed, it has no pending sense and no reservations); a stopped disk
// stays stopped, as the power condition survives a reset (SBC-3 4.20).
func (d *Disk) Reset(ctx context.Context) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return sgio.ErrClosed
	}
	return nil
}

var _ sgio.Resetter = (*Disk)(nil)
