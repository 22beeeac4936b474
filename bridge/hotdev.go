package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/discover"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// A pass-through logical unit of a local SCSI device outlives the device:
// its LU (LUN numbers, reservations, unit attention queues, every nexus
// that sees it) stays while the device is gone, and the device that comes
// back with the same identity, under whatever sg node, is put back under
// it. hotDevice is the sgio.Device the LU holds for that: the sg device
// it currently runs on, or none.
//
// While the device is gone (SAM-5 5.9: the logical unit is there, the
// peripheral device is not connected to it):
//   - a standard INQUIRY answers the device's last standard data with
//     peripheral qualifier 001b, "a peripheral device of this type is
//     not currently connected to this logical unit" (SPC-4 6.6.2);
//   - REQUEST SENSE returns the condition below as its data;
//   - every other command ends CHECK CONDITION, NOT READY, LOGICAL UNIT
//     NOT READY, MANUAL INTERVENTION REQUIRED (04h/03h): NOT READY is the
//     sense key for "the logical unit is not accessible; operator
//     intervention may be required" (SPC-4 4.5.6), which is what a
//     removed device is, and it is neither ILLEGAL REQUEST (the LUN
//     exists: REPORT LUNS still lists it) nor a condition an initiator
//     retries on its own (Linux fails 04h/03h at once, so I/O errors come
//     back without stalling other LUNs).
//
// Commands in flight when the device went away end with what the kernel
// reports (DID_NO_CONNECT: NOT READY, LOGICAL UNIT COMMUNICATION FAILURE)
// or, if their sg node was already gone, as above.
//
// When the device is back, the first command other than INQUIRY, REPORT
// LUNS and REQUEST SENSE ends with UNIT ATTENTION, POWER ON OCCURRED
// (29h/01h): the device behind the LUN was powered on anew, its mode
// parameters and volatile state are its defaults again. The
// pass-through layer hands that unit attention to every other nexus that
// sees the LU (as for any unit attention from a device), so each
// initiator learns it once, without a relogin.

// devState is what a hotDevice runs on.
type devState uint8

const (
	devPresent    devState = iota // on its device since the start
	devGone                       // no device
	devReattached                 // on a device that came back
)

// String names the state as sanbridge status shows it.
func (s devState) String() string {
	switch s {
	case devPresent:
		return "present"
	case devGone:
		return "gone"
	case devReattached:
		return "reattached"
	}
	return "unknown"
}

// ascGone is the additional sense code of a command to a removed device.
const ascGone = scsi.ASCNotReadyManualIntervention

// hotDevice is a logical unit's device that may come and go.
type hotDevice struct {
	id string // identity (identityOf)
	// overISCSI is set for a device that is itself an iSCSI LUN; others
	// never move to one (see pickDevice).
	overISCSI bool
	limits    sgio.Limits // the first device's; the LU sized its queues by them
	info      sgio.Info   // the last device's, for device-type policy
	inq       []byte      // the last standard INQUIRY data, for INQUIRY while gone
	// reopen opens the device again at a new sg node, with the options
	// of the first open.
	reopen func(path string) (sgio.Device, error)
	// lost, when set, is told that a command found the device gone before
	// any event did (the watcher rescans).
	lost func()

	mu        sync.RWMutex
	dev       sgio.Device // nil while gone
	sg, hctl  string
	state     devState
	since     time.Time
	closed    bool
	returns   int // times the device came back
	uaPending atomic.Bool
}

// newHotDevice wraps dev, the device d discovered.
func newHotDevice(dev sgio.Device, d *discover.Device) *hotDevice {
	h := &hotDevice{id: identityOf(d), limits: dev.Limits(), dev: dev, sg: d.SG, hctl: d.HCTL, state: devPresent, since: time.Now(),
		overISCSI: d.Transport.Kind == discover.TransportISCSI}
	h.inq = standardInquiry(d)
	if i, ok := dev.(interface{ Info() sgio.Info }); ok {
		h.info = i.Info()
	} else {
		h.info.PeripheralType = int(d.Type)
	}
	return h
}

// identityOf is the identity a device keeps when it goes and comes back:
// its WWN, else its unit serial number, else its bus path (which holds
// for a device put back in the same slot).
func identityOf(d *discover.Device) string {
	switch {
	case d.Identity.WWN != "":
		return "wwn:" + d.Identity.WWN
	case d.Identity.Serial != "":
		return "serial:" + d.Vendor + ":" + d.Product + ":" + d.Identity.Serial
	case d.Path != "":
		return "path:" + d.Path
	}
	return "hctl:" + d.HCTL
}

// standardInquiry rebuilds standard INQUIRY data (SPC-4 6.6.2) from what
// discovery read, with peripheral qualifier 001b, for INQUIRY while the
// device is gone.
func standardInquiry(d *discover.Device) []byte {
	b := make([]byte, 36)
	b[0] = 0x20 | byte(d.Type)&0x1f
	if d.Removable {
		b[1] = 0x80
	}
	b[2] = 0x06 // SPC-4
	b[3] = 0x02
	b[4] = 31
	pad := func(dst []byte, s string) {
		for i := range dst {
			dst[i] = ' '
		}
		copy(dst, s)
	}
	pad(b[8:16], d.Vendor)
	pad(b[16:32], d.Product)
	pad(b[32:36], d.Revision)
	return b
}

// current returns the device to send a command to, or nil while gone.
func (h *hotDevice) current() sgio.Device {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.dev
}

