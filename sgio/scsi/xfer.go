package scsi

import (
	"encoding/binary"
	"fmt"
)

// DeviceType is the PERIPHERAL DEVICE TYPE of the standard INQUIRY data
// (SPC-4 6.6.2): which command set gives an operation code its meaning.
type DeviceType uint8

// Peripheral device types (SPC-4 table 141).
const (
	TypeDisk        DeviceType = 0x00 // direct access block device (SBC)
	TypeTape        DeviceType = 0x01 // sequential access device (SSC)
	TypePrinter     DeviceType = 0x02
	TypeProcessor   DeviceType = 0x03
	TypeWORM        DeviceType = 0x04 // write-once device (SBC)
	TypeCDROM       DeviceType = 0x05 // CD/DVD device (MMC)
	TypeOptical     DeviceType = 0x07 // optical memory device (SBC)
	TypeChanger     DeviceType = 0x08 // media changer (SMC)
	TypeRAID        DeviceType = 0x0c // storage array controller (SCC)
	TypeEnclosure   DeviceType = 0x0d // enclosure services (SES)
	TypeRBC         DeviceType = 0x0e // simplified direct access (RBC)
	TypeZBC         DeviceType = 0x14 // host managed zoned block device (ZBC)
	TypeWellKnownLU DeviceType = 0x1e
	TypeUnknown     DeviceType = 0x1f // unknown or no device type
)

// String names the device type.
func (t DeviceType) String() string {
	switch t {
	case TypeDisk:
		return "disk"
	case TypeTape:
		return "tape"
	case TypePrinter:
		return "printer"
	case TypeProcessor:
		return "processor"
	case TypeWORM:
		return "write-once"
	case TypeCDROM:
		return "cd/dvd"
	case TypeOptical:
		return "optical"
	case TypeChanger:
		return "changer"
	case TypeRAID:
		return "raid-controller"
	case TypeEnclosure:
		return "enclosure"
	case TypeRBC:
		return "rbc"
	case TypeZBC:
		return "zoned-block"
	case TypeWellKnownLU:
		return "well-known-lu"
	case TypeUnknown:
		return "unknown"
	}
	return fmt.Sprintf("DeviceType(0x%02x)", uint8(t))
}

// blockAddressed reports whether the type's READ/WRITE family addresses
// logical blocks as SBC does (MMC's READ(10)/(12) and WRITE(10)/(12) do
// too).
func (t DeviceType) blockAddressed() bool {
	switch t {
	case TypeDisk, TypeWORM, TypeCDROM, TypeOptical, TypeRBC, TypeZBC:
		return true
	}
	return false
}

// Transfer is how much data a CDB itself asks to move: its TRANSFER
// LENGTH (in blocks or bytes), ALLOCATION LENGTH or PARAMETER LIST
// LENGTH, in bytes per direction. An allocation length is an upper bound
// (the device may return less); the others are exact. A transport sizes
// its buffers from this rather than from what the initiator announces.
type Transfer struct {
	// Known is false when the decoder does not know the command (or its
	// CDB is malformed, or its length depends on a block size that is
	// not known): In and Out are then 0 and mean nothing.
	Known bool
	// In and Out are the data-in and data-out bytes.
	In, Out uint64
	// Block is set for block commands (SBC READ, WRITE, VERIFY, WRITE
	// SAME, ...): LBA and Blocks are the range they address, also when
	// Known is false for lack of a block size. Blocks 0 means no blocks,
	// or "through the last LBA" for the commands where SBC says so.
	Block  bool
	LBA    uint64
	Blocks uint64
}

// InRange reports whether the blocks a block command addresses lie
// within a medium of capacity logical blocks (SBC-4 4.5: otherwise
// LOGICAL BLOCK ADDRESS OUT OF RANGE). Commands that are not block
// commands are always in range.
func (t Transfer) InRange(capacity uint64) bool {
	if !t.Block {
		return true
	}
	return t.LBA <= capacity && t.Blocks <= capacity-t.LBA
}

// xferDir is a rule's data direction.
type xferDir uint8

const (
	xferUnknown xferDir = iota // zero value: the command is not known
	xferNone                   // no data
	xferIn                     // data-in
	xferOut                    // data-out
)

// xferRule says where an operation code keeps its length: width bytes
// big-endian at off, or a fixed length n when width is 0.
type xferRule struct {
	dir   xferDir
	off   uint8
	width uint8
	n     uint16
}

func noData() xferRule                 { return xferRule{dir: xferNone} }
func lenIn(off, width uint8) xferRule  { return xferRule{dir: xferIn, off: off, width: width} }
func lenOut(off, width uint8) xferRule { return xferRule{dir: xferOut, off: off, width: width} }
func fixedIn(n uint16) xferRule        { return xferRule{dir: xferIn, n: n} }

