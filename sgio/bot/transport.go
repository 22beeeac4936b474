package bot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Class-specific requests of a Bulk-Only interface (BOT 3.1, 3.2).
const (
	reqMassStorageReset = 0xff // Bulk-Only Mass Storage Reset: host-to-device, class, interface
	reqGetMaxLUN        = 0xfe // Get Max LUN: device-to-host, class, interface, 1 byte
	rTypeClassOut       = 0x21 // bmRequestType: host-to-device, class, interface
	rTypeClassIn        = 0xa1 // bmRequestType: device-to-host, class, interface
)

// cswBufLen is the buffer a CSW is read into: a whole high-speed packet,
// so that an overlong CSW arrives as such (and is rejected) instead of
// as a babble error.
const cswBufLen = 512

// Transport is the Bulk-Only state machine of one USB mass-storage
// interface, shared by the [Device] of each of its logical units. BOT has
// no tagged queueing: commands run one at a time per interface, in the
// order they get the interface.
//
// Error recovery follows BOT 5.3 and 6: a STALL in the data phase is
// cleared on that endpoint and the CSW read; a STALL (or a zero-length
// packet) instead of the CSW is cleared and the CSW read once more; an
// invalid or meaningless CSW, a phase error, a failed CBW or data
// transfer, a timeout and a cancellation end with a reset recovery
// (Bulk-Only Mass Storage Reset, then CLEAR_FEATURE(ENDPOINT_HALT) on
// bulk-in and on bulk-out), after which the device waits for a CBW
// again. A failed command (CSW status 1) is followed by a REQUEST SENSE
// to the same LUN, whose data becomes the command's sense.
type Transport struct {
	link   Link
	name   string
	opts   options
	log    zerolog.Logger
	maxLUN uint8

	// sem is held by the command (or reset) on the wire.
	sem chan struct{}

	// Owned by the holder of sem.
	tag       uint32
	needReset bool // the last reset recovery failed: try again first
	gone      bool // the device went away
	resets    int
	cbw       [CBWLen]byte
	csw       [cswBufLen]byte
	sense     []byte

	// lost is gone for readers that do not hold sem (Gone).
	lost atomic.Bool

	mu     sync.Mutex
	refs   int  // the opener's reference and one per open Device
	closed bool // the opener's reference was released
}

// New starts the Bulk-Only transport on a claimed interface: it asks the
// device for its highest LUN (GET MAX LUN; a device that STALLs the
// request has one LUN). name identifies the interface in errors and logs
// ("2-1:1.0"). The Transport owns link from then on, also when New
// fails. Close releases the caller's reference; the link is closed when
// the Transport and every Device taken from it are closed.
func New(link Link, name string, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		link.Close()
		return nil, &sgio.OpError{Op: "open", Path: name, Err: err}
	}
	t := &Transport{
		link:  link,
		name:  name,
		opts:  o,
		log:   o.log.With().Str("usb", name).Logger(),
		sem:   make(chan struct{}, 1),
		sense: make([]byte, o.senseLen),
		refs:  1,
	}
	max, err := t.getMaxLUN()
	if err != nil {
		link.Close()
		return nil, &sgio.OpError{Op: "GET MAX LUN", Path: name, Err: err}
	}
	t.maxLUN = max
	t.log.Debug().Int("max_lun", int(max)).Int("max_transfer", o.maxTransfer).Msg("bulk-only transport up")
	return t, nil
}

// getMaxLUN sends GET MAX LUN (BOT 3.2). "Devices that do not support
// multiple LUNs may STALL this command"; so do devices that mind the
// request at all, and usb-storage takes any failure but a vanished
// device to mean one LUN, as does this.
func (t *Transport) getMaxLUN() (uint8, error) {
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.resetTimeout)
	defer cancel()
	var b [1]byte
	n, err := t.link.Control(ctx, rTypeClassIn, reqGetMaxLUN, 0, b[:])
	switch {
	case errors.Is(err, sgio.ErrGone):
		return 0, err
	case errors.Is(err, ErrStall):
		return 0, nil
	case err != nil:
		t.log.Warn().Err(err).Msg("GET MAX LUN failed; assuming one LUN")
		return 0, nil
	case n != 1 || b[0] > MaxLUN:
		t.log.Warn().Int("n", n).Uint8("max_lun", b[0]).Msg("GET MAX LUN answer not valid; assuming one LUN")
		return 0, nil
	}
	return b[0], nil
}

// Name returns the interface's name, as given to New.
func (t *Transport) Name() string { return t.name }

