package scsi

import "testing"

// TestStatusValues pins the status codes to SAM-5 table 29 and their names.
func TestStatusValues(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		b    byte
		name string
	}{
		{Good, 0x00, "GOOD"},
		{CheckCondition, 0x02, "CHECK CONDITION"},
		{ConditionMet, 0x04, "CONDITION MET"},
		{Busy, 0x08, "BUSY"},
		{ReservationConflict, 0x18, "RESERVATION CONFLICT"},
		{TaskSetFull, 0x28, "TASK SET FULL"},
		{ACAActive, 0x30, "ACA ACTIVE"},
		{TaskAborted, 0x40, "TASK ABORTED"},
		{Status(0x22), 0x22, "Status(0x22)"},
	} {
		if byte(tc.s) != tc.b || tc.s.String() != tc.name {
			t.Errorf("%#x %q, want %#x %q", byte(tc.s), tc.s, tc.b, tc.name)
		}
	}
}

// TestHostByteValues pins the host byte table to Linux's
// include/scsi/scsi_status.h.
func TestHostByteValues(t *testing.T) {
	want := []string{
		"DID_OK", "DID_NO_CONNECT", "DID_BUS_BUSY", "DID_TIME_OUT", "DID_BAD_TARGET",
		"DID_ABORT", "DID_PARITY", "DID_ERROR", "DID_RESET", "DID_BAD_INTR",
		"DID_PASSTHROUGH", "DID_SOFT_ERROR", "DID_IMM_RETRY", "DID_REQUEUE",
		"DID_TRANSPORT_DISRUPTED", "DID_TRANSPORT_FAILFAST", "DID_TARGET_FAILURE",
		"DID_NEXUS_FAILURE", "DID_ALLOC_FAILURE", "DID_MEDIUM_ERROR", "DID_TRANSPORT_MARGINAL",
	}
	for v, name := range want {
		if got := HostByte(v).String(); got != name {
			t.Errorf("HostByte(%#x) = %q, want %q", v, got, name)
		}
	}
	consts := []HostByte{HostOK, HostNoConnect, HostBusBusy, HostTimeOut, HostBadTarget,
		HostAbort, HostParity, HostError, HostReset, HostBadIntr, HostPassthrough,
		HostSoftError, HostImmRetry, HostRequeue, HostTransportDisrupted,
		HostTransportFailfast, HostTargetFailure, HostNexusFailure, HostAllocFailure,
		HostMediumError, HostTransportMarginal}
	for i, h := range consts {
		if int(h) != i {
			t.Errorf("%v = %#x, want %#x", h, uint16(h), i)
		}
	}
	if got := HostByte(0x15).String(); got != "HostByte(0x15)" {
		t.Errorf("unknown host byte: %q", got)
	}
}

func TestDriverByteString(t *testing.T) {
	for _, tc := range []struct {
		d    DriverByte
		name string
	}{
		{DriverOK, "DRIVER_OK"},
		{DriverSense, "DRIVER_SENSE"},
		{DriverTimeout, "DRIVER_TIMEOUT"},
		{DriverTimeout | DriverSense, "DRIVER_TIMEOUT|DRIVER_SENSE"},
		{0x28, "DriverByte(0x28)"},
	} {
		if got := tc.d.String(); got != tc.name {
			t.Errorf("%#x: %q, want %q", uint16(tc.d), got, tc.name)
		}
	}
	if DriverSense != 0x08 || DriverTimeout != 0x06 {
		t.Error("driver byte values differ from Linux")
	}
}
