//go:build !linux

package sgio

import (
	"context"
	"errors"
)

// Reset fails with errors.ErrUnsupported.
func (s *SG) Reset(ctx context.Context) error {
	return &OpError{Op: "ioctl SG_SCSI_RESET", Err: errors.ErrUnsupported}
}

var _ Resetter = (*SG)(nil)
