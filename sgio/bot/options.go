package bot

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
)

// Defaults of the Bulk-Only transport.
const (
	// DefaultMaxTransfer is the largest data phase per command unless
	// [WithMaxTransfer] says otherwise. BOT itself allows 4 GiB; 1 MiB
	// is what practically every bridge chip takes, four times the 240
	// sectors usb-storage clamps many devices to. (The Block Limits VPD
	// page is not asked for: many USB devices fail VPD requests, which
	// is why usb-storage does not ask either.)
	DefaultMaxTransfer = 1 << 20
	// MaxMaxTransfer caps [WithMaxTransfer]: one transfer is one buffer
	// the USB stack allocates.
	MaxMaxTransfer = 64 << 20
	// DefaultResetTimeout bounds each request of a reset recovery and
	// the GET MAX LUN request.
	DefaultResetTimeout = 5 * time.Second
	// DefaultSenseLength is the allocation length of the REQUEST SENSE
	// sent after a failed command: fixed-format sense of 18 bytes, which
	// every device answers (usb-storage's default too).
	DefaultSenseLength = 18
)

// Option configures a [Transport].
type Option func(*options)

type options struct {
	maxTransfer  int
	timeout      time.Duration
	resetTimeout time.Duration
	senseLen     int
	log          zerolog.Logger
}

func defaultOptions() options {
	return options{
		maxTransfer:  DefaultMaxTransfer,
		timeout:      sgio.DefaultTimeout,
		resetTimeout: DefaultResetTimeout,
		senseLen:     DefaultSenseLength,
		log:          zerolog.Nop(),
	}
}

// WithMaxTransfer sets the largest data phase of one command (1 byte to
// [MaxMaxTransfer]), reported as Limits().MaxTransferBytes.
func WithMaxTransfer(n int) Option {
	return func(o *options) { o.maxTransfer = n }
}

// WithTimeout sets the timeout of commands whose Request.Timeout is zero
// (default [sgio.DefaultTimeout]).
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithResetTimeout bounds each control request of a reset recovery and
// GET MAX LUN (default [DefaultResetTimeout]).
func WithResetTimeout(d time.Duration) Option {
	return func(o *options) { o.resetTimeout = d }
}

// WithSenseLength sets the allocation length of the REQUEST SENSE that
// fetches a failed command's sense (18 to 252; default
// [DefaultSenseLength]).
func WithSenseLength(n int) Option {
	return func(o *options) { o.senseLen = n }
}

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.log = l }
}

func (o *options) validate() error {
	if o.maxTransfer < 1 || o.maxTransfer > MaxMaxTransfer {
		return fmt.Errorf("%w: max transfer %d outside 1..%d", sgio.ErrBadRequest, o.maxTransfer, MaxMaxTransfer)
	}
	if o.timeout <= 0 || o.resetTimeout <= 0 {
		return fmt.Errorf("%w: timeouts must be positive", sgio.ErrBadRequest)
	}
	if o.senseLen < 18 || o.senseLen > 252 {
		return fmt.Errorf("%w: sense length %d outside 18..252", sgio.ErrBadRequest, o.senseLen)
	}
	return nil
}
