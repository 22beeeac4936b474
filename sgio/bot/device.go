package bot

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sanbridge/sanbridge/sgio"
)

// Device is one logical unit of a Bulk-Only interface. It implements
// [sgio.Device] and [sgio.Resetter]; its commands share the interface
// with those of the other LUNs (see [Transport]).
type Device struct {
	t    *Transport
	lun  uint8
	path string

	// mu is held for reading by every Execute, for writing by Close.
	mu     sync.RWMutex
	closed bool
}

// LUN returns the logical unit number.
func (d *Device) LUN() int { return int(d.lun) }

// Transport returns the interface the logical unit is on.
func (d *Device) Transport() *Transport { return d.t }

// Execute runs one request and stores its outcome in res, which it
// resets first. SCSI outcomes are data in res; a failed command's sense
// (fetched with REQUEST SENSE, BOT having no autosense) is in res.Sense.
// The error is non-nil when the request was not executed (ErrBadRequest,
// ErrTooLarge, ErrClosed, ErrGone, [ErrResetFailed], ctx done before it
// got the interface), or when its outcome is unknown: ErrTimeout
// (res.HostStatus DID_TIME_OUT), ctx's error (DID_ABORT) and ErrGone
// (DID_NO_CONNECT). A timed-out or cancelled command has been cut off
// with a reset recovery when Execute returns, so it no longer runs on
// the device. A protocol failure (phase error, invalid CSW, ...) is
// reported as DID_ERROR in res after the same reset recovery.
func (d *Device) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	*res = sgio.Result{}
	if err := d.t.check(req); err != nil {
		return &sgio.OpError{Op: "submit", Path: d.path, Err: err}
	}
	if err := d.begin(ctx); err != nil {
		return &sgio.OpError{Op: "submit", Path: d.path, Err: err}
	}
	defer d.end()
	return d.t.execute(ctx, d.lun, d.path, req, res)
}

// begin takes the interface for one operation of an open Device; end
// gives it back.
func (d *Device) begin(ctx context.Context) error {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return sgio.ErrClosed
	}
	if err := d.t.acquire(ctx); err != nil {
		d.mu.RUnlock()
		return err
	}
	return nil
}

func (d *Device) end() {
	d.t.release()
	d.mu.RUnlock()
}

// Limits returns the transfer limits: [WithMaxTransfer] per command and
// one command at a time.
func (d *Device) Limits() sgio.Limits {
	return sgio.Limits{MaxTransferBytes: d.t.opts.maxTransfer, QueueDepth: 1}
}

// Reset implements [sgio.Resetter] with a reset recovery (BOT 5.3.4),
// once the command on the wire is done. The Bulk-Only Mass Storage Reset
// resets the whole interface, so on a device with several LUNs it would
// reset the others too: there it fails with errors.ErrUnsupported.
func (d *Device) Reset(ctx context.Context) error {
	if d.t.maxLUN > 0 {
		return &sgio.OpError{Op: "reset", Path: d.path,
			Err: fmt.Errorf("%w: a Bulk-Only reset would reset all %d LUNs of the device", errors.ErrUnsupported, int(d.t.maxLUN)+1)}
	}
	if err := d.begin(ctx); err != nil {
		return &sgio.OpError{Op: "reset", Path: d.path, Err: err}
	}
	defer d.end()
	if d.t.gone {
		return &sgio.OpError{Op: "reset", Path: d.path, Err: sgio.ErrGone}
	}
	if err := d.t.resetRecovery(); err != nil {
		return &sgio.OpError{Op: "reset", Path: d.path, Err: err}
	}
	return nil
}

// Close releases the logical unit once its requests in flight are done;
// the interface is released with the last Device (and the Transport).
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	return d.t.unref()
}

var (
	_ sgio.Device   = (*Device)(nil)
	_ sgio.Resetter = (*Device)(nil)
)
