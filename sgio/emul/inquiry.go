package emul

import (
	"encoding/binary"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// VPD page codes (SPC-4 7.8, SBC-3 6.5).
const (
	vpdSupportedPages     = 0x00
	vpdUnitSerial         = 0x80
	vpdDeviceID           = 0x83
	vpdBlockLimits        = 0xb0
	vpdBlockCharacteristc = 0xb1
	vpdLBProvisioning     = 0xb2
)

// Version descriptors (SPC-4 table 143) claimed in the standard data.
const (
	versionSAM5 = 0x00a0
	versionSPC4 = 0x0460
	versionSBC3 = 0x04c0
)

// stdInquiryLen is the length of the standard INQUIRY data: everything
// through the eight version descriptors and the reserved bytes after
// them (SPC-4 6.6.2).
const stdInquiryLen = 96

type vpdPage struct {
	code byte
	data []byte
}

// pad returns s padded with spaces to n bytes.
func pad(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
	return b
}

// buildInquiry precomputes the standard INQUIRY data and the VPD pages,
// which never change.
func (d *Disk) buildInquiry() {
	b := make([]byte, stdInquiryLen)
	b[0] = 0x00        // peripheral qualifier 0, direct access block device
	b[1] = 0x00        // RMB=0: not removable
	b[2] = 0x06        // VERSION: SPC-4
	b[3] = 0x10 | 0x02 // HISUP, RESPONSE DATA FORMAT 2
	b[4] = byte(len(b) - 5)
	b[5] = 0x00 // no SCCS, ACC, TPGS, 3PC, PROTECT
	b[6] = 0x00
	b[7] = 0x02 // CMDQUE
	copy(b[8:16], pad(d.cfg.Vendor, 8))
	copy(b[16:32], pad(d.cfg.Product, 16))
	copy(b[32:36], pad(d.cfg.Revision, 4))
	for i, v := range []uint16{versionSAM5, versionSPC4, versionSBC3} {
		binary.BigEndian.PutUint16(b[58+2*i:], v)
	}
	d.stdInquiry = b

	serial := append([]byte{0, vpdUnitSerial, 0, byte(len(d.cfg.Serial))}, d.cfg.Serial...)

	// Device Identification: the NAA designator and a T10 vendor ID
	// based designator (vendor, then serial), both for the logical unit.
	id := []byte{0, vpdDeviceID, 0, 0}
	id = append(id, 0x01, 0x03, 0, byte(len(d.cfg.NAA))) // binary, LU, NAA
	id = append(id, d.cfg.NAA...)
	t10 := append(pad(d.cfg.Vendor, 8), d.cfg.Serial...)
	id = append(id, 0x02, 0x01, 0, byte(len(t10))) // ASCII, LU, T10 vendor ID
	id = append(id, t10...)
	binary.BigEndian.PutUint16(id[2:], uint16(len(id)-4))

	// Block Limits (SBC-3 6.5.3), page length 3Ch.
	bl := make([]byte, 64)
	bl[1] = vpdBlockLimits
	bl[3] = 0x3c
	// WSNZ=0: WRITE SAME with zero blocks means "to the last LBA".
	bl[5] = MaxCompareAndWriteBlocks
	binary.BigEndian.PutUint16(bl[6:], uint16(d.optimalGranularity()))
	binary.BigEndian.PutUint32(bl[8:], d.maxXfer)
	if d.thin {
		binary.BigEndian.PutUint32(bl[20:], MaxUnmapBlocks)
		binary.BigEndian.PutUint32(bl[24:], MaxUnmapDescriptors)
		binary.BigEndian.PutUint32(bl[28:], uint32(d.unmapGranularity()))
		binary.BigEndian.PutUint32(bl[32:], 0x80000000) // UGAVALID, alignment 0
	}
	binary.BigEndian.PutUint64(bl[36:], MaxWriteSameBlocks)

	// Block Device Characteristics (SBC-3 6.5.2): non-rotating medium.
	bdc := make([]byte, 64)
	bdc[1] = vpdBlockCharacteristc
	bdc[3] = 0x3c
	binary.BigEndian.PutUint16(bdc[4:], 1)

	pages := []vpdPage{
		{vpdUnitSerial, serial},
		{vpdDeviceID, id},
		{vpdBlockLimits, bl},
		{vpdBlockCharacteristc, bdc},
	}
	if d.thin {
		// Logical Block Provisioning (SBC-3 6.5.4): UNMAP, WRITE SAME(16)
		// and (10) with UNMAP, deallocated blocks read as zeros (LBPRZ),
		// no anchored state (ANC_SUP=0), thin provisioned.
		lbp := []byte{0, vpdLBProvisioning, 0, 4, 0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0}
		pages = append(pages, vpdPage{vpdLBProvisioning, lbp})
	}
	sup := []byte{0, vpdSupportedPages, 0, byte(len(pages) + 1), vpdSupportedPages}
	for _, p := range pages {
		sup = append(sup, p.code)
	}
	d.vpd = append([]vpdPage{{vpdSupportedPages, sup}}, pages...)
}

// optimalGranularity is the OPTIMAL TRANSFER LENGTH GRANULARITY: the
// file system block for a file (writes smaller than it cost a
// read-modify-write), one block for memory.
func (d *Disk) optimalGranularity() int64 {
	if _, ok := d.st.(*memStore); ok {
		return 1
	}
	return max(1, d.st.Granularity()>>d.shift)
}

// unmapGranularity is the OPTIMAL UNMAP GRANULARITY in blocks: the unit
// the store releases; smaller ranges are only zeroed.
func (d *Disk) unmapGranularity() int64 { return max(1, d.st.Granularity()>>d.shift) }

// inquiry implements INQUIRY (SPC-4 6.6).
func (d *Disk) inquiry(x *exchange) {
	evpd := x.cdb[1]&0x01 != 0
	page := x.cdb[2]
	alloc := int(binary.BigEndian.Uint16(x.cdb[3:5]))
	if !evpd {
		if page != 0 {
			// SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero.
			x.invalidField(2, 7)
			return
		}
		x.sendIn(d.stdInquiry[:min(alloc, len(d.stdInquiry))])
		return
	}
	for _, p := range d.vpd {
		if p.code == page {
			x.sendIn(p.data[:min(alloc, len(p.data))])
			return
		}
	}
	x.invalidField(2, 7)
}

// readCapacity10 implements READ CAPACITY(10) (SBC-3 5.15).
func (d *Disk) readCapacity10(x *exchange) {
	if x.cdb[8]&0x01 == 0 && binary.BigEndian.Uint32(x.cdb[2:6]) != 0 {
		// SBC-3: a LOGICAL BLOCK ADDRESS without PMI is invalid.
		x.invalidField(2, 7)
		return
	}
	var b [8]byte
	last := d.blocks - 1
	if last > 0xfffffffe {
		last = 0xffffffff // use READ CAPACITY(16)
	}
	binary.BigEndian.PutUint32(b[0:], uint32(last))
	binary.BigEndian.PutUint32(b[4:], uint32(d.bs))
	x.sendIn(b[:])
}

// readCapacity16 implements READ CAPACITY(16) (SBC-3 5.16).
func (d *Disk) readCapacity16(x *exchange) {
	if x.cdb[14]&0x01 == 0 && binary.BigEndian.Uint64(x.cdb[2:10]) != 0 {
		x.invalidField(2, 7)
		return
	}
	alloc := int(binary.BigEndian.Uint32(x.cdb[10:14]))
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:], d.blocks-1)
	binary.BigEndian.PutUint32(b[8:], uint32(d.bs))
	// No protection information; one logical block per physical block.
	if d.thin {
		b[14] = 0x80 | 0x40 // LBPME, LBPRZ
	}
	x.sendIn(b[:min(alloc, len(b))])
}

