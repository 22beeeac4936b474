package passthrough

import (
	"context"
	"strings"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Quirks: devices (or the adapters in front of them) that answer a
// command wrongly, and what the gateway does instead, as entries of a
// table matched against the standard INQUIRY identity at NewLU.

// quirk is a set of workarounds.
type quirk uint32

const (
	// quirkTURByReadCapacity: TEST UNIT READY answers HARDWARE ERROR,
	// INTERNAL TARGET FAILURE although the drive is ready (QEMU 7.2's
	// megasas-gen2 in front of a scsi-cd, as in the rig: the drive reads
	// fine). The gateway asks READ CAPACITY(10) instead, which tells the
	// same as TEST UNIT READY would (GOOD with a medium, NOT READY
	// without, a pending unit attention) and returns no data.
	quirkTURByReadCapacity quirk = 1 << iota
)

// quirkEntry matches devices by peripheral type and by INQUIRY vendor
// and product (prefixes, trailing spaces ignored).
type quirkEntry struct {
	dt      scsi.DeviceType
	vendor  string
	product string
	q       quirk
}

// quirkTable lists the known quirks.
var quirkTable = []quirkEntry{
	// The rig's megasas CD-ROM (deploy/rig/hardware.json, sas-cd0).
	{dt: scsi.TypeCDROM, vendor: "HL-DT-ST", product: "DVDRAM GH24NSD1", q: quirkTURByReadCapacity},
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

// testUnitReady answers TEST UNIT READY for a device with
// quirkTURByReadCapacity: READ CAPACITY(10)'s status and sense, without
// its data.
func (lu *LU) testUnitReady(ctx context.Context, cmd *iscsi.Command, p *plan) iscsi.Response {
	if !lu.q.acquire(ctx, cmd.Nexus) {
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	defer lu.q.release()
	rc := plan{rule: p.rule, timeout: p.timeout, cdb: []byte{byte(scsi.OpReadCapacity10), 0, 0, 0, 0, 0, 0, 0, 0, 0}}
	r := lu.single(ctx, &rc, sgio.DirFromDevice, make([]byte, 8), nil, 0, false)
	r.ReadLen, r.Wanted = 0, 0
	return r
}
