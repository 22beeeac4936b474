package emul

import (
	"encoding/binary"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Mode page codes (SPC-4 7.5, SBC-3 6.4).
const (
	modePageCaching  = 0x08
	modePageControl  = 0x0a
	modePageAll      = 0x3f
	modeSubpageAll   = 0xff
	pcCurrent        = 0
	pcChangeable     = 1
	pcDefault        = 2
	pcSaved          = 3
	deviceSpecificWP = 0x80 // WP: write protected
	deviceSpecificDF = 0x10 // DPOFUA: DPO and FUA supported
)

// modePage returns mode page code for page control pc, or nil when the
// disk does not have that page. No parameter is changeable (there is no
// MODE SELECT), so the changeable values are all zero and the default
// values are the current ones.
func (d *Disk) modePage(code byte, pc int) []byte {
	switch code {
	case modePageCaching:
		// Caching (SBC-3 6.4.5): WCE reflects whether writes go through a
		// volatile cache (the page cache of a backing file).
		p := make([]byte, 20)
		p[0], p[1] = modePageCaching, 0x12
		if pc != pcChangeable && d.wce {
			p[2] |= 0x04 // WCE
		}
		return p
	case modePageControl:
		// Control (SPC-4 7.5.8): TST=0 (one task set), QUEUE ALGORITHM
		// MODIFIER 1 (unrestricted reordering: commands run concurrently),
		// QERR=0, D_SENSE=0 (fixed-format sense), SWP=0, BUSY TIMEOUT
		// PERIOD unlimited.
		p := make([]byte, 12)
		p[0], p[1] = modePageControl, 0x0a
		if pc != pcChangeable {
			p[3] = 0x10
			binary.BigEndian.PutUint16(p[8:], 0xffff)
		}
		return p
	}
	return nil
}

// modeSense implements MODE SENSE (6) and (10) (SPC-4 6.11, 6.12).
func (d *Disk) modeSense(x *exchange) {
	ten := scsi.Opcode(x.cdb[0]) == scsi.OpModeSense10
	dbd := x.cdb[1]&0x08 != 0
	llbaa := ten && x.cdb[1]&0x10 != 0
	pc := int(x.cdb[2] >> 6)
	page := x.cdb[2] & 0x3f
	sub := x.cdb[3]
	var alloc int
	if ten {
		alloc = int(binary.BigEndian.Uint16(x.cdb[7:9]))
	} else {
		alloc = int(x.cdb[4])
	}
	if pc == pcSaved {
		x.failKey(scsi.SenseIllegalRequest, scsi.ASCSavingParamsNotSupported)
		return
	}
	var pages []byte
	switch {
	case page == modePageAll && (sub == 0 || sub == modeSubpageAll):
		pages = append(d.modePage(modePageCaching, pc), d.modePage(modePageControl, pc)...)
	case page == modePageAll:
		x.invalidField(3, 7)
		return
	default:
		pages = d.modePage(page, pc)
		if pages == nil {
			x.invalidField(2, 5)
			return
		}
		if sub != 0 && sub != modeSubpageAll {
			x.invalidField(3, 7)
			return
		}
	}

	// Header: medium type 0; device-specific parameter WP and DPOFUA.
	dsp := byte(deviceSpecificDF)
	if d.readOnly {
		dsp |= deviceSpecificWP
	}
	var bd []byte
	if !dbd {
		if llbaa {
			bd = make([]byte, 16) // long LBA block descriptor
			if pc != pcChangeable {
				binary.BigEndian.PutUint64(bd[0:], d.blocks)
				binary.BigEndian.PutUint32(bd[12:], uint32(d.bs))
			}
		} else {
			bd = make([]byte, 8) // short LBA block descriptor
			if pc != pcChangeable {
				binary.BigEndian.PutUint32(bd[0:], uint32(min(d.blocks, 0xffffffff)))
				bd[5], bd[6], bd[7] = byte(d.bs>>16), byte(d.bs>>8), byte(d.bs)
			}
		}
	}
	var b []byte
	if ten {
		b = make([]byte, 8, 8+len(bd)+len(pages))
		b[3] = dsp
		if llbaa && bd != nil {
			b[4] = 0x01 // LONGLBA
		}
		binary.BigEndian.PutUint16(b[6:], uint16(len(bd)))
	} else {
		b = make([]byte, 4, 4+len(bd)+len(pages))
		b[2] = dsp
		b[3] = byte(len(bd))
	}
	b = append(append(b, bd...), pages...)
	if ten {
		binary.BigEndian.PutUint16(b[0:], uint16(len(b)-2))
	} else {
		b[0] = byte(len(b) - 1)
	}
	x.sendIn(b[:min(alloc, len(b))])
}

// Reporting options of REPORT SUPPORTED OPERATION CODES (SPC-4 6.35.1).
const (
	rsocAll       = 0 // all commands
	rsocOpcode    = 1 // one opcode without service actions
	rsocOpcodeSA  = 2 // one opcode and service action
	rsocOpcodeAny = 3 // one opcode, with or without service action
)

// reportOpcodes implements REPORT SUPPORTED OPERATION CODES (SPC-4 6.35).
func (d *Disk) reportOpcodes(x *exchange) {
	rctd := x.cdb[2]&0x80 != 0
	opts := x.cdb[2] & 0x07
	reqOp := x.cdb[3]
	reqSA := scsi.ServiceAction(binary.BigEndian.Uint16(x.cdb[4:6]))
	alloc := int(binary.BigEndian.Uint32(x.cdb[6:10]))
	var b []byte
	switch opts {
	case rsocAll:
		b = make([]byte, 4, 4+len(d.ordered)*20)
		for _, c := range d.ordered {
			var flags byte
			if rctd {
				flags |= 0x02 // CTDP
			}
			if c.hasSA {
				flags |= 0x01 // SERVACTV
			}
			b = append(b, byte(c.op), 0, byte(c.sa>>8), byte(c.sa), 0, flags, 0, byte(len(c.usage)))
			if rctd {
				b = appendTimeouts(b, c)
			}
		}
		binary.BigEndian.PutUint32(b[0:], uint32(len(b)-4))
	case rsocOpcode, rsocOpcodeSA, rsocOpcodeAny:
		var c *command
		top := d.cmds[reqOp]
		switch {
		case top != nil && top.saTable != nil:
			// The opcode has service actions: reporting option 001b is
			// an error for it (SPC-4 6.35.1).
			if opts == rsocOpcode {
				x.invalidField(2, 2)
				return
			}
			if reqSA <= 0x1f {
				c = top.saTable[reqSA]
			}
		case top != nil && opts == rsocOpcodeSA:
			// Reporting option 010b for an opcode without service
			// actions is an error.
			x.invalidField(2, 2)
			return
		case opts != rsocOpcodeSA:
			c = top
		}
		b = make([]byte, 4, 64)
		if c == nil {
			b[1] = 0x01 // SUPPORT 001b: not supported
		} else {
			b[1] = 0x03 // SUPPORT 011b: supported as the standard says
			if rctd {
				b[1] |= 0x80 // CTDP
			}
			binary.BigEndian.PutUint16(b[2:], uint16(len(c.usage)))
			b = append(b, c.usage...)
			if rctd {
				b = appendTimeouts(b, c)
			}
		}
	default:
		x.invalidField(2, 2)
		return
	}
	x.sendIn(b[:min(alloc, len(b))])
}

// appendTimeouts appends a command timeouts descriptor (SPC-4 6.35.4):
// nominal processing time of one second, recommended timeout c.timeout.
func appendTimeouts(b []byte, c *command) []byte {
	b = append(b, 0, 0x0a, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	return binary.BigEndian.AppendUint32(b, c.timeout)
}
