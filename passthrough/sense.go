package passthrough

import (
	"context"
	"errors"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// transportResponse turns a host/driver failure into SCSI status and
// sense an initiator understands (the SCSI status byte itself is not
// meaningful when the transport failed).
func transportResponse(res *sgio.Result) iscsi.Response {
	switch res.HostStatus {
	case scsi.HostBusBusy, scsi.HostImmRetry, scsi.HostRequeue, scsi.HostSoftError, scsi.HostTransportDisrupted:
		return iscsi.Response{Status: scsi.Busy}
	case scsi.HostNoConnect, scsi.HostBadTarget, scsi.HostTransportFailfast:
		return checkCondition(scsi.SenseNotReady, scsi.ASCLUCommunicationFailure)
	case scsi.HostTimeOut, scsi.HostAbort:
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	case scsi.HostReset:
		return checkCondition(scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	case scsi.HostParity:
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCInitiatorDetectedError)
	}
	if res.Status == scsi.CheckCondition && len(res.Sense) > 0 && res.HostStatus == 0 {
		return iscsi.Response{Status: res.Status, Sense: res.Sense}
	}
	return checkCondition(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
}

// errorResponse turns a failed delivery into SCSI status and sense.
func errorResponse(err error) iscsi.Response {
	switch {
	case errors.Is(err, sgio.ErrBusy), errors.Is(err, sgio.ErrQueueFull):
		return iscsi.Response{Status: scsi.TaskSetFull}
	case errors.Is(err, sgio.ErrGone), errors.Is(err, sgio.ErrClosed):
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	case errors.Is(err, sgio.ErrTooLarge), errors.Is(err, sgio.ErrBadRequest):
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	case errors.Is(err, sgio.ErrTimeout), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	return checkCondition(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
}

// checkCondition returns CHECK CONDITION with fixed-format sense.
func checkCondition(key scsi.SenseKey, asc scsi.ASC) iscsi.Response {
	return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.FixedSense(key, asc)}
}

// senseAsData answers REQUEST SENSE with s as its data, in descriptor
// format when the CDB's DESC bit asks for it (SPC-4 6.39), cut to the
// allocation length.
func senseAsData(cmd *iscsi.Command, s scsi.Sense) iscsi.Response {
	s.Descriptor = cmd.CDB[1]&0x01 != 0
	b := s.Bytes()
	n := min(int(cmd.CDB[4]), len(b))
	return iscsi.Response{ReadLen: copy(cmd.ReadBuf, b[:n]), Wanted: n}
}
