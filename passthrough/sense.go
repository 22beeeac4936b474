package passthrough

import (
	"context"
	"errors"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// What a device request's outcome means to the initiator is decided
// here, once. The backend reports what happened as data (the device's
// SCSI status and sense, the Linux host and driver bytes) and, when the
// request could not be delivered or its outcome is unknown, an error;
// outcome turns both into the status and sense the initiator gets. A
// transport failure is never GOOD: whatever the status byte says, a host
// byte other than DID_OK is an error of the path, not an answer of the
// device.

// transport is how one host or driver byte value is answered: a status
// (BUSY, TASK SET FULL, RESERVATION CONFLICT) or CHECK CONDITION with a
// key and additional sense code; mediumASC chooses 11h/00h or 0Ch/00h
// from the data direction; retry allows the gateway itself to send a
// command again that may be sent twice (the command never reached the
// device).
type transport struct {
	status    scsi.Status
	key       scsi.SenseKey
	asc       scsi.ASC
	mediumASC bool
	retry     bool
	// device: the device's own CHECK CONDITION and sense, or RESERVATION
	// CONFLICT, are the truth and pass as they are (Linux before 6.0
	// sets these host bytes after classifying the device's sense).
	device bool
}

// cc is a CHECK CONDITION transport outcome.
func cc(key scsi.SenseKey, asc scsi.ASC) transport {
	return transport{status: scsi.CheckCondition, key: key, asc: asc}
}

// hostOutcomes maps every Linux host byte (include/scsi/scsi_status.h)
// to what the initiator gets. DID_OK and DID_PASSTHROUGH carry the
// device's own status.
var hostOutcomes = [...]transport{
	// The device cannot be reached (removed, offline, the link to it is
	// down and the transport gave up): the logical unit is there but
	// cannot talk to its medium. NOT READY, LOGICAL UNIT COMMUNICATION
	// FAILURE fails the command; a multipathing initiator tries another
	// path.
	scsi.HostNoConnect:         cc(scsi.SenseNotReady, scsi.ASCLUCommunicationFailure),
	scsi.HostBadTarget:         cc(scsi.SenseNotReady, scsi.ASCLUCommunicationFailure),
	scsi.HostTransportFailfast: cc(scsi.SenseNotReady, scsi.ASCLUCommunicationFailure),
	// Transient: the bus or the driver wants the command again later.
	scsi.HostBusBusy:            {status: scsi.Busy},
	scsi.HostSoftError:          {status: scsi.Busy},
	scsi.HostTransportDisrupted: {status: scsi.Busy},
	// Requeued before it reached the device: the gateway may resend it.
	scsi.HostImmRetry: {status: scsi.Busy, retry: true},
	scsi.HostRequeue:  {status: scsi.Busy, retry: true},
	// The command was cut short on the way: its outcome is unknown, the
	// initiator retries (ABORTED COMMAND is retried by every initiator).
	scsi.HostTimeOut:           cc(scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout),
	scsi.HostAbort:             cc(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense),
	scsi.HostParity:            cc(scsi.SenseAbortedCommand, scsi.ASCSCSIParityError),
	scsi.HostError:             cc(scsi.SenseAbortedCommand, scsi.ASCInternalTargetFailure),
	scsi.HostBadIntr:           cc(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense),
	scsi.HostTransportMarginal: cc(scsi.SenseAbortedCommand, scsi.ASCLUCommunicationFailure),
	// A bus or device reset ended the command: the device was reset.
	scsi.HostReset: cc(scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset),
	// The midlayer's classifications of the device's own answer.
	scsi.HostTargetFailure: {status: scsi.CheckCondition, key: scsi.SenseHardwareError, asc: scsi.ASCInternalTargetFailure, device: true},
	scsi.HostNexusFailure:  {status: scsi.ReservationConflict, device: true},
	scsi.HostAllocFailure:  {status: scsi.CheckCondition, key: scsi.SenseDataProtect, asc: scsi.ASCSpaceAllocFailedWP, device: true},
	scsi.HostMediumError:   {status: scsi.CheckCondition, key: scsi.SenseMediumError, mediumASC: true, device: true},
}

// driverOutcomes maps the Linux driver byte (its low nibble, DRIVER_SENSE
// aside) for a command whose host byte is DID_OK.
var driverOutcomes = [...]transport{
	scsi.DriverBusy:    {status: scsi.Busy},
	scsi.DriverSoft:    {status: scsi.Busy},
	scsi.DriverMedia:   {status: scsi.CheckCondition, key: scsi.SenseMediumError, mediumASC: true},
	scsi.DriverError:   cc(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure),
	scsi.DriverInvalid: cc(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure),
	scsi.DriverTimeout: cc(scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout),
	scsi.DriverHard:    cc(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure),
}

// unknownTransport answers a host or driver byte Linux does not define.
var unknownTransport = cc(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)

// result is the initiator's view of one device request.
type result struct {
	status scsi.Status
	sense  []byte
	// retry: the request did not reach the device and may be sent again.
	retry bool
	// noSense: CHECK CONDITION came without sense data; the caller asks
	// the device with REQUEST SENSE.
	noSense bool
	// transport: the status is the transport's, not the device's; no
	// data the device may have sent is trusted.
	transport bool
}

// outcome turns a device request's outcome into the status and sense
// the initiator gets: the transport's host and driver bytes first (they
// mean the status byte is not the device's answer), then a delivery
// error, then the device's own status.
func outcome(res *sgio.Result, err error, dir sgio.Direction) result {
	if h := res.HostStatus; h != scsi.HostOK && h != scsi.HostPassthrough {
		t := unknownTransport
		if int(h) < len(hostOutcomes) && hostOutcomes[h] != (transport{}) {
			t = hostOutcomes[h]
		}
		if t.device {
			switch {
			case res.Status == scsi.CheckCondition && len(res.Sense) > 0:
				return result{status: scsi.CheckCondition, sense: res.Sense}
			case res.Status == scsi.ReservationConflict:
				return result{status: scsi.ReservationConflict}
			}
		}
		r := t.answer(dir)
		r.transport = true
		return r
	}
	if d := res.DriverStatus & scsi.DriverMask &^ scsi.DriverSense; d != 0 {
		t := unknownTransport
		if int(d) < len(driverOutcomes) && driverOutcomes[d] != (transport{}) {
			t = driverOutcomes[d]
		}
		r := t.answer(dir)
		r.transport = true
		return r
	}
	if err != nil {
		return errorResult(err)
	}
	switch res.Status {
	case scsi.Good, scsi.ConditionMet, scsi.Busy, scsi.ReservationConflict, scsi.TaskSetFull, scsi.ACAActive, scsi.TaskAborted:
		return result{status: res.Status}
	case scsi.CheckCondition:
		if len(res.Sense) == 0 {
			return result{status: scsi.CheckCondition, noSense: true}
		}
		return result{status: scsi.CheckCondition, sense: res.Sense}
	}
	// Obsolete (INTERMEDIATE, COMMAND TERMINATED) or undefined status
	// values: nothing an initiator could act on.
	return unknownTransport.answer(dir)
}

// answer builds the result of a transport outcome.
func (t transport) answer(dir sgio.Direction) result {
	if t.status != scsi.CheckCondition {
		return result{status: t.status, retry: t.retry}
	}
	asc := t.asc
	if t.mediumASC {
		asc = scsi.ASCUnrecoveredReadError
		if dir == sgio.DirToDevice {
			asc = scsi.ASCWriteError
		}
	}
	return result{status: scsi.CheckCondition, sense: scsi.FixedSense(t.key, asc), retry: t.retry}
}

// errorResult turns a failed delivery into status and sense.
func errorResult(err error) result {
	cc := func(key scsi.SenseKey, asc scsi.ASC) result {
		return result{status: scsi.CheckCondition, sense: scsi.FixedSense(key, asc), transport: true}
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return cc(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	case errors.Is(err, sgio.ErrTimeout):
		return cc(scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout)
	case errors.Is(err, sgio.ErrBusy):
		return result{status: scsi.Busy, transport: true}
	case errors.Is(err, sgio.ErrQueueFull):
		return result{status: scsi.TaskSetFull, transport: true}
	case errors.Is(err, sgio.ErrGone), errors.Is(err, sgio.ErrClosed):
		return cc(scsi.SenseNotReady, scsi.ASCLUCommunicationFailure)
	case errors.Is(err, sgio.ErrTooLarge), errors.Is(err, sgio.ErrBadRequest):
		return cc(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	return cc(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
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

// senseFormat puts r's sense data in the format the logical unit
// presents (the D_SENSE bit of its Control mode page), for a device of
// type dt; ATA PASS-THROUGH's sense carries an ATA status return
// descriptor fixed format has no room for, and stays as the device sent
// it.
func senseFormat(r *iscsi.Response, descriptor bool, dt scsi.DeviceType, op scsi.Opcode) {
	if len(r.Sense) == 0 || scsi.IsDescriptorSense(r.Sense) == descriptor {
		return
	}
	if op == scsi.OpATAPassThrough12 && dt != scsi.TypeCDROM || op == scsi.OpATAPassThrough16 {
		return
	}
	r.Sense = scsi.ConvertSense(r.Sense, descriptor, dt == scsi.TypeTape)
}