// apply reads the rule's length from c (whose length CDBLen checked).
func (r xferRule) apply(c []byte) Transfer {
	var n uint64
	switch {
	case r.dir == xferUnknown:
		return Transfer{}
	case r.width == 0:
		n = uint64(r.n)
	default:
		end := int(r.off) + int(r.width)
		if end > len(c) {
			return Transfer{}
		}
		for _, b := range c[r.off:end] {
			n = n<<8 | uint64(b)
		}
	}
	t := Transfer{Known: true}
	switch r.dir {
	case xferIn:
		t.In = n
	case xferOut:
		t.Out = n
	}
	return t
}

// spcRules are the commands of every device type (SPC-4 6, SPC-2 for
// RESERVE/RELEASE): where each keeps its allocation or parameter list
// length.
var spcRules = [256]xferRule{
	OpTestUnitReady:             noData(),
	OpRequestSense:              lenIn(4, 1),
	OpInquiry:                   lenIn(3, 2),
	OpModeSelect6:               lenOut(4, 1),
	OpReserve6:                  lenOut(3, 2), // SPC-2: extent list (obsolete, 0)
	OpRelease6:                  noData(),
	OpModeSense6:                lenIn(4, 1),
	OpStartStopUnit:             noData(), // also LOAD UNLOAD (SSC), STOP PRINT
	OpReceiveDiagnosticResults:  lenIn(3, 2),
	OpSendDiagnostic:            lenOut(3, 2),
	OpPreventAllowMediumRemoval: noData(),
	OpWriteBuffer:               lenOut(6, 3),
	OpReadBuffer:                lenIn(6, 3),
	OpLogSelect:                 lenOut(7, 2),
	OpLogSense:                  lenIn(7, 2),
	OpModeSelect10:              lenOut(7, 2),
	OpReserve10:                 lenOut(7, 2),
	OpRelease10:                 lenOut(7, 2),
	OpModeSense10:               lenIn(7, 2),
	OpPersistentReserveIn:       lenIn(7, 2),
	OpPersistentReserveOut:      lenOut(5, 4),
	OpExtendedCopy:              lenOut(10, 4), // THIRD-PARTY COPY OUT: every service action
	OpReceiveCopyResults:        lenIn(10, 4),  // THIRD-PARTY COPY IN: every service action
	OpReadAttribute:             lenIn(10, 4),
	OpWriteAttribute:            lenOut(10, 4),
	OpReportLUNs:                lenIn(6, 4),
	OpMaintenanceIn:             lenIn(6, 4), // every SPC-4 service action (REPORT ...)
	OpMaintenanceOut:            lenOut(6, 4),
	OpReadMediaSerialNumber:     lenIn(6, 4),
}

// sbcRules are the block device commands other than the READ/WRITE
// family (which DecodeRW decodes): SBC-4 5 and ZBC.
var sbcRules = [256]xferRule{
	OpReadCapacity10:   fixedIn(8),
	OpReadDefectData10: lenIn(7, 2),
	OpReadDefectData12: lenIn(6, 4),
	OpReadLong10:       lenIn(7, 2),
	OpWriteLong10:      lenOut(7, 2),
	OpUnmap:            lenOut(7, 2),
	OpSanitize:         lenOut(7, 2),
	OpSeek10:           noData(),
	OpZBCOut:           noData(),
	OpZBCIn:            lenIn(10, 4),
}

// sscRules are the sequential access commands (SSC-4 7, 8) whose lengths
// are plain; the READ/WRITE family with its FIXED bit is decoded apart.
var sscRules = [256]xferRule{
	OpRewind:           noData(),
	OpFormatMedium:     lenOut(3, 2),
	OpWriteFilemarks6:  noData(),
	OpSpace6:           noData(),
	OpErase6:           noData(),
	OpLocate10:         noData(),
	OpReportDensity:    lenIn(7, 2),
	OpWriteFilemarks16: noData(),
	OpAllowOverwrite:   noData(),
	OpSpace16:          noData(),
	OpLocate16:         noData(),
	OpErase16:          noData(),
	OpSetCapacity:      noData(),
	OpReadBlockLimits:  fixedIn(6),
}

// smcRules are the media changer commands (SMC-3 6).
var smcRules = [256]xferRule{
	OpInitializeElementStatus:          noData(),
	OpInitializeElementStatusWithRange: noData(),
	OpPositionToElement:                noData(),
	OpMoveMedium:                       noData(),
	OpExchangeMedium:                   noData(),
	OpReadElementStatus:                lenIn(7, 3),
	OpSendVolumeTag:                    lenOut(8, 2),
}

