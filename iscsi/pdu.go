// Package iscsi implements an iSCSI target (RFC 7143, with the RFC 5048
// corrections folded in): the PDU codec, login and text negotiation, CHAP,
// discovery, sessions and connections, data movement and task management.
// It knows nothing of SG_IO: every SCSI command is handed to a [Handler].
//
// Every PDU starts with a 48-byte Basic Header Segment (RFC 7143 11.2):
//
//	byte  0      1      2      3
//	   +------+------+------+------+
//	 0 |.I| op|F| opcode-specific  |
//	 4 |TotAHS| DataSegmentLength  |
//	 8 | LUN or opcode-specific    |
//	12 |                           |
//	16 | Initiator Task Tag        |
//	20 | opcode-specific fields    |
//	   |          ...              |
//	44 |                           |
//	   +------+------+------+------+
//	48 | AHS (TotalAHSLength*4)    |
//	   | HeaderDigest (optional)   |
//	   | Data segment, padded to 4 |
//	   | DataDigest (optional)     |
//	   +---------------------------+
package iscsi

import (
	"encoding/binary"
	"fmt"
)

// BHSLen is the length of the Basic Header Segment.
const BHSLen = 48

// Opcode is an iSCSI PDU opcode (RFC 7143 11.2.1.2).
type Opcode uint8

// Initiator and target opcodes.
const (
	OpNOPOut          Opcode = 0x00
	OpSCSICommand     Opcode = 0x01
	OpTaskMgmtReq     Opcode = 0x02
	OpLoginReq        Opcode = 0x03
	OpTextReq         Opcode = 0x04
	OpSCSIDataOut     Opcode = 0x05
	OpLogoutReq       Opcode = 0x06
	OpSNACKReq        Opcode = 0x10
	OpNOPIn           Opcode = 0x20
	OpSCSIResponse    Opcode = 0x21
	OpTaskMgmtResp    Opcode = 0x22
	OpLoginResp       Opcode = 0x23
	OpTextResp        Opcode = 0x24
	OpSCSIDataIn      Opcode = 0x25
	OpLogoutResp      Opcode = 0x26
	OpR2T             Opcode = 0x31
	OpAsyncMessage    Opcode = 0x32
	OpReject          Opcode = 0x3f
	opcodeMask        Opcode = 0x3f
	immediateBit      byte   = 0x40
	finalBit          byte   = 0x80
	continueBit       byte   = 0x40
	reservedTag       uint32 = 0xffffffff
	maxDataSegment    uint32 = 1<<24 - 1
	defaultMaxRecvDSL        = 8192
)

// String returns the RFC name of the opcode.
func (o Opcode) String() string {
	switch o {
	case OpNOPOut:
		return "NOP-Out"
	case OpSCSICommand:
		return "SCSI Command"
	case OpTaskMgmtReq:
		return "Task Management Request"
	case OpLoginReq:
		return "Login Request"
	case OpTextReq:
		return "Text Request"
	case OpSCSIDataOut:
		return "SCSI Data-Out"
	case OpLogoutReq:
		return "Logout Request"
	case OpSNACKReq:
		return "SNACK Request"
	case OpNOPIn:
		return "NOP-In"
	case OpSCSIResponse:
		return "SCSI Response"
	case OpTaskMgmtResp:
		return "Task Management Response"
	case OpLoginResp:
		return "Login Response"
	case OpTextResp:
		return "Text Response"
	case OpSCSIDataIn:
		return "SCSI Data-In"
	case OpLogoutResp:
		return "Logout Response"
	case OpR2T:
		return "R2T"
	case OpAsyncMessage:
		return "Asynchronous Message"
	case OpReject:
		return "Reject"
	}
	return fmt.Sprintf("Opcode(%#02x)", uint8(o))
}

// BHS is a Basic Header Segment. Accessors read the common fields at their
// RFC 7143 11.2 offsets; the typed PDU structs decode the rest.
type BHS [BHSLen]byte

// Opcode returns the PDU's opcode.
func (b *BHS) Opcode() Opcode { return Opcode(b[0]) & opcodeMask }

// Immediate reports the I bit.
func (b *BHS) Immediate() bool { return b[0]&immediateBit != 0 }

// Final reports the F bit.
func (b *BHS) Final() bool { return b[1]&finalBit != 0 }

// TotalAHSLength returns the AHS length in bytes.
func (b *BHS) TotalAHSLength() int { return int(b[4]) * 4 }

// DataSegmentLength returns the unpadded data segment length.
func (b *BHS) DataSegmentLength() uint32 {
	return uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
}

// SetDataSegmentLength stores n (which must fit in 24 bits).
func (b *BHS) SetDataSegmentLength(n uint32) {
	b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
}

// ITT returns the Initiator Task Tag.
func (b *BHS) ITT() uint32 { return b.u32(16) }

// LUN returns bytes 8-15 as an 8-byte SAM LUN.
func (b *BHS) LUN() LUN { var l LUN; copy(l[:], b[8:16]); return l }

func (b *BHS) u32(off int) uint32      { return binary.BigEndian.Uint32(b[off:]) }
func (b *BHS) put32(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
func (b *BHS) u16(off int) uint16      { return binary.BigEndian.Uint16(b[off:]) }
func (b *BHS) put16(off int, v uint16) { binary.BigEndian.PutUint16(b[off:], v) }

// padLen returns the padding that brings n to a multiple of four.
func padLen(n int) int { return (4 - n&3) & 3 }

// LUN is an 8-byte SAM-5 logical unit number as carried in PDUs.
type LUN [8]byte

// MakeLUN encodes a LUN number with peripheral device addressing (below
// 256) or flat space addressing (below 16384), as SAM-5 4.7 describes.
func MakeLUN(n uint64) LUN {
	var l LUN
	switch {
	case n < 256:
		l[1] = byte(n)
	default:
		l[0] = 0x40 | byte(n>>8)&0x3f
		l[1] = byte(n)
	}
	return l
}

// Number decodes a single-level LUN in peripheral or flat space addressing.
// ok is false for other address methods or multi-level LUNs, which no
// gateway LUN ever has.
func (l LUN) Number() (n uint64, ok bool) {
	for _, b := range l[2:] {
		if b != 0 {
			return 0, false
		}
	}
	switch l[0] >> 6 {
	case 0: // peripheral device addressing, bus 0
		if l[0]&0x3f != 0 {
			return 0, false
		}
		return uint64(l[1]), true
	case 1: // flat space
		return uint64(l[0]&0x3f)<<8 | uint64(l[1]), true
	}
	return 0, false
}

// String formats the LUN as its number or as hex when it has none.
func (l LUN) String() string {
	if n, ok := l.Number(); ok {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%x", l[:])
}
