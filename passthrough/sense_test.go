package passthrough

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// ow is an expected transport outcome: a status, and for CHECK
// CONDITION the sense key and additional sense code.
type ow struct {
	st  scsi.Status
	key scsi.SenseKey
	asc scsi.ASC
}

func (w ow) String() string {
	if w.st != scsi.CheckCondition {
		return w.st.String()
	}
	return fmt.Sprintf("%v %v %v", w.st, w.key, w.asc)
}

func gotOW(t *testing.T, r result) ow {
	t.Helper()
	w := ow{st: r.status}
	if r.status == scsi.CheckCondition {
		s, err := scsi.ParseSense(r.sense)
		if err != nil {
			t.Fatalf("sense % x: %v", r.sense, err)
		}
		w.key, w.asc = s.Key, s.ASC
	}
	return w
}

// TestHostByteTable: every Linux host byte, with a device status that
// claims GOOD, maps to its row; none is ever GOOD.
func TestHostByteTable(t *testing.T) {
	rows := []struct {
		h    scsi.HostByte
		w    ow
		read ow // for the direction-dependent rows: a data-in command
	}{
		{h: scsi.HostNoConnect, w: ow{scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure}},
		{h: scsi.HostBusBusy, w: ow{st: scsi.Busy}},
		{h: scsi.HostTimeOut, w: ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout}},
		{h: scsi.HostBadTarget, w: ow{scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure}},
		{h: scsi.HostAbort, w: ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense}},
		{h: scsi.HostParity, w: ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCSCSIParityError}},
		{h: scsi.HostError, w: ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCInternalTargetFailure}},
		{h: scsi.HostReset, w: ow{scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset}},
		{h: scsi.HostBadIntr, w: ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense}},
		{h: scsi.HostSoftError, w: ow{st: scsi.Busy}},
		{h: scsi.HostImmRetry, w: ow{st: scsi.Busy}},
		{h: scsi.HostRequeue, w: ow{st: scsi.Busy}},
		{h: scsi.HostTransportDisrupted, w: ow{st: scsi.Busy}},
		{h: scsi.HostTransportFailfast, w: ow{scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure}},
		{h: scsi.HostTargetFailure, w: ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
		{h: scsi.HostNexusFailure, w: ow{st: scsi.ReservationConflict}},
		{h: scsi.HostAllocFailure, w: ow{scsi.CheckCondition, scsi.SenseDataProtect, scsi.ASCSpaceAllocFailedWP}},
		{h: scsi.HostMediumError, w: ow{scsi.CheckCondition, scsi.SenseMediumError, scsi.ASCWriteError},
			read: ow{scsi.CheckCondition, scsi.SenseMediumError, scsi.ASCUnrecoveredReadError}},
		{h: scsi.HostTransportMarginal, w: ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCLUCommunicationFailure}},
		{h: 0x15, w: ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
		{h: 0xff, w: ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
	}
	seen := map[scsi.HostByte]bool{}
	for _, row := range rows {
		seen[row.h] = true
		res := &sgio.Result{Status: scsi.Good, HostStatus: row.h}
		r := outcome(res, nil, sgio.DirToDevice)
		if g := gotOW(t, r); g != row.w {
			t.Errorf("%v: %v, want %v", row.h, g, row.w)
		}
		if !r.transport {
			t.Errorf("%v: not marked as a transport outcome (its data would be trusted)", row.h)
		}
		if row.read != (ow{}) {
			if g := gotOW(t, outcome(res, nil, sgio.DirFromDevice)); g != row.read {
				t.Errorf("%v, data-in: %v, want %v", row.h, g, row.read)
			}
		}
		// With the error the backend adds for the unknown outcomes, the
		// host byte still decides.
		if g := gotOW(t, outcome(res, fmt.Errorf("%w: x", sgio.ErrTimeout), sgio.DirToDevice)); g != row.w {
			t.Errorf("%v with ErrTimeout: %v, want %v", row.h, g, row.w)
		}
	}
	for h := scsi.HostNoConnect; h <= scsi.HostTransportMarginal; h++ {
		if h == scsi.HostPassthrough {
			continue // the device's status, like DID_OK (below)
		}
		if !seen[h] {
			t.Errorf("host byte %v has no row in this test", h)
		}
		if int(h) >= len(hostOutcomes) || hostOutcomes[h] == (transport{}) {
			t.Errorf("host byte %v has no row in hostOutcomes", h)
		}
	}
	// Retry only for what never reached the device.
	for h := scsi.HostNoConnect; h <= scsi.HostTransportMarginal; h++ {
		if h == scsi.HostPassthrough {
			continue
		}
		r := outcome(&sgio.Result{HostStatus: h}, nil, sgio.DirNone)
		if r.retry != (h == scsi.HostImmRetry || h == scsi.HostRequeue) {
			t.Errorf("%v: retry %v", h, r.retry)
		}
	}
}