// DataTransfer returns how much data cdb itself asks to move, for a
// logical unit of device type dt whose logical blocks are blockSize
// bytes (0 when unknown: block commands that move data are then not
// Known). It decodes the commands of SPC-4 for every type, SBC-4 (READ,
// WRITE, WRITE AND VERIFY, VERIFY with BYTCHK, WRITE SAME, COMPARE AND
// WRITE, ORWRITE, WRITE ATOMIC, UNMAP, READ CAPACITY, GET LBA STATUS,
// ...) for block devices, SSC-4 READ/WRITE with the FIXED bit for tapes,
// and the SMC-3 commands for changers; anything else is not Known. It
// never panics.
func DataTransfer(cdb []byte, dt DeviceType, blockSize uint32) Transfer {
	n, err := CDBLen(cdb)
	if err != nil {
		return Transfer{}
	}
	c := cdb[:n]
	op := Opcode(c[0])
	be := binary.BigEndian
	switch {
	case dt.blockAddressed():
		if isRWOpcode(op) && (dt != TypeCDROM || op != OpVariableLength) {
			r, err := DecodeRW(c)
			if err != nil {
				return Transfer{}
			}
			return blockTransfer(&r, blockSize)
		}
		switch op {
		case OpFormatUnit:
			if dt == TypeCDROM {
				return Transfer{} // MMC FORMAT UNIT: always a parameter list
			}
			if c[1]&0x10 != 0 {
				// FMTDATA: a parameter list whose length is in its own
				// header, not in the CDB.
				return Transfer{}
			}
			return Transfer{Known: true}
		case OpServiceActionIn16:
			if dt == TypeCDROM {
				return Transfer{}
			}
			switch ServiceAction(c[1] & 0x1f) {
			case SAReadCapacity16, SAGetLBAStatus, SAReportReferrals:
				return lenIn(10, 4).apply(c)
			case SAReadLong16:
				return lenIn(12, 2).apply(c)
			}
			return Transfer{}
		case OpServiceActionOut16:
			if dt != TypeCDROM && ServiceAction(c[1]&0x1f) == SAWriteLong16 {
				return lenOut(12, 2).apply(c)
			}
			return Transfer{}
		}
		if r := sbcRules[op]; r.dir != xferUnknown && dt != TypeCDROM {
			return r.apply(c)
		}
	case dt == TypeTape:
		switch op {
		case OpRead6, OpWrite6, OpReadReverse6, OpRecoverBufferedData:
			return tapeTransfer(op != OpWrite6, c[1]&0x01 != 0, uint64(c[2])<<16|uint64(be.Uint16(c[3:5])), blockSize)
		case OpRead16, OpWrite16:
			return tapeTransfer(op == OpRead16, c[1]&0x01 != 0, uint64(c[12])<<16|uint64(be.Uint16(c[13:15])), blockSize)
		case OpVerify6:
			if c[1]&0x02 == 0 {
				return Transfer{Known: true} // BYTCMP=0: the medium is only read
			}
			return tapeTransfer(false, c[1]&0x01 != 0, uint64(c[2])<<16|uint64(be.Uint16(c[3:5])), blockSize)
		case OpReadBlockLimits:
			if c[1]&0x01 != 0 {
				return fixedIn(20).apply(c) // MLOC: the maximum logical object identifier form
			}
		case OpReadPosition:
			switch c[1] & 0x1f {
			case 0x00, 0x01: // SHORT FORM
				return fixedIn(20).apply(c)
			case 0x06: // LONG FORM
				return fixedIn(32).apply(c)
			case 0x08: // EXTENDED FORM
				return lenIn(7, 2).apply(c)
			}
			return Transfer{}
		}
		if r := sscRules[op]; r.dir != xferUnknown {
			return r.apply(c)
		}
	case dt == TypeChanger:
		if op == OpSecurityProtocolOut {
			return Transfer{}
		}
		if r := smcRules[op]; r.dir != xferUnknown {
			return r.apply(c)
		}
	}
	switch op {
	case OpSecurityProtocolIn, OpSecurityProtocolOut:
		// SPC-4 6.30, 6.31: INC_512 counts the length in 512-byte units.
		t := lenIn(6, 4)
		if op == OpSecurityProtocolOut {
			t = lenOut(6, 4)
		}
		x := t.apply(c)
		if c[4]&0x80 != 0 {
			x.In, x.Out = x.In*512, x.Out*512
		}
		return x
	case OpReadMediaSerialNumber:
		if c[1]&0x1f != 0x01 {
			return Transfer{}
		}
	}
	return spcRules[op].apply(c)
}

// blockTransfer is the transfer of a decoded block command.
func blockTransfer(r *RW, blockSize uint32) Transfer {
	t := Transfer{Block: true, LBA: r.LBA, Blocks: uint64(r.Blocks)}
	nb := r.DataBlocks()
	if nb == 0 {
		t.Known = true
		return t
	}
	if blockSize == 0 {
		return t
	}
	t.Known = true
	if r.DataIn() {
		t.In = nb * uint64(blockSize)
	} else {
		t.Out = nb * uint64(blockSize)
	}
	return t
}

// tapeTransfer is the transfer of an SSC READ/WRITE-family command: with
// FIXED set, length counts blocks of the current fixed block size (not
// Known when the device is in variable-block mode, blockSize 0);
// otherwise it counts bytes.
func tapeTransfer(in, fixed bool, length uint64, blockSize uint32) Transfer {
	if fixed {
		if blockSize == 0 {
			return Transfer{}
		}
		length *= uint64(blockSize)
	}
	if in {
		return Transfer{Known: true, In: length}
	}
	return Transfer{Known: true, Out: length}
}
