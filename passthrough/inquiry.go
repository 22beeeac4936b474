package passthrough

import (
	"context"
	"encoding/binary"
	"slices"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// INQUIRY through the gateway keeps the device's identity (vendor,
// product, revision, serial number, its logical unit designators, which
// initiator-side multipathing relies on) and tells the truth about what
// lies between: the target port the command arrived on and what the
// path carries.
//
//	standard data  the device's, with the TPGS field of the gateway
//	               (asymmetric access is the gateway's, not the device's)
//	VPD 00h        the device's pages plus those the gateway answers
//	VPD 83h        the device's designators of the logical unit and of
//	               its target device, then the gateway port's: relative
//	               target port (type 4), target port group (type 5) and
//	               SCSI target port name ("iqn...,t,0x0001", type 8),
//	               association 01b. The device's own target port
//	               designators (association 01b) name the port between
//	               the gateway and the device, which no initiator sees,
//	               and are left out.
//	VPD B0h        the device's Block Limits with the transfer lengths
//	               cut to what the path carries; made up for a block
//	               device that has none.
//
// Designation descriptor (SPC-4 7.8.6.1):
//
//	byte 0  PROTOCOL IDENTIFIER (7-4) | CODE SET (3-0)
//	byte 1  PIV (7) | ASSOCIATION (5-4) | DESIGNATOR TYPE (3-0)
//	byte 3  DESIGNATOR LENGTH (n-3)
//	4-n     DESIGNATOR

// Designation descriptor fields.
const (
	protoISCSI     = 0x5
	codeBinary     = 0x1
	codeASCII      = 0x2
	codeUTF8       = 0x3
	assocLU        = 0x0
	assocPort      = 0x1
	desigT10       = 0x1
	desigRelPort   = 0x4
	desigPortGroup = 0x5
	desigSCSIName  = 0x8
	defaultTPG     = 1 // the target port group of an unshared logical unit's ports
	vpdBlockLimits = 0xb0
	vpdDeviceID    = 0x83
	vpdSupported   = 0x00
	blockLimitsLen = 0x3c // PAGE LENGTH of Block Limits (SBC-3 6.5.3): 64 bytes in all
)

// inquiry answers INQUIRY for n: the device's answer with the gateway's
// fix-ups.
func (lu *LU) inquiry(ctx context.Context, n *nexus, cmd *iscsi.Command, p *plan) iscsi.Response {
	cdb := cmd.CDB
	if len(cdb) < 6 {
		return lu.do(ctx, cmd, p)
	}
	if cdb[1]&0x01 == 0 {
		r := lu.do(ctx, cmd, p)
		if r.Status == scsi.Good && cdb[2] == 0 {
			if data := responseData(cmd, &r); len(data) > 5 {
				data[5] = data[5]&^0x30 | byte(lu.TPGS())<<4
			}
		}
		return r
	}
	page := cdb[2]
	switch {
	case page == vpdSupported, page == vpdDeviceID, page == vpdBlockLimits && blockLimited(lu.pol.dt):
	default:
		return lu.do(ctx, cmd, p)
	}
	dev, r, ok := lu.vpdPage(ctx, cmd.Nexus, page, p.rule)
	if !ok {
		return r
	}
	var data []byte
	switch page {
	case vpdSupported:
		data = lu.supportedPages(dev)
	case vpdDeviceID:
		data = lu.deviceID(dev, n)
	case vpdBlockLimits:
		data = lu.blockLimits(dev)
	}
	alloc := int(binary.BigEndian.Uint16(cdb[3:5]))
	wanted := min(len(data), alloc)
	return iscsi.Response{ReadLen: copy(cmd.ReadBuf, data[:wanted]), Wanted: wanted}
}

// blockLimited reports whether device type dt has a Block Limits page
// the gateway must keep truthful: the SBC types.
func blockLimited(dt scsi.DeviceType) bool { return typeRules(dt) == &diskRules }

// vpdPage reads a whole VPD page from the device. A device that does not
// have the page (ILLEGAL REQUEST) yields nil and ok; any other failure
// yields the response the initiator gets and !ok.
func (lu *LU) vpdPage(ctx context.Context, in *iscsi.Nexus, page byte, rule opRule) ([]byte, iscsi.Response, bool) {
	if page != vpdSupported && lu.info.answered && !lu.info.hasVPD(page) {
		return nil, iscsi.Response{}, true
	}
	size := 1024
	for {
		buf := make([]byte, size)
		r := lu.internal(ctx, in, scsi.InquiryCDB(true, page, uint16(size)), buf, rule)
		switch {
		case r.Status == scsi.CheckCondition:
			if s, err := scsi.ParseSense(r.Sense); err == nil && s.Key == scsi.SenseIllegalRequest {
				return nil, iscsi.Response{}, true
			}
			return nil, r, false
		case r.Status != scsi.Good:
			return nil, r, false
		}
		data := buf[:r.ReadLen]
		if len(data) < 4 || data[1] != page {
			return nil, iscsi.Response{}, true
		}
		full := 4 + int(binary.BigEndian.Uint16(data[2:4]))
		if full <= size || size == 0xffff {
			return data[:min(full, len(data))], iscsi.Response{}, true
		}
		size = min(full, 0xffff)
	}
}

// vpdHeader starts a VPD page: the device's peripheral qualifier and
// type, the page code, and room for the length.
func (lu *LU) vpdHeader(page byte) []byte {
	return []byte{lu.info.qualType, page, 0, 0}
}

// finishPage sets a VPD page's PAGE LENGTH.
func finishPage(b []byte) []byte {
	binary.BigEndian.PutUint16(b[2:4], uint16(min(len(b)-4, 0xffff)))
	return b
}

// supportedPages builds VPD page 00h: the device's pages and those the
// gateway answers, ascending.
func (lu *LU) supportedPages(dev []byte) []byte {
	var pages []byte
	if len(dev) >= 4 {
		pages = append(pages, dev[4:min(len(dev), 4+int(binary.BigEndian.Uint16(dev[2:4])))]...)
	}
	pages = append(pages, vpdSupported, vpdDeviceID)
	if blockLimited(lu.pol.dt) {
		pages = append(pages, vpdBlockLimits)
	}
	slices.Sort(pages)
	pages = slices.Compact(pages)
	return finishPage(append(lu.vpdHeader(vpdSupported), pages...))
}

// deviceID builds VPD page 83h for n: the device's designators of the
// logical unit and of its target device, a T10 vendor ID designator
// made from the logical unit's key when the device has none of the
// logical unit, and the designators of n's target port.
func (lu *LU) deviceID(dev []byte, n *nexus) []byte {
	b := lu.vpdHeader(vpdDeviceID)
	hasLU := false
	if len(dev) >= 4 {
		end := min(len(dev), 4+int(binary.BigEndian.Uint16(dev[2:4])))
		for p := 4; p+4 <= end; {
			d := dev[p:min(end, p+4+int(dev[p+3]))]
			p += 4 + int(dev[p+3])
			if len(d) < 4+int(d[3]) {
				break // truncated
			}
			switch (d[1] >> 4) & 0x3 {
			case assocPort:
				continue
			case assocLU:
				hasLU = true
			}
			b = append(b, d...)
		}
	}
	if !hasLU {
		id := append([]byte("SANBRIDG"), lu.key...)
		id = id[:min(len(id), 255)]
		b = append(b, codeASCII, assocLU<<4|desigT10, 0, byte(len(id)))
		b = append(b, id...)
	}
	rel := n.pr.RelTargetPortID
	tpg, ok := lu.TargetPortGroup(rel)
	if !ok {
		tpg = defaultTPG
	}
	piv := byte(0x80)
	b = append(b, protoISCSI<<4|codeBinary, piv|assocPort<<4|desigRelPort, 0, 4, 0, 0, byte(rel>>8), byte(rel))
	b = append(b, protoISCSI<<4|codeBinary, piv|assocPort<<4|desigPortGroup, 0, 4, 0, 0, byte(tpg>>8), byte(tpg))
	// SCSI NAME STRING: null-terminated UTF-8, padded with nulls to a
	// multiple of four bytes (SPC-4 7.8.6.11).
	name := []byte(n.pr.TargetPort)
	nlen := (len(name) + 4) &^ 3
	nlen = min(nlen, 252)
	b = append(b, protoISCSI<<4|codeUTF8, piv|assocPort<<4|desigSCSIName, 0, byte(nlen))
	b = append(b, name[:min(len(name), nlen-1)]...)
	for range nlen - min(len(name), nlen-1) {
		b = append(b, 0)
	}
	return finishPage(b)
}

// blockLimits builds VPD page B0h: the device's page, or a made-up one,
// with every transfer length the path limits cut to what it carries.
func (lu *LU) blockLimits(dev []byte) []byte {
	var b []byte
	if len(dev) >= 4 {
		b = append(b, dev...)
	} else {
		b = make([]byte, 4+blockLimitsLen)
		copy(b, lu.vpdHeader(vpdBlockLimits))
		binary.BigEndian.PutUint16(b[2:4], blockLimitsLen)
	}
	g := lu.Geometry()
	if g.BlockSize == 0 || lu.maxXfer <= 0 {
		return b
	}
	path := uint32(lu.maxXfer / int(g.BlockSize))
	capField := func(off int, made bool) {
		if len(b) < off+4 {
			return
		}
		v := binary.BigEndian.Uint32(b[off:])
		if v > path || v == 0 && made {
			binary.BigEndian.PutUint32(b[off:], path)
		}
	}
	capField(8, true)   // MAXIMUM TRANSFER LENGTH: 0 (no limit) becomes the path's
	capField(12, false) // OPTIMAL TRANSFER LENGTH
	capField(44, false) // MAXIMUM ATOMIC TRANSFER LENGTH
	capField(56, false) // MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY
	// COMPARE AND WRITE moves twice its blocks in one command.
	if len(b) > 5 && uint32(b[5])*2 > path {
		b[5] = byte(min(path/2, 255))
	}
	return b
}
