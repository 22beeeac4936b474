//go:build !linux

package discover

import (
	"context"
	"errors"
	"fmt"
)

// UeventMonitor receives kernel uevents; only Linux has them.
type UeventMonitor struct{}

// OpenUeventMonitor fails with errors.ErrUnsupported outside Linux.
func OpenUeventMonitor(subsystems ...string) (*UeventMonitor, error) {
	return nil, fmt.Errorf("discover: uevent monitor: %w", errors.ErrUnsupported)
}

// Next fails with errors.ErrUnsupported.
func (m *UeventMonitor) Next(ctx context.Context) (Uevent, error) {
	return Uevent{}, fmt.Errorf("discover: uevent monitor: %w", errors.ErrUnsupported)
}

// Close does nothing.
func (m *UeventMonitor) Close() error { return nil }
