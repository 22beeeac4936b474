package scsi

import "fmt"

// HostByte is the Linux SCSI host status (the "host byte", DID_* in
// include/scsi/scsi_status.h): what the host adapter or the midlayer
// reports about delivering a command, apart from the device's own
// status. SG_IO returns it in sg_io_hdr.host_status.
type HostByte uint16

// Linux host byte values (include/scsi/scsi_status.h, Linux 6.1).
const (
	HostOK                 HostByte = 0x00 // DID_OK: no error
	HostNoConnect          HostByte = 0x01 // DID_NO_CONNECT: could not connect before timeout
	HostBusBusy            HostByte = 0x02 // DID_BUS_BUSY: bus stayed busy through the timeout
	HostTimeOut            HostByte = 0x03 // DID_TIME_OUT: timed out for another reason
	HostBadTarget          HostByte = 0x04 // DID_BAD_TARGET: bad target
	HostAbort              HostByte = 0x05 // DID_ABORT: aborted for another reason
	HostParity             HostByte = 0x06 // DID_PARITY: parity error
	HostError              HostByte = 0x07 // DID_ERROR: internal error
	HostReset              HostByte = 0x08 // DID_RESET: reset by somebody
	HostBadIntr            HostByte = 0x09 // DID_BAD_INTR: unexpected interrupt
	HostPassthrough        HostByte = 0x0a // DID_PASSTHROUGH: forced past the midlayer
	HostSoftError          HostByte = 0x0b // DID_SOFT_ERROR: the low-level driver wants a retry
	HostImmRetry           HostByte = 0x0c // DID_IMM_RETRY: retry without counting
	HostRequeue            HostByte = 0x0d // DID_REQUEUE: requeue without counting
	HostTransportDisrupted HostByte = 0x0e // DID_TRANSPORT_DISRUPTED: link recovery; the transport retries or fails
	HostTransportFailfast  HostByte = 0x0f // DID_TRANSPORT_FAILFAST: the transport class fast-failed the I/O
	// 0x10-0x13 are no longer returned by Linux 6.0 and later (they became
	// midlayer-internal codes; the header keeps the block unused for SG_IO
	// users), but older kernels report them.
	HostTargetFailure     HostByte = 0x10 // DID_TARGET_FAILURE: permanent target failure, no retry on other paths
	HostNexusFailure      HostByte = 0x11 // DID_NEXUS_FAILURE: permanent nexus failure, other paths may work
	HostAllocFailure      HostByte = 0x12 // DID_ALLOC_FAILURE: space allocation on the device failed
	HostMediumError       HostByte = 0x13 // DID_MEDIUM_ERROR: medium error
	HostTransportMarginal HostByte = 0x14 // DID_TRANSPORT_MARGINAL: marginal transport errors
)

var hostByteNames = [...]string{
	HostOK:                 "DID_OK",
	HostNoConnect:          "DID_NO_CONNECT",
	HostBusBusy:            "DID_BUS_BUSY",
	HostTimeOut:            "DID_TIME_OUT",
	HostBadTarget:          "DID_BAD_TARGET",
	HostAbort:              "DID_ABORT",
	HostParity:             "DID_PARITY",
	HostError:              "DID_ERROR",
	HostReset:              "DID_RESET",
	HostBadIntr:            "DID_BAD_INTR",
	HostPassthrough:        "DID_PASSTHROUGH",
	HostSoftError:          "DID_SOFT_ERROR",
	HostImmRetry:           "DID_IMM_RETRY",
	HostRequeue:            "DID_REQUEUE",
	HostTransportDisrupted: "DID_TRANSPORT_DISRUPTED",
	HostTransportFailfast:  "DID_TRANSPORT_FAILFAST",
	HostTargetFailure:      "DID_TARGET_FAILURE",
	HostNexusFailure:       "DID_NEXUS_FAILURE",
	HostAllocFailure:       "DID_ALLOC_FAILURE",
	HostMediumError:        "DID_MEDIUM_ERROR",
	HostTransportMarginal:  "DID_TRANSPORT_MARGINAL",
}

// String returns the Linux name of the host byte ("DID_NO_CONNECT").
func (h HostByte) String() string {
	if int(h) < len(hostByteNames) {
		return hostByteNames[h]
	}
	return fmt.Sprintf("HostByte(0x%02x)", uint16(h))
}

// DriverByte is the Linux SCSI driver status (DRIVER_* in
// include/scsi/scsi_status.h), sg_io_hdr.driver_status. Its low nibble is
// the driver byte proper, in which [DriverSense] is a flag that may be
// set together with another value; SG_IO users test it with a mask.
type DriverByte uint16

// Linux driver byte values (include/scsi/scsi_status.h).
const (
	DriverOK      DriverByte = 0x00 // DRIVER_OK
	DriverBusy    DriverByte = 0x01 // DRIVER_BUSY
	DriverSoft    DriverByte = 0x02 // DRIVER_SOFT
	DriverMedia   DriverByte = 0x03 // DRIVER_MEDIA
	DriverError   DriverByte = 0x04 // DRIVER_ERROR
	DriverInvalid DriverByte = 0x05 // DRIVER_INVALID
	DriverTimeout DriverByte = 0x06 // DRIVER_TIMEOUT
	DriverHard    DriverByte = 0x07 // DRIVER_HARD
	// DriverSense (DRIVER_SENSE) says the sense buffer holds valid sense
	// data; it is not a failure by itself.
	DriverSense DriverByte = 0x08
	// DriverMask selects the driver byte proper; the bits above it are
	// the obsolete SUGGEST_* hints.
	DriverMask DriverByte = 0x0f
)

var driverByteNames = [...]string{
	DriverOK:      "DRIVER_OK",
	DriverBusy:    "DRIVER_BUSY",
	DriverSoft:    "DRIVER_SOFT",
	DriverMedia:   "DRIVER_MEDIA",
	DriverError:   "DRIVER_ERROR",
	DriverInvalid: "DRIVER_INVALID",
	DriverTimeout: "DRIVER_TIMEOUT",
	DriverHard:    "DRIVER_HARD",
	DriverSense:   "DRIVER_SENSE",
}

// String returns the Linux name of the driver status ("DRIVER_SENSE");
// with the sense flag and another value set, both ("DRIVER_TIMEOUT|DRIVER_SENSE").
func (d DriverByte) String() string {
	if int(d) < len(driverByteNames) {
		return driverByteNames[d]
	}
	if d&^DriverMask == 0 && d&DriverSense != 0 {
		return driverByteNames[d&^DriverSense] + "|DRIVER_SENSE"
	}
	return fmt.Sprintf("DriverByte(0x%02x)", uint16(d))
}