// Execute implements sgio.Device.
func (h *hotDevice) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	dev := h.current()
	if dev == nil {
		h.goneAnswer(req, res)
		return nil
	}
	if h.attention(req, res) {
		return nil
	}
	err := dev.Execute(ctx, req, res)
	if errors.Is(err, sgio.ErrGone) || errors.Is(err, sgio.ErrClosed) && h.current() != dev {
		h.noteLost()
		h.goneAnswer(req, res)
		return nil
	}
	return err
}

// ExecuteLent implements sgio.Lender when the device does; otherwise it
// is Execute.
func (h *hotDevice) ExecuteLent(ctx context.Context, req *sgio.Request, res *sgio.Result) ([]byte, func(), error) {
	dev := h.current()
	l, ok := dev.(sgio.Lender)
	if !ok || h.attention(req, res) {
		return nil, nil, h.Execute(ctx, req, res)
	}
	data, release, err := l.ExecuteLent(ctx, req, res)
	if errors.Is(err, sgio.ErrGone) {
		h.noteLost()
		h.goneAnswer(req, res)
		return nil, nil, nil
	}
	return data, release, err
}

// Reset implements sgio.Resetter when the device does.
func (h *hotDevice) Reset(ctx context.Context) error {
	switch r := h.current().(type) {
	case nil:
		return sgio.ErrGone
	case sgio.Resetter:
		return r.Reset(ctx)
	}
	return errors.ErrUnsupported
}

// noteLost tells the watcher that the device went away under a command.
func (h *hotDevice) noteLost() {
	if h.lost != nil {
		h.lost()
	}
}

// Limits implements sgio.Device.
func (h *hotDevice) Limits() sgio.Limits { return h.limits }

// Info returns the device's sg information (the last one's while gone).
func (h *hotDevice) Info() sgio.Info {
	if i, ok := h.current().(interface{ Info() sgio.Info }); ok {
		return i.Info()
	}
	return h.info
}

// Close implements sgio.Device: the device, if any, is closed, and the
// hotDevice stays gone.
func (h *hotDevice) Close() error {
	h.mu.Lock()
	dev := h.dev
	h.dev, h.closed = nil, true
	h.mu.Unlock()
	if dev == nil {
		return nil
	}
	return dev.Close()
}

// attention answers req with the unit attention of a device that came
// back, once, unless req is a command that does not report one.
func (h *hotDevice) attention(req *sgio.Request, res *sgio.Result) bool {
	if !h.uaPending.Load() || len(req.CDB) == 0 {
		return false
	}
	switch scsi.Opcode(req.CDB[0]) {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return false
	}
	if !h.uaPending.CompareAndSwap(true, false) {
		return false
	}
	*res = sgio.Result{Status: scsi.CheckCondition, DriverStatus: scsi.DriverSense,
		Sense: scsi.FixedSense(scsi.SenseUnitAttention, scsi.ASCPowerOnOccurred)}
	return true
}

// goneAnswer answers req for a device that is not there.
func (h *hotDevice) goneAnswer(req *sgio.Request, res *sgio.Result) {
	*res = sgio.Result{}
	cdb := req.CDB
	if len(cdb) >= 6 {
		switch scsi.Opcode(cdb[0]) {
		case scsi.OpInquiry:
			if cdb[1]&0x01 == 0 && cdb[2] == 0 {
				alloc := int(binary.BigEndian.Uint16(cdb[3:5]))
				n := copy(req.Data, h.inq[:min(alloc, len(h.inq))])
				res.Resid = len(req.Data) - n
				res.Wanted = min(alloc, len(h.inq))
				return
			}
		case scsi.OpRequestSense:
			s := scsi.NewSense(scsi.SenseNotReady, ascGone)
			s.Descriptor = cdb[1]&0x01 != 0
			b := s.Bytes()
			n := copy(req.Data, b[:min(int(cdb[4]), len(b))])
			res.Resid = len(req.Data) - n
			return
		}
	}
	res.Status = scsi.CheckCondition
	res.DriverStatus = scsi.DriverSense
	res.Resid = len(req.Data)
	res.Sense = scsi.FixedSense(scsi.SenseNotReady, ascGone)
}

// gone detaches the device (it was removed): commands are answered as
// for a removed device from now on, and the device is closed once the
// commands it has in flight completed. It reports whether the device was
// attached.
func (h *hotDevice) gone() bool {
	h.mu.Lock()
	dev := h.dev
	if dev == nil {
		h.mu.Unlock()
		return false
	}
	h.dev, h.state, h.since = nil, devGone, time.Now()
	h.uaPending.Store(false)
	h.mu.Unlock()
	go dev.Close() // waits for the commands in flight; their errors are answered
	return true
}

// reattach puts dev, discovered as d, under the logical unit again; the
// first command after gets the unit attention. A device still attached
// (its node changed while no event told) is replaced. It returns false
// when the hotDevice was closed meanwhile (the caller closes dev).
func (h *hotDevice) reattach(dev sgio.Device, d *discover.Device) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	old := h.dev
	h.dev, h.sg, h.hctl, h.state, h.since = dev, d.SG, d.HCTL, devReattached, time.Now()
	h.returns++
	h.inq = standardInquiry(d)
	if i, ok := dev.(interface{ Info() sgio.Info }); ok {
		h.info = i.Info()
	}
	h.uaPending.Store(true)
	h.mu.Unlock()
	if old != nil {
		go old.Close()
	}
	return true
}

// where returns the device's state, sg node and H:C:T:L, and since when
// it is in that state.
func (h *hotDevice) where() (st devState, sg, hctl string, since time.Time, returns int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.state, h.sg, h.hctl, h.since, h.returns
}
