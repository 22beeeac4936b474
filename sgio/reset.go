package sgio

import "context"

// Resetter is implemented by devices that can be reset on request, for a
// LOGICAL UNIT RESET the gateway receives (SAM-5 7.7).
type Resetter interface {
	// Reset resets the logical unit: the device aborts the commands it
	// has in flight (they complete with an error) and clears its
	// volatile state as a logical unit reset does. It never escalates to
	// a reset of the target, bus or host, which would hit other devices.
	// A device that cannot be reset returns an error wrapping
	// errors.ErrUnsupported.
	Reset(ctx context.Context) error
}
