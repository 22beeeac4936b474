package passthrough

import (
	"fmt"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func TestUAQueueOrder(t *testing.T) {
	var q uaQueue
	if q.pending() {
		t.Fatal("empty queue pending")
	}
	q.add(scsi.ASCModeParametersChanged)
	q.add(scsi.ASCCapacityDataChanged)
	q.add(scsi.ASCModeParametersChanged) // already pending
	q.add(scsi.ASCITNexusLossOccurred)
	q.add(scsi.ASCBusDeviceResetOccurred)
	q.add(scsi.ASCCommandsClearedByAnother)
	want := []scsi.ASC{scsi.ASCBusDeviceResetOccurred, scsi.ASCITNexusLossOccurred,
		scsi.ASCModeParametersChanged, scsi.ASCCapacityDataChanged, scsi.ASCCommandsClearedByAnother}
	if got := q.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queue %v, want %v", got, want)
	}
	// A narrower reset is implied by a wider one pending.
	q.add(scsi.ASCBusDeviceResetOccurred)
	if len(q.snapshot()) != len(want) {
		t.Fatal("duplicate reset queued")
	}
	// REPORT LUNS-style removal.
	q.remove(scsi.ASCCapacityDataChanged)
	if a, _ := q.peek(); a != scsi.ASCBusDeviceResetOccurred {
		t.Fatalf("peek %v", a)
	}
	for _, w := range []scsi.ASC{scsi.ASCBusDeviceResetOccurred, scsi.ASCITNexusLossOccurred, scsi.ASCModeParametersChanged, scsi.ASCCommandsClearedByAnother} {
		if a, ok := q.take(); !ok || a != w {
			t.Fatalf("take %v %v, want %v", a, ok, w)
		}
	}
	if _, ok := q.take(); ok || q.pending() {
		t.Fatal("queue not empty")
	}
}

// TestUAPowerOnSupersedes: POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
// replaces everything pending, and implies the narrower resets after it.
func TestUAPowerOnSupersedes(t *testing.T) {
	var q uaQueue
	q.add(scsi.ASCModeParametersChanged)
	q.add(scsi.ASCBusDeviceResetOccurred)
	q.add(scsi.ASCPowerOnOrReset)
	q.add(scsi.ASCBusDeviceResetOccurred)
	q.add(scsi.ASCReservationsPreempted)
	want := []scsi.ASC{scsi.ASCPowerOnOrReset, scsi.ASCReservationsPreempted}
	if got := q.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queue %v, want %v", got, want)
	}
}

// TestUAOverflow: a full queue keeps its oldest conditions of a
// precedence and makes room only for a more important one.
func TestUAOverflow(t *testing.T) {
	var q uaQueue
	for i := range maxUnitAttentions {
		q.add(scsi.NewASC(0x3f, byte(0x20+i)))
	}
	q.add(scsi.NewASC(0x3f, 0x7f)) // same precedence: dropped
	got := q.snapshot()
	if len(got) != maxUnitAttentions || got[len(got)-1] != scsi.NewASC(0x3f, byte(0x20+maxUnitAttentions-1)) {
		t.Fatalf("after overflow: %v", got)
	}
	q.add(scsi.ASCBusDeviceResetOccurred) // outranks: evicts the newest
	got = q.snapshot()
	if len(got) != maxUnitAttentions || got[0] != scsi.ASCBusDeviceResetOccurred ||
		got[len(got)-1] != scsi.NewASC(0x3f, byte(0x20+maxUnitAttentions-2)) || got[1] != scsi.NewASC(0x3f, 0x20) {
		t.Fatalf("after a reset in a full queue: %v", got)
	}
}

func TestDeviceUA(t *testing.T) {
	for _, tc := range []struct {
		sense []byte
		asc   scsi.ASC
		ok    bool
	}{
		{scsi.FixedSense(scsi.SenseUnitAttention, scsi.ASCCapacityDataChanged), scsi.ASCCapacityDataChanged, true},
		{scsi.DescriptorSense(scsi.SenseUnitAttention, scsi.ASCModeParametersChanged), scsi.ASCModeParametersChanged, true},
		{scsi.FixedSense(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB), 0, false},
		{[]byte{0x70, 0, 6}, 0, false},
		{nil, 0, false},
	} {
		asc, ok := deviceUA(tc.sense)
		if asc != tc.asc || ok != tc.ok {
			t.Errorf("deviceUA(% x) = %v %v, want %v %v", tc.sense, asc, ok, tc.asc, tc.ok)
		}
	}
}
