package passthrough

import (
	"context"
	"encoding/binary"
	"strings"
	"time"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// What the gateway learns about a device when its logical unit is made,
// and keeps current while commands pass: the peripheral device type
// (which command set its CDBs follow and which policy table applies),
// its identity for quirks, the VPD pages it has, the logical block size
// and capacity of block devices (Geometry, which also bounds buffers
// before allocation), the fixed block length of a tape, and the D_SENSE
// bit of its Control mode page.

// devInfo is the device's identity and what it supports.
type devInfo struct {
	// qualType is byte 0 of the standard INQUIRY data: peripheral
	// qualifier and device type.
	qualType  byte
	removable bool
	vendor    string
	product   string
	// vpd lists the VPD pages the device reports in page 00h (nil: it
	// has no VPD pages, or did not answer).
	vpd []byte
	// answered is set when the device answered the standard INQUIRY.
	answered bool
	// quirks are the workarounds the device needs (quirks.go).
	quirks quirk
}

// hasVPD reports whether the device lists page.
func (d *devInfo) hasVPD(page byte) bool {
	for _, p := range d.vpd {
		if p == page {
			return true
		}
	}
	return false
}

// probeTimeout bounds each command the gateway sends on its own behalf.
const probeTimeout = 30 * time.Second

// query sends a data-in command of the gateway's own to dev and returns
// the data, retrying past a unit attention (the device tells its one
// initiator, the gateway, about a reset or a change), BUSY and TASK SET
// FULL a few times. ok is false when the device did not answer GOOD;
// res then holds its last answer.
func query(ctx context.Context, dev sgio.Device, cdb []byte, n int) (data []byte, res *sgio.Result, ok bool) {
	res = new(sgio.Result)
	buf := make([]byte, n)
	for range 4 {
		req := sgio.Request{CDB: cdb, Dir: sgio.DirFromDevice, Data: buf, Timeout: probeTimeout}
		if n == 0 {
			req.Dir, req.Data = sgio.DirNone, nil
		}
		err := dev.Execute(ctx, &req, res)
		if err != nil || ctx.Err() != nil {
			return nil, res, false
		}
		if res.HostStatus != scsi.HostOK || res.DriverStatus&scsi.DriverMask&^scsi.DriverSense != 0 {
			return nil, res, false
		}
		switch res.Status {
		case scsi.Good:
			return buf[:res.Transferred(n)], res, true
		case scsi.Busy, scsi.TaskSetFull:
			continue
		case scsi.CheckCondition:
			if _, ok := deviceUA(res.Sense); ok {
				continue
			}
		}
		return nil, res, false
	}
	return nil, res, false
}

// probe learns what the gateway needs to know of dev: the standard
// INQUIRY data, the supported VPD pages, the capacity of a block device,
// the fixed block length of a tape, and D_SENSE. A device that does not
// answer (not ready, no medium) leaves the fields it would have filled
// unknown; nothing here fails the logical unit.
func probe(ctx context.Context, dev sgio.Device) (devInfo, Geometry, bool) {
	var info devInfo
	g := deviceGeometry(dev)
	if inq, _, ok := query(ctx, dev, scsi.InquiryCDB(false, 0, 96), 96); ok && len(inq) >= 8 {
		info.answered = true
		info.qualType = inq[0]
		info.removable = inq[1]&0x80 != 0
		if inq[0]>>5 == 0 {
			g.Type = scsi.DeviceType(inq[0] & 0x1f)
		}
		if len(inq) >= 32 {
			info.vendor = strings.TrimRight(string(inq[8:16]), " \x00")
			info.product = strings.TrimRight(string(inq[16:32]), " \x00")
		}
	} else {
		info.qualType = byte(g.Type)
	}
	info.quirks = quirksOf(g.Type, &info)
	if info.quirks&quirkNoDataBuffer == 0 && info.answered && detectNoDataBuffer(ctx, dev) {
		info.quirks |= quirkNoDataBuffer
	}
	if p, _, ok := query(ctx, dev, scsi.InquiryCDB(true, 0x00, 255), 255); ok && len(p) >= 4 && p[1] == 0x00 {
		n := min(int(binary.BigEndian.Uint16(p[2:4])), len(p)-4)
		info.vpd = append([]byte{}, p[4:4+n]...)
	}
	switch {
	case rangeChecked(g.Type) || g.Type == scsi.TypeCDROM:
		if bs, blocks, ok := readCapacity(ctx, dev); ok {
			g.BlockSize, g.Blocks = bs, blocks
		}
	case g.Type == scsi.TypeTape:
		g.BlockSize = tapeBlockLength(ctx, dev)
	}
	return info, g, dsenseOf(ctx, dev)
}

// readCapacity reads the logical block size and the number of blocks:
// READ CAPACITY(16), or (10) on a device without it.
func readCapacity(ctx context.Context, dev sgio.Device) (bs uint32, blocks uint64, ok bool) {
	if d, _, ok := query(ctx, dev, scsi.ReadCapacity16CDB(32), 32); ok && len(d) >= 12 {
		if last, bs := binary.BigEndian.Uint64(d[0:8]), binary.BigEndian.Uint32(d[8:12]); last != ^uint64(0) && bs != 0 {
			return bs, last + 1, true
		}
	}
	d, _, ok := query(ctx, dev, []byte{byte(scsi.OpReadCapacity10), 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8)
	if !ok || len(d) < 8 {
		return 0, 0, false
	}
	last, bs := binary.BigEndian.Uint32(d[0:4]), binary.BigEndian.Uint32(d[4:8])
	if last == 0xffffffff || bs == 0 {
		return 0, 0, false // larger than READ CAPACITY(10) tells and (16) failed, or nonsense
	}
	return bs, uint64(last) + 1, true
}

// tapeBlockLength reads a tape's current fixed block length from the
// block descriptor of MODE SENSE(6) (SSC-4 8.3.3); 0 is variable-block
// mode, or unknown.
func tapeBlockLength(ctx context.Context, dev sgio.Device) uint32 {
	d, _, ok := query(ctx, dev, []byte{byte(scsi.OpModeSense6), 0, 0x00, 0, 12, 0}, 12)
	if !ok || len(d) < 12 || d[3] < 8 {
		return 0
	}
	return uint32(d[9])<<16 | uint32(binary.BigEndian.Uint16(d[10:12]))
}

// dsenseOf reads the D_SENSE bit of the device's current Control mode
// page (SPC-4 7.5.8); false when it has none.
func dsenseOf(ctx context.Context, dev sgio.Device) bool {
	d, _, ok := query(ctx, dev, []byte{byte(scsi.OpModeSense10), 0x08, 0x0a, 0, 0, 0, 0, 0, 64, 0}, 64)
	if !ok {
		return false
	}
	dsense, _ := controlPageDSense(d, true)
	return dsense
}

// rangeChecked reports whether the gateway checks the LBA range of block
// commands against the capacity for device type dt: fixed-medium block
// devices (a CD's capacity is its current medium's, which the drive
// knows best).
func rangeChecked(dt scsi.DeviceType) bool {
	switch dt {
	case scsi.TypeDisk, scsi.TypeZBC, scsi.TypeRBC:
		return true
	}
	return false
}

// refreshCapacity reads the capacity again after the device said it
// changed (CAPACITY DATA HAS CHANGED, a medium change, a format).
func (lu *LU) refreshCapacity(ctx context.Context) {
	if !lu.capStale.CompareAndSwap(true, false) {
		return
	}
	g := lu.Geometry()
	bs, blocks, ok := readCapacity(ctx, lu.dev)
	if !ok {
		g.Blocks = 0 // unknown until the device says again
	} else {
		g.BlockSize, g.Blocks = bs, blocks
	}
	lu.geom.Store(&g)
	lu.log.Info().Str("lu", lu.name).Uint32("block_size", g.BlockSize).Uint64("blocks", g.Blocks).Msg("capacity read again")
}

// deviceChanged notes what a unit attention from the device means for
// what the gateway knows: a block device's capacity and block size may
// have changed (a tape's medium change means nothing of the kind, and a
// tape must not be asked READ CAPACITY).
func (lu *LU) deviceChanged(asc scsi.ASC) {
	if dt := lu.pol.dt; !rangeChecked(dt) && dt != scsi.TypeCDROM {
		return
	}
	switch asc {
	case scsi.ASCCapacityDataChanged, scsi.ASCNotReadyToReadyChange, scsi.ASCInquiryDataChanged:
		lu.capStale.Store(true)
	}
}

// fixBlockLimits cuts the MAXIMUM BLOCK LENGTH LIMIT of a tape's READ
// BLOCK LIMITS answer (SSC-4 7.6, bytes 1-3) to what the path carries: a
// tape block moves in one command, which the gateway cannot split.
func (lu *LU) fixBlockLimits(cmd *iscsi.Command, r *iscsi.Response) {
	data := responseData(cmd, r)
	if lu.pol.dt != scsi.TypeTape || len(data) < 4 || lu.maxXfer <= 0 || len(cmd.CDB) > 1 && cmd.CDB[1]&0x01 != 0 {
		return
	}
	maxLen := uint32(data[1])<<16 | uint32(binary.BigEndian.Uint16(data[2:4]))
	if path := uint32(min(lu.maxXfer, 0xffffff)); maxLen == 0 || maxLen > path {
		data[1] = byte(path >> 16)
		binary.BigEndian.PutUint16(data[2:4], uint16(path))
	}
}