// reportLUNs implements REPORT LUNS (SPC-4 6.33) for a device that is a
// single logical unit, LUN 0. Transports that map LUNs answer it
// themselves.
func (d *Disk) reportLUNs(x *exchange) {
	switch x.cdb[2] {
	case 0x00, 0x01, 0x02:
	default:
		x.invalidField(2, 7)
		return
	}
	alloc := int(binary.BigEndian.Uint32(x.cdb[6:10]))
	var b [16]byte
	b[3] = 8 // one LUN: 0
	x.sendIn(b[:min(alloc, len(b))])
}

// requestSense implements REQUEST SENSE (SPC-4 6.39): the disk keeps no
// pending sense (errors are reported with the status), so it returns the
// current condition: NOT READY while stopped, NO SENSE otherwise, in the
// format the DESC bit asks for.
func (d *Disk) requestSense(x *exchange) {
	s := scsi.NewSense(scsi.SenseNoSense, scsi.ASCNoAdditionalSense)
	if d.stopped.Load() {
		s = scsi.NewSense(scsi.SenseNotReady, scsi.ASCNotReadyInitCommandRequired)
	}
	s.Descriptor = x.cdb[1]&0x01 != 0
	b := s.Bytes()
	x.sendIn(b[:min(int(x.cdb[4]), len(b))])
}

// startStop implements START STOP UNIT (SBC-3 5.25) for a non-removable
// disk without power conditions: START=0 stops the unit (after a cache
// flush unless NO_FLUSH), so that media commands fail with NOT READY,
// INITIALIZING COMMAND REQUIRED until START=1. LOEJ=1 is refused: there is
// no medium to load or eject.
func (d *Disk) startStop(x *exchange) {
	if x.cdb[4]&0x02 != 0 {
		x.invalidField(4, 1)
		return
	}
	start := x.cdb[4]&0x01 != 0
	if !start && x.cdb[4]&0x04 == 0 && d.wce && !d.readOnly {
		if err := d.st.Sync(); err != nil {
			x.ioError("sync", 0, d.blocks, err)
			return
		}
	}
	d.stopped.Store(!start)
}

// preventAllow implements PREVENT ALLOW MEDIUM REMOVAL (SBC-3 5.10): the
// medium is not removable, so preventing or allowing its removal has no
// effect; the obsolete PREVENT values 10b and 11b are refused.
func (d *Disk) preventAllow(x *exchange) {
	if x.cdb[4]&0x02 != 0 {
		x.invalidField(4, 1)
	}
}