// TestHostByteKeepsDeviceSense: the midlayer's classification host bytes
// (set by Linux before 6.0 after reading the device's sense) keep the
// device's own CHECK CONDITION and sense; DID_OK and DID_PASSTHROUGH pass
// the device's status.
func TestHostByteKeepsDeviceSense(t *testing.T) {
	sense := scsi.FixedSense(scsi.SenseMediumError, scsi.NewASC(0x11, 0x04))
	for _, h := range []scsi.HostByte{scsi.HostTargetFailure, scsi.HostMediumError, scsi.HostAllocFailure, scsi.HostNexusFailure} {
		r := outcome(&sgio.Result{Status: scsi.CheckCondition, HostStatus: h, Sense: sense}, nil, sgio.DirFromDevice)
		if r.status != scsi.CheckCondition || !bytes.Equal(r.sense, sense) {
			t.Errorf("%v: %v % x, want the device's sense", h, r.status, r.sense)
		}
	}
	r := outcome(&sgio.Result{Status: scsi.ReservationConflict, HostStatus: scsi.HostNexusFailure}, nil, sgio.DirNone)
	if r.status != scsi.ReservationConflict {
		t.Errorf("nexus failure: %v", r.status)
	}
	// Not for the others: a reset's sense claim is the transport's.
	r = outcome(&sgio.Result{Status: scsi.CheckCondition, HostStatus: scsi.HostNoConnect, Sense: sense}, nil, sgio.DirFromDevice)
	if g := gotOW(t, r); g != (ow{scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure}) {
		t.Errorf("no connect with sense: %v", g)
	}
	for _, h := range []scsi.HostByte{scsi.HostOK, scsi.HostPassthrough} {
		for _, st := range []scsi.Status{scsi.Good, scsi.ConditionMet, scsi.Busy, scsi.ReservationConflict, scsi.TaskSetFull, scsi.TaskAborted, scsi.ACAActive} {
			if r := outcome(&sgio.Result{Status: st, HostStatus: h}, nil, sgio.DirNone); r.status != st || r.transport {
				t.Errorf("%v %v: %v", h, st, r.status)
			}
		}
		r := outcome(&sgio.Result{Status: scsi.CheckCondition, HostStatus: h, DriverStatus: scsi.DriverSense, Sense: sense}, nil, sgio.DirNone)
		if r.status != scsi.CheckCondition || !bytes.Equal(r.sense, sense) || r.noSense {
			t.Errorf("%v CHECK CONDITION: %+v", h, r)
		}
		r = outcome(&sgio.Result{Status: scsi.CheckCondition, HostStatus: h}, nil, sgio.DirNone)
		if !r.noSense {
			t.Errorf("%v CHECK CONDITION without sense: not marked", h)
		}
	}
	// Obsolete and undefined status values are not passed on.
	for _, st := range []scsi.Status{0x10, 0x14, 0x22, 0x01} {
		if g := gotOW(t, outcome(&sgio.Result{Status: st}, nil, sgio.DirNone)); g.st != scsi.CheckCondition || g.key != scsi.SenseHardwareError {
			t.Errorf("status %v: %v", st, g)
		}
	}
}

// TestDriverByteTable: the driver byte with DID_OK; DRIVER_SENSE alone is
// no failure.
func TestDriverByteTable(t *testing.T) {
	rows := []struct {
		d scsi.DriverByte
		w ow
	}{
		{scsi.DriverBusy, ow{st: scsi.Busy}},
		{scsi.DriverSoft, ow{st: scsi.Busy}},
		{scsi.DriverMedia, ow{scsi.CheckCondition, scsi.SenseMediumError, scsi.ASCUnrecoveredReadError}},
		{scsi.DriverError, ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
		{scsi.DriverInvalid, ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
		{scsi.DriverTimeout, ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout}},
		{scsi.DriverHard, ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
		{scsi.DriverTimeout | scsi.DriverSense, ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout}},
		{scsi.DriverBusy | scsi.DriverSense, ow{st: scsi.Busy}},
		{0x30 | scsi.DriverHard, ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}}, // SUGGEST_* bits ignored
	}
	for _, row := range rows {
		r := outcome(&sgio.Result{Status: scsi.Good, DriverStatus: row.d}, nil, sgio.DirFromDevice)
		if g := gotOW(t, r); g != row.w {
			t.Errorf("%v: %v, want %v", row.d, g, row.w)
		}
	}
	if r := outcome(&sgio.Result{Status: scsi.Good, DriverStatus: scsi.DriverSense}, nil, sgio.DirNone); r.status != scsi.Good {
		t.Errorf("DRIVER_SENSE alone: %v", r.status)
	}
}

// TestErrorTable: delivery errors, which come without a host byte.
func TestErrorTable(t *testing.T) {
	wrap := func(s error) error {
		return &sgio.OpError{Op: "write", Path: "/dev/sg9", Err: fmt.Errorf("%w (%w)", s, syscall.EIO)}
	}
	rows := []struct {
		err error
		w   ow
	}{
		{context.Canceled, ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense}},
		{wrap(sgio.ErrTimeout), ow{scsi.CheckCondition, scsi.SenseAbortedCommand, scsi.ASCLUCommunicationTimeout}},
		{wrap(sgio.ErrBusy), ow{st: scsi.Busy}},
		{wrap(sgio.ErrQueueFull), ow{st: scsi.TaskSetFull}},
		{wrap(sgio.ErrGone), ow{scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure}},
		{wrap(sgio.ErrClosed), ow{scsi.CheckCondition, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure}},
		{wrap(sgio.ErrTooLarge), ow{scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB}},
		{wrap(sgio.ErrBadRequest), ow{scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB}},
		{errors.New("something else"), ow{scsi.CheckCondition, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure}},
	}
	for _, row := range rows {
		r := outcome(&sgio.Result{}, row.err, sgio.DirNone)
		if g := gotOW(t, r); g != row.w || !r.transport {
			t.Errorf("%v: %v (transport %v), want %v", row.err, g, r.transport, row.w)
		}
	}
}
