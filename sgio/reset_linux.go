package sgio

import (
	"context"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sg driver reset ioctl (include/scsi/sg.h).
const (
	sgSCSIReset           = 0x2284 // SG_SCSI_RESET
	sgSCSIResetDevice     = 1      // SG_SCSI_RESET_DEVICE
	sgSCSIResetNoEscalate = 0x100  // SG_SCSI_RESET_NO_ESCALATE
)

// Reset implements [Resetter] with the sg driver's SG_SCSI_RESET ioctl,
// SG_SCSI_RESET_DEVICE without escalation to target, bus or host resets.
// The kernel's error handler runs it and it needs CAP_SYS_ADMIN and
// CAP_SYS_RAWIO; commands in flight on the device complete with an
// error (DID_RESET or a unit attention). ctx is not consulted: the ioctl
// cannot be interrupted.
func (s *SG) Reset(ctx context.Context) error {
	if !s.enter() {
		return &OpError{Op: "ioctl SG_SCSI_RESET", Path: s.info.SGPath, Err: ErrClosed}
	}
	defer s.exit()
	val := int32(sgSCSIResetDevice | sgSCSIResetNoEscalate)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.files[0].fd), sgSCSIReset, uintptr(unsafe.Pointer(&val)))
	if errno != 0 {
		return &OpError{Op: "ioctl SG_SCSI_RESET", Path: s.info.SGPath, Err: classifyErrno(errno, false)}
	}
	return nil
}

var _ Resetter = (*SG)(nil)
