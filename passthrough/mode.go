package passthrough

import (
	"encoding/binary"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Mode parameters the gateway presents differently from the device: the
// WP bit of a read-only mapping, and the D_SENSE bit of the Control mode
// page, which says in which format the logical unit reports sense data.
// The gateway keeps D_SENSE per logical unit (mode pages are shared by
// every I_T nexus unless the Mode Page Policy VPD page says otherwise,
// SPC-4 7.8.10) and converts every sense it sends to that format,
// whatever format the device itself used.
//
// Mode parameter list layout (SPC-4 7.5.4, 7.5.5):
//
//	MODE SENSE(6)/SELECT(6)   4-byte header, byte 3 BLOCK DESCRIPTOR LENGTH
//	MODE SENSE(10)/SELECT(10) 8-byte header, bytes 6-7 BLOCK DESCRIPTOR LENGTH
//	then the block descriptors, then the pages:
//	page_0 format   byte 0 PS SPF=0 PAGE CODE, byte 1 PAGE LENGTH (n-1)
//	sub_page format byte 0 PS SPF=1 PAGE CODE, byte 1 SUBPAGE, bytes 2-3 PAGE LENGTH (n-3)
//	Control page (0Ah): byte 2 bit 2 is D_SENSE.

// modeLayout returns where the block descriptors and the pages of a mode
// parameter list begin; ok is false when the header is incomplete.
func modeLayout(data []byte, ten bool) (bd, pages int, ok bool) {
	if ten {
		if len(data) < 8 {
			return 0, 0, false
		}
		return 8, 8 + int(binary.BigEndian.Uint16(data[6:8])), true
	}
	if len(data) < 4 {
		return 0, 0, false
	}
	return 4, 4 + int(data[3]), true
}

// controlPage returns the offset of the Control mode page's byte 2 in a
// mode parameter list; ok is false when the list holds no such page, or
// it is cut short before that byte.
func controlPage(data []byte, ten bool) (int, bool) {
	_, p, ok := modeLayout(data, ten)
	if !ok {
		return 0, false
	}
	for p+2 <= len(data) {
		code, spf := data[p]&0x3f, data[p]&0x40 != 0
		n := 2 + int(data[p+1])
		if spf {
			if p+4 > len(data) {
				return 0, false
			}
			n = 4 + int(binary.BigEndian.Uint16(data[p+2:p+4]))
		}
		if code == 0x0a && !spf {
			if p+2 < len(data) && n > 2 {
				return p + 2, true
			}
			return 0, false
		}
		p += n
	}
	return 0, false
}

// controlPageDSense returns the D_SENSE bit of the Control mode page in a
// mode parameter list, and whether the list holds it.
func controlPageDSense(data []byte, ten bool) (dsense, ok bool) {
	off, ok := controlPage(data, ten)
	if !ok {
		return false, false
	}
	return data[off]&0x04 != 0, true
}

// fixModeSense makes a MODE SENSE answer say what the gateway presents:
// WP for a read-only mapping of a type whose header has it, and the
// logical unit's D_SENSE in the current values of the Control mode page.
func (lu *LU) fixModeSense(cmd *iscsi.Command, r *iscsi.Response, readOnly bool) {
	if readOnly && reportsWP(lu.pol.dt) {
		setWP(cmd, r)
	}
	if len(cmd.CDB) < 3 || cmd.CDB[2]>>6 != 0 { // current values only
		return
	}
	data := responseData(cmd, r)
	if off, ok := controlPage(data, scsi.Opcode(cmd.CDB[0]) == scsi.OpModeSense10); ok {
		if lu.dsense.Load() {
			data[off] |= 0x04
		} else {
			data[off] &^= 0x04
		}
	}
}

// noteModeSelect records what a MODE SELECT the device accepted changed
// in what the gateway presents or needs: D_SENSE, and a tape's fixed
// block length from the block descriptor (SSC-4 8.3.3).
func (lu *LU) noteModeSelect(cmd *iscsi.Command) {
	cdb := cmd.CDB
	ten := scsi.Opcode(cdb[0]) == scsi.OpModeSelect10
	param := cmd.WriteData
	if x := scsi.DataTransfer(cdb, scsi.TypeUnknown, 0); x.Known && uint64(len(param)) > x.Out {
		param = param[:x.Out]
	}
	if dsense, ok := controlPageDSense(param, ten); ok {
		lu.dsense.Store(dsense)
	}
	bd, pages, ok := modeLayout(param, ten)
	if !ok || lu.pol.dt != scsi.TypeTape || pages-bd < 8 || len(param) < bd+8 {
		return
	}
	g := lu.Geometry()
	g.BlockSize = uint32(param[bd+5])<<16 | uint32(binary.BigEndian.Uint16(param[bd+6:bd+8]))
	lu.geom.Store(&g)
}
