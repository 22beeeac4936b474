package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/sanbridge/sanbridge/sgio"
)

// Endpoint names one of the interface's two bulk endpoints.
type Endpoint uint8

// The bulk endpoints of a Bulk-Only interface.
const (
	BulkIn  Endpoint = iota // device -> host: data-in and the CSW
	BulkOut                 // host -> device: the CBW and data-out
)

// String returns "bulk-in" or "bulk-out".
func (e Endpoint) String() string {
	switch e {
	case BulkIn:
		return "bulk-in"
	case BulkOut:
		return "bulk-out"
	}
	return fmt.Sprintf("Endpoint(%d)", uint8(e))
}

// Link is the USB side of one claimed Bulk-Only interface: what the
// transport needs from a USB stack, and the seam its tests fake (the
// way gousb's own tests fake libusb).
//
// Errors are classified with the sentinels below: a transfer the device
// answered with a STALL handshake wraps [ErrStall]; one where the device
// sent more than the buffer holds wraps [ErrOverflow]; a device that is
// no longer there wraps [sgio.ErrGone]; a transfer ended because ctx was
// done wraps ctx's error. When a transfer method returns, the transfer
// is over: the buffer is not touched afterwards, even after a
// cancellation.
type Link interface {
	// Bulk moves data on a bulk endpoint: it sends buf on [BulkOut], or
	// receives into buf on [BulkIn], and returns how many bytes moved
	// (a short packet ends a bulk-in transfer early; that is no error).
	// Some bytes may have moved when the error is non-nil.
	Bulk(ctx context.Context, ep Endpoint, buf []byte) (int, error)
	// Control sends a class-specific request to the interface on the
	// default control pipe (bmRequestType "class, interface"; the
	// direction follows bit 7 of rType) and returns how many bytes of
	// data moved.
	Control(ctx context.Context, rType, request uint8, value uint16, data []byte) (int, error)
	// ClearHalt clears the endpoint's halt condition on the device
	// (CLEAR_FEATURE(ENDPOINT_HALT)) and resets the host side's state
	// for it (its data toggle), as libusb_clear_halt does.
	ClearHalt(ctx context.Context, ep Endpoint) error
	// Close releases the interface (and gives it back to the kernel
	// driver that had it).
	Close() error
}

// Errors a [Link] classifies its failures with.
var (
	// ErrStall: the device answered with a STALL handshake (the endpoint
	// is halted, or the control request is not supported).
	ErrStall = errors.New("bot: endpoint stalled")
	// ErrOverflow: the device sent more data than the buffer holds (babble).
	ErrOverflow = errors.New("bot: device sent more than requested")
)

// Errors of [Open] and the transport.
var (
	// ErrNotBuiltIn: this binary was built without USB support (with the
	// nousb tag, or without cgo). It wraps errors.ErrUnsupported.
	ErrNotBuiltIn = fmt.Errorf("bot: USB support is not built in (binary built with -tags nousb or without cgo): %w", errors.ErrUnsupported)
	// ErrNotFound: no USB device matches the selector. It wraps
	// sgio.ErrGone.
	ErrNotFound = fmt.Errorf("bot: no such USB mass-storage interface: %w", sgio.ErrGone)
	// ErrResetFailed: a reset recovery (BOT 5.3.4) failed, so the
	// device's state is unknown; the transport tries it again before the
	// next command.
	ErrResetFailed = errors.New("bot: reset recovery failed")
)