// Gone reports whether the device went away (a command or a reset
// found it no longer there): every command fails with sgio.ErrGone from
// then on, and the device, when it is back, must be opened anew.
func (t *Transport) Gone() bool { return t.lost.Load() }

// MaxLUN returns the highest LUN of the device (0 for a single-LUN device).
func (t *Transport) MaxLUN() int { return int(t.maxLUN) }

// Resets returns how many reset recoveries the transport has done.
func (t *Transport) Resets() int {
	t.sem <- struct{}{}
	defer func() { <-t.sem }()
	return t.resets
}

// LUN returns the Device of logical unit lun (0 to MaxLUN). Each Device
// holds a reference to the transport until it is closed.
func (t *Transport) LUN(lun int) (*Device, error) {
	path := fmt.Sprintf("usb %s lun %d", t.name, lun)
	if lun < 0 || lun > int(t.maxLUN) {
		return nil, &sgio.OpError{Op: "open", Path: path,
			Err: fmt.Errorf("%w: the device has LUNs 0 to %d", sgio.ErrBadRequest, t.maxLUN)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refs == 0 {
		return nil, &sgio.OpError{Op: "open", Path: path, Err: sgio.ErrClosed}
	}
	t.refs++
	return &Device{t: t, lun: uint8(lun), path: path}, nil
}

// Close releases the reference New returned. The interface is released
// (and given back to the kernel driver) once every Device taken from the
// Transport is closed too.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	return t.unref()
}

// unref drops one reference and closes the link with the last one.
func (t *Transport) unref() error {
	t.mu.Lock()
	t.refs--
	last := t.refs == 0
	t.mu.Unlock()
	if !last {
		return nil
	}
	t.sem <- struct{}{} // nothing is on the wire: every Device is closed
	if err := t.link.Close(); err != nil {
		return &sgio.OpError{Op: "close", Path: t.name, Err: err}
	}
	t.log.Debug().Int("resets", t.resets).Msg("bulk-only transport closed")
	return nil
}

// acquire takes the interface for one command.
func (t *Transport) acquire(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Transport) release() { <-t.sem }

// check validates a request before it takes the interface.
func (t *Transport) check(req *sgio.Request) error {
	if req == nil {
		return fmt.Errorf("%w: nil request", sgio.ErrBadRequest)
	}
	if n := len(req.CDB); n < 1 || n > MaxCDBLen {
		return fmt.Errorf("%w: CDB of %d bytes (a CBW carries 1 to %d)", sgio.ErrBadRequest, n, MaxCDBLen)
	}
	switch req.Dir {
	case sgio.DirNone:
		if len(req.Data) != 0 {
			return fmt.Errorf("%w: %d data bytes with no data direction", sgio.ErrBadRequest, len(req.Data))
		}
	case sgio.DirToDevice, sgio.DirFromDevice:
	case sgio.DirBidi:
		return fmt.Errorf("%w: the Bulk-Only transport has no bidirectional commands", sgio.ErrBadRequest)
	default:
		return fmt.Errorf("%w: unknown direction %v", sgio.ErrBadRequest, req.Dir)
	}
	if len(req.Data) > t.opts.maxTransfer {
		return fmt.Errorf("%w: %d bytes, the device takes at most %d per command", sgio.ErrTooLarge, len(req.Data), t.opts.maxTransfer)
	}
	if req.Timeout < 0 {
		return fmt.Errorf("%w: negative timeout", sgio.ErrBadRequest)
	}
	return nil
}

// errPhase marks a CSW with status phase error (BOT 6.7: the host
// answers with a reset recovery).
var errPhase = errors.New("bot: phase error")

// execute runs one command on lun. The caller holds the interface.
func (t *Transport) execute(ctx context.Context, lun uint8, path string, req *sgio.Request, res *sgio.Result) error {
	if t.gone {
		res.HostStatus = scsi.HostNoConnect
		return &sgio.OpError{Op: "submit", Path: path, Err: sgio.ErrGone}
	}
	if t.needReset {
		if err := t.resetRecovery(); err != nil {
			if t.gone {
				res.HostStatus = scsi.HostNoConnect
			}
			return &sgio.OpError{Op: "submit", Path: path, Err: err}
		}
	}
	if err := ctx.Err(); err != nil {
		return &sgio.OpError{Op: "submit", Path: path, Err: err}
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = t.opts.timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()

	dataIn := req.Dir == sgio.DirFromDevice
	moved, csw, err := t.transact(cctx, lun, req.CDB, dataIn, req.Data)
	if err != nil {
		return t.failed(ctx, cctx, path, timeout, err, res)
	}
	res.Resid = resid(len(req.Data), moved, csw.DataResidue)
	if csw.Status == CSWPassed {
		res.Status = scsi.Good
		return nil
	}
	res.Status = scsi.CheckCondition
	if scsi.Opcode(req.CDB[0]) == scsi.OpRequestSense {
		return nil // no sense about REQUEST SENSE itself
	}
	// BOT has no autosense: ask for the sense now, before any other
	// command reaches the device (SPC-4 5.12: the sense is kept until
	// the next command from this I_T nexus).
	sense, err := t.requestSense(cctx, lun)
	if err != nil {
		return t.failed(ctx, cctx, path, timeout, fmt.Errorf("REQUEST SENSE after a failed command: %w", err), res)
	}
	if len(sense) > 0 {
		res.Sense = sense
		res.DriverStatus = scsi.DriverSense
	}
	return nil
}

// failed ends a command whose BOT exchange went wrong: unless the device
// is gone, a reset recovery puts it back into the state where it waits
// for a CBW. The outcome is a timeout (ErrTimeout, DID_TIME_OUT), a
// cancellation (ctx's error, DID_ABORT), a vanished device (ErrGone,
// DID_NO_CONNECT), or, for protocol failures, DID_ERROR in res with no
// error, as usb-storage reports them through the sg driver.
func (t *Transport) failed(ctx, cctx context.Context, path string, timeout time.Duration, err error, res *sgio.Result) error {
	*res = sgio.Result{}
	if errors.Is(err, sgio.ErrGone) {
		t.gone = true
		t.lost.Store(true)
		res.HostStatus = scsi.HostNoConnect
		t.log.Warn().Err(err).Msg("USB device gone")
		return &sgio.OpError{Op: "command", Path: path, Err: err}
	}
	t.log.Warn().Err(err).Msg("bulk-only command failed; reset recovery")
	rerr := t.resetRecovery()
	if rerr != nil {
		t.log.Error().Err(rerr).Msg("reset recovery failed")
	}
	switch {
	case t.gone:
		res.HostStatus = scsi.HostNoConnect
		return &sgio.OpError{Op: "command", Path: path, Err: rerr}
	case ctx.Err() != nil:
		res.HostStatus = scsi.HostAbort
		return &sgio.OpError{Op: "command", Path: path, Err: ctx.Err()}
	case cctx.Err() != nil:
		res.HostStatus = scsi.HostTimeOut
		return &sgio.OpError{Op: "command", Path: path, Err: fmt.Errorf("%w (after %v)", sgio.ErrTimeout, timeout)}
	}
	res.HostStatus = scsi.HostError
	return nil
}

// resid is the residual of a data phase: what did not move, or what the
// device says it did not process, whichever is more (usb-storage does
// the same; a residue larger than the buffer was refused by CSW.Check).
func resid(buflen, moved int, residue uint32) int {
	r := buflen - moved
	if int(residue) > r {
		r = int(residue)
	}
	return min(max(r, 0), buflen)
}

// requestSense fetches the sense of lun's failed command.
func (t *Transport) requestSense(ctx context.Context, lun uint8) ([]byte, error) {
	cdb := [6]byte{byte(scsi.OpRequestSense), 0, 0, 0, byte(len(t.sense)), 0}
	moved, csw, err := t.transact(ctx, lun, cdb[:], true, t.sense)
	if err != nil {
		return nil, err
	}
	if csw.Status != CSWPassed {
		t.log.Warn().Stringer("status", csw.Status).Msg("REQUEST SENSE failed; no sense data")
		return nil, nil
	}
	n := len(t.sense) - resid(len(t.sense), moved, csw.DataResidue)
	if n == 0 {
		return nil, nil
	}
	return append([]byte(nil), t.sense[:n]...), nil
}

// transact runs the three phases of one command (BOT 5.3) and returns
// how many data bytes moved and the CSW, which is valid and meaningful
// and says passed or failed. Any other outcome is an error, after which
// the device needs a reset recovery (unless it is gone).
func (t *Transport) transact(ctx context.Context, lun uint8, cdb []byte, dataIn bool, data []byte) (int, CSW, error) {
	t.tag++
	cbw := CBW{Tag: t.tag, DataTransferLength: uint32(len(data)), DataIn: dataIn, LUN: lun, CDB: cdb}
	wire, err := cbw.AppendBinary(t.cbw[:0])
	if err != nil {
		return 0, CSW{}, err
	}
	// Command transport (BOT 5.3.1). A device STALLs a CBW it finds
	// invalid or not meaningful (6.6.1) and then wants a reset recovery.
	n, err := t.link.Bulk(ctx, BulkOut, wire)
	if err != nil {
		return 0, CSW{}, fmt.Errorf("sending the CBW: %w", err)
	}
	if n != CBWLen {
		return 0, CSW{}, fmt.Errorf("sending the CBW: %d of %d bytes went", n, CBWLen)
	}

	// Data transport (BOT 5.3.2). "The device may ... STALL the
	// endpoint" to end the data phase early (6.7.2, 6.7.3): the host
	// clears the halt and goes on to the CSW.
	moved := 0
	var early *CSW
	if len(data) > 0 {
		ep := BulkOut
		if dataIn {
			ep = BulkIn
		}
		moved, err = t.link.Bulk(ctx, ep, data)
		switch {
		case errors.Is(err, ErrStall):
			if err := t.link.ClearHalt(ctx, ep); err != nil {
				return moved, CSW{}, fmt.Errorf("clearing the %v halt after a data-phase STALL: %w", ep, err)
			}
		case err != nil:
			return moved, CSW{}, fmt.Errorf("data phase on %v: %w", ep, err)
		case dataIn && moved == CSWLen && len(data) > CSWLen:
			// usb-storage's observation: some devices skip the data
			// phase and send the CSW at once, where the data was
			// expected. 13 bytes that parse as this command's CSW are
			// taken as the CSW.
			if c, err := ParseCSW(data[:CSWLen]); err == nil && c.Tag == cbw.Tag {
				t.log.Debug().Msg("device skipped the data phase")
				early, moved = &c, 0
			}
		}
	}

	// Status transport (BOT 5.3.3).
	var csw CSW
	if early != nil {
		csw = *early
	} else if csw, err = t.readCSW(ctx); err != nil {
		return moved, CSW{}, err
	}
	if err := csw.Check(&cbw); err != nil {
		return moved, CSW{}, err
	}
	if csw.Status == CSWPhaseError {
		return moved, CSW{}, errPhase
	}
	return moved, csw, nil
}

// readCSW receives the CSW. A STALL of bulk-in is cleared and the read
// tried once more (BOT 5.3.3, figure 2: "Clear STALL, Attempt to receive
// CSW ... again"); so is a zero-length packet, which some devices add
// after data that ended on a packet boundary (usb-storage retries it
// too).
func (t *Transport) readCSW(ctx context.Context) (CSW, error) {
	for attempt := 1; ; attempt++ {
		n, err := t.link.Bulk(ctx, BulkIn, t.csw[:])
		switch {
		case errors.Is(err, ErrStall):
			if attempt == 2 {
				return CSW{}, fmt.Errorf("receiving the CSW: %w (twice)", err)
			}
			if err := t.link.ClearHalt(ctx, BulkIn); err != nil {
				return CSW{}, fmt.Errorf("clearing the bulk-in halt before the CSW: %w", err)
			}
			continue
		case err != nil:
			return CSW{}, fmt.Errorf("receiving the CSW: %w", err)
		case n == 0 && attempt == 1:
			continue
		}
		return ParseCSW(t.csw[:n])
	}
}

// resetRecovery puts the device back into the state where it waits for
// a CBW (BOT 5.3.4): "the host shall issue in the following order: (a) a
// Bulk-Only Mass Storage Reset (b) a Clear Feature HALT to the Bulk-In
// endpoint (c) a Clear Feature HALT to the Bulk-Out endpoint". Each
// request has its own [WithResetTimeout] bound; ctx of the failed
// command is not used (it may be the reason for the reset). On failure
// the next command tries again first.
func (t *Transport) resetRecovery() error {
	t.resets++
	step := func(what string, f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.resetTimeout)
		defer cancel()
		if err := f(ctx); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrResetFailed, what, err)
		}
		return nil
	}
	err := step("Bulk-Only Mass Storage Reset", func(ctx context.Context) error {
		_, err := t.link.Control(ctx, rTypeClassOut, reqMassStorageReset, 0, nil)
		return err
	})
	if err == nil {
		err = step("clearing the bulk-in halt", func(ctx context.Context) error { return t.link.ClearHalt(ctx, BulkIn) })
	}
	if err == nil {
		err = step("clearing the bulk-out halt", func(ctx context.Context) error { return t.link.ClearHalt(ctx, BulkOut) })
	}
	if err != nil {
		if errors.Is(err, sgio.ErrGone) {
			t.gone = true
			t.lost.Store(true)
		} else {
			t.needReset = true
		}
		return err
	}
	t.needReset = false
	return nil
}
