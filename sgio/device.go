// Package sgio talks to SCSI devices: the Linux SG_IO interface, sysfs
// discovery and device identity, the USB Bulk-Only transport, and an
// emulated SBC-3 disk for tests and demos.
//
// Every backend implements [Device]: a request carries a CDB, a data
// direction and a buffer; the result carries everything the transport
// reports (SCSI status, host and driver status, residual, sense). SCSI
// outcomes such as CHECK CONDITION are data in the [Result], never Go
// errors; a Go error means the request could not be delivered at all
// (device gone, queue full, transfer too large, context cancelled).
package sgio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Direction is the data direction of a SCSI request, as seen from the host.
type Direction uint8

// Data directions. The values follow neither SG_DXFER_* nor iSCSI bits;
// backends translate.
const (
	DirNone       Direction = iota // no data phase
	DirToDevice                    // host -> device (WRITE)
	DirFromDevice                  // device -> host (READ)
	DirBidi                        // both: Data is sent, ReadData is filled
)

// String returns the direction's name.
func (d Direction) String() string {
	switch d {
	case DirNone:
		return "none"
	case DirToDevice:
		return "to-device"
	case DirFromDevice:
		return "from-device"
	case DirBidi:
		return "bidirectional"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Request is one SCSI command for a device.
type Request struct {
	// CDB is the command descriptor block, 6 to 260 bytes.
	CDB []byte
	// Dir is the data direction.
	Dir Direction
	// Data is the data-out buffer (DirToDevice, DirBidi) or the data-in
	// buffer (DirFromDevice). Its length is the expected transfer length.
	Data []byte
	// ReadData is the data-in buffer of a bidirectional command.
	ReadData []byte
	// Timeout bounds the command inside the device/driver; zero means the
	// backend's default.
	Timeout time.Duration
}

// Result is everything the transport reported about one request.
type Result struct {
	// Status is the SCSI status byte.
	Status scsi.Status
	// HostStatus is the Linux host (adapter) status, DID_* codes; zero when OK.
	HostStatus scsi.HostByte
	// DriverStatus is the Linux driver status, DRIVER_* codes; zero when
	// OK, [scsi.DriverSense] alone when only the sense data is valid.
	DriverStatus scsi.DriverByte
	// Info carries the sg driver's SG_INFO_* flags.
	Info uint32
	// Resid is the data-in (or data-out) residual: bytes of the buffer
	// that were not transferred.
	Resid int
	// Duration is how long the device took, as measured by the backend
	// (the sg driver measures whole milliseconds).
	Duration time.Duration
	// Sense is the sense data returned with CHECK CONDITION (may be empty).
	Sense []byte
	// Wanted, when non-zero, is the number of bytes the command itself
	// asked to transfer (from its CDB), which may exceed len(Request.Data);
	// callers use it to report iSCSI residual overflow. Backends set it
	// when they know (the emulated disk always does).
	Wanted int
}

// Transferred returns how many bytes of buf moved, given the residual.
func (r *Result) Transferred(buflen int) int {
	n := buflen - r.Resid
	if n < 0 {
		return 0
	}
	if n > buflen {
		return buflen
	}
	return n
}

// Limits are a device's transfer limits, read from the kernel queue or
// fixed by a backend, so that the gateway can advertise them truthfully
// (Block Limits VPD, MaxBurstLength) instead of failing large commands.
type Limits struct {
	// MaxTransferBytes is the largest data buffer one request may carry.
	MaxTransferBytes int
	// MaxSegments is the scatter-gather segment limit (0 = unknown).
	MaxSegments int
	// QueueDepth is how many requests may be in flight at once.
	QueueDepth int
}

// Device executes SCSI commands. Implementations are safe for concurrent
// use by up to Limits().QueueDepth goroutines; callers limit themselves.
type Device interface {
	// Execute executes one request and stores the outcome in res, which
	// it resets first. SCSI errors are reported in res; the error is
	// non-nil only when the request was not executed or its outcome is
	// unknown (see the Err* sentinels). The caller owns res: a caller on
	// a hot path reuses one instead of allocating a Result per command.
	Execute(ctx context.Context, req *Request, res *Result) error
	// Limits returns the device's transfer limits.
	Limits() Limits
	// Close releases the device. Requests in flight complete first.
	Close() error
}

// Lender is implemented by devices that can leave a command's data-in
// where the device put it and lend it to the caller, sparing a copy into
// Request.Data (the SG backend's solo descriptor, see WithSolo).
type Lender interface {
	// ExecuteLent is Execute for a data-in request (DirFromDevice), but
	// the data may stay in memory the device owns: data holds what the
	// device sent, either a prefix of req.Data or a lent buffer. When
	// release is non-nil the buffer is lent: the caller must call
	// release exactly once when done with data, and until then the
	// device keeps the buffer for this caller (Close waits for it).
	// On error, or for other directions, it behaves as Execute (data is
	// nil) and release is nil.
	ExecuteLent(ctx context.Context, req *Request, res *Result) (data []byte, release func(), err error)
}

// NonBlocker is implemented by devices whose Execute can say it never
// waits for anything that can stall: no system call that waits on
// hardware, a file or the network, no lock held across one (a memory
// disk). Callers may then run commands where waiting is not allowed,
// such as a connection's reader.
type NonBlocker interface {
	// NonBlocking reports whether Execute returns without such a wait.
	NonBlocking() bool
}

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrGone: the device was removed (ENODEV, ENXIO).
	ErrGone = errors.New("sgio: device gone")
	// ErrBusy: the device or driver refused for now (EBUSY, EAGAIN).
	ErrBusy = errors.New("sgio: device busy")
	// ErrTooLarge: the transfer exceeds what the driver can map (ENOMEM, EINVAL on size).
	ErrTooLarge = errors.New("sgio: transfer too large")
	// ErrQueueFull: too many commands queued on one descriptor (EDOM).
	ErrQueueFull = errors.New("sgio: queue full")
	// ErrTimeout: the command timed out in the driver.
	ErrTimeout = errors.New("sgio: command timed out")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("sgio: device closed")
	// ErrBadRequest: the request is malformed (CDB length, direction/buffer mismatch).
	ErrBadRequest = errors.New("sgio: bad request")
)
