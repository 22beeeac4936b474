package passthrough

import (
	"context"
	"strings"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Quirks: devices (or the adapters in front of them) that answer a
// command wrongly, and what the gateway does instead, as entries of a
// table matched against the standard INQUIRY identity at NewLU.

// quirk is a set of workarounds.
type quirk uint32

const (
	// quirkNoDataBuffer: commands without data fail with HARDWARE ERROR,
	// INTERNAL TARGET FAILURE although the device is fine, because the
	// adapter wants a scatter-gather list for every command (QEMU 7.2's
	// megasas-gen2, as in the rig: TEST UNIT READY, PREVENT ALLOW MEDIUM
	// REMOVAL and START STOP UNIT on its CD-ROM fail, the same with a
	// data-in buffer pass). The gateway sends them with a small data-in
	// buffer whose content it discards.
	quirkNoDataBuffer quirk = 1 << iota
)

// quirkEntry matches devices by peripheral type and by INQUIRY vendor
// and product (prefixes, trailing spaces ignored).
type quirkEntry struct {
	dt      scsi.DeviceType
	vendor  string
	product string
	q       quirk
}

// quirkTable lists the known quirks. A device not listed whose TEST UNIT
// READY shows quirkNoDataBuffer's symptom at NewLU gets it too (probe).
var quirkTable = []quirkEntry{
	// The rig's megasas CD-ROM (deploy/rig/hardware.json, sas-cd0).
	{dt: scsi.TypeCDROM, vendor: "HL-DT-ST", product: "DVDRAM GH24NSD1", q: quirkNoDataBuffer},
}

// quirksOf returns the quirks of a device of type dt with the INQUIRY
// identity in info.
func quirksOf(dt scsi.DeviceType, info *devInfo) quirk {
	var q quirk
	for _, e := range quirkTable {
		if e.dt == dt && strings.HasPrefix(info.vendor, e.vendor) && strings.HasPrefix(info.product, e.product) {
			q |= e.q
		}
	}
	return q
}

// noDataBufferLen is the size of the data-in buffer a command without
// data gets under quirkNoDataBuffer.
const noDataBufferLen = 512

// detectNoDataBuffer reports whether dev shows quirkNoDataBuffer's
// symptom: TEST UNIT READY fails with HARDWARE ERROR, INTERNAL TARGET
// FAILURE, and passes with a data-in buffer.
func detectNoDataBuffer(ctx context.Context, dev sgio.Device) bool {
	hwError := func(res *sgio.Result) bool {
		s, err := scsi.ParseSense(res.Sense)
		return res.Status == scsi.CheckCondition && err == nil && s.Key == scsi.SenseHardwareError && s.ASC == scsi.ASCInternalTargetFailure
	}
	tur := []byte{byte(scsi.OpTestUnitReady), 0, 0, 0, 0, 0}
	if _, res, ok := query(ctx, dev, tur, 0); ok || !hwError(res) {
		return false
	}
	_, _, ok := query(ctx, dev, tur, noDataBufferLen)
	return ok
}
