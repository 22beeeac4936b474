// Package bot drives USB mass-storage devices over the Bulk-Only
// Transport (USB Mass Storage Class Bulk-Only Transport, revision 1.0,
// "BOT" below) from user space, and presents each logical unit as an
// [sgio.Device]: the gateway passes a USB disk, tape or RDX dock through
// without the kernel's usb-storage or uas driver, its transfer clamp and
// its quirks in between.
//
// Every command is three transactions on the interface's two bulk
// endpoints (BOT 5):
//
//	host -> device  bulk-out  Command Block Wrapper (CBW), 31 bytes
//	either way      bulk-in   data (dCBWDataTransferLength bytes at most)
//	                or -out
//	device -> host  bulk-in   Command Status Wrapper (CSW), 13 bytes
//
// Command Block Wrapper (BOT 5.1), little-endian:
//
//	bytes 0-3   dCBWSignature 43425355h ("USBC")
//	bytes 4-7   dCBWTag, echoed in the CSW
//	bytes 8-11  dCBWDataTransferLength
//	byte  12    bmCBWFlags: bit 7 direction (1 = data-in)
//	byte  13    bCBWLUN (bits 3-0)
//	byte  14    bCBWCBLength (bits 4-0): 1 to 16
//	bytes 15-30 CBWCB: the CDB, zero-padded
//
// Command Status Wrapper (BOT 5.2), little-endian:
//
//	bytes 0-3   dCSWSignature 53425355h ("USBS")
//	bytes 4-7   dCSWTag = dCBWTag
//	bytes 8-11  dCSWDataResidue
//	byte  12    bCSWStatus: 0 passed, 1 failed, 2 phase error
//
// BOT has no tagged queueing and no autosense: one command at a time per
// interface, and a failed command's sense comes from a REQUEST SENSE sent
// right after it. The state machine ([Transport]) talks to the USB stack
// through the small [Link] interface; [Open] provides the libusb one
// (github.com/google/gousb, cgo) unless the binary is built with the
// nousb tag or without cgo, where it fails with [ErrNotBuiltIn].
package bot

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire sizes and signatures (BOT 5.1, 5.2).
const (
	// CBWLen is the length of a Command Block Wrapper.
	CBWLen = 31
	// CSWLen is the length of a Command Status Wrapper.
	CSWLen = 13
	// CBWSignature is dCBWSignature, "USBC" little-endian.
	CBWSignature uint32 = 0x43425355
	// CSWSignature is dCSWSignature, "USBS" little-endian.
	CSWSignature uint32 = 0x53425355
	// MaxCDBLen is the largest CDB a CBW carries.
	MaxCDBLen = 16
	// MaxLUN is the largest LUN BOT addresses (bCBWLUN is 4 bits).
	MaxLUN = 15

	cbwFlagDataIn = 0x80
)

// CBW is a Command Block Wrapper (BOT 5.1).
type CBW struct {
	// Tag associates the CSW with this CBW.
	Tag uint32
	// DataTransferLength is how many bytes the host expects to move in
	// the data phase.
	DataTransferLength uint32
	// DataIn is the direction of the data phase (bmCBWFlags bit 7);
	// ignored when DataTransferLength is zero.
	DataIn bool
	// LUN is the logical unit, 0 to [MaxLUN].
	LUN uint8
	// CDB is the command block, 1 to [MaxCDBLen] bytes.
	CDB []byte
}

// AppendBinary appends the 31-byte wire form of the CBW to dst.
func (c *CBW) AppendBinary(dst []byte) ([]byte, error) {
	if n := len(c.CDB); n < 1 || n > MaxCDBLen {
		return dst, fmt.Errorf("bot: CDB of %d bytes (a CBW carries 1 to %d)", n, MaxCDBLen)
	}
	if c.LUN > MaxLUN {
		return dst, fmt.Errorf("bot: LUN %d (a CBW addresses 0 to %d)", c.LUN, MaxLUN)
	}
	var b [CBWLen]byte
	binary.LittleEndian.PutUint32(b[0:], CBWSignature)
	binary.LittleEndian.PutUint32(b[4:], c.Tag)
	binary.LittleEndian.PutUint32(b[8:], c.DataTransferLength)
	if c.DataIn && c.DataTransferLength > 0 {
		b[12] = cbwFlagDataIn
	}
	b[13] = c.LUN
	b[14] = byte(len(c.CDB))
	copy(b[15:], c.CDB)
	return append(dst, b[:]...), nil
}

// ParseCBW decodes a Command Block Wrapper. It checks what BOT 6.2.1
// asks a device to check ("valid": 31 bytes and the signature) and
// "meaningful" (6.2.2: reserved bits zero, bCBWCBLength 1 to 16).
func ParseCBW(b []byte) (CBW, error) {
	if len(b) != CBWLen {
		return CBW{}, fmt.Errorf("%w: %d bytes, a CBW has %d", ErrInvalidCBW, len(b), CBWLen)
	}
	if sig := binary.LittleEndian.Uint32(b[0:]); sig != CBWSignature {
		return CBW{}, fmt.Errorf("%w: signature %#08x", ErrInvalidCBW, sig)
	}
	if b[12]&^cbwFlagDataIn != 0 || b[13]&0xf0 != 0 || b[14]&0xe0 != 0 {
		return CBW{}, fmt.Errorf("%w: reserved bits set", ErrInvalidCBW)
	}
	n := int(b[14])
	if n < 1 || n > MaxCDBLen {
		return CBW{}, fmt.Errorf("%w: bCBWCBLength %d", ErrInvalidCBW, n)
	}
	return CBW{
		Tag:                binary.LittleEndian.Uint32(b[4:]),
		DataTransferLength: binary.LittleEndian.Uint32(b[8:]),
		DataIn:             b[12]&cbwFlagDataIn != 0,
		LUN:                b[13],
		CDB:                b[15 : 15+n],
	}, nil
}

// CSWStatus is bCSWStatus (BOT 5.2, table 5.3).
type CSWStatus uint8

// Command status values. 03h-FFh are reserved.
const (
	CSWPassed     CSWStatus = 0x00 // command passed ("good status")
	CSWFailed     CSWStatus = 0x01 // command failed: sense data follows a REQUEST SENSE
	CSWPhaseError CSWStatus = 0x02 // phase error: the host does a reset recovery
)

// String returns the status's name.
func (s CSWStatus) String() string {
	switch s {
	case CSWPassed:
		return "passed"
	case CSWFailed:
		return "failed"
	case CSWPhaseError:
		return "phase error"
	}
	return fmt.Sprintf("CSWStatus(%#02x)", uint8(s))
}

// CSW is a Command Status Wrapper (BOT 5.2).
type CSW struct {
	// Tag echoes the CBW's tag.
	Tag uint32
	// DataResidue is the difference between the CBW's
	// DataTransferLength and what the device processed.
	DataResidue uint32
	// Status is the command's outcome.
	Status CSWStatus
}

// AppendBinary appends the 13-byte wire form of the CSW to dst.
func (c *CSW) AppendBinary(dst []byte) ([]byte, error) {
	var b [CSWLen]byte
	binary.LittleEndian.PutUint32(b[0:], CSWSignature)
	binary.LittleEndian.PutUint32(b[4:], c.Tag)
	binary.LittleEndian.PutUint32(b[8:], c.DataResidue)
	b[12] = byte(c.Status)
	return append(dst, b[:]...), nil
}

// Errors of the wrapper codecs and the transport's protocol checks; the
// transport reports them wrapped, and answers each with a reset recovery.
var (
	// ErrInvalidCBW: a CBW that is not valid or not meaningful (BOT 6.2).
	ErrInvalidCBW = errors.New("bot: invalid CBW")
	// ErrInvalidCSW: a CSW that is not valid (BOT 6.3.1: not 13 bytes,
	// wrong signature, or a tag other than the CBW's).
	ErrInvalidCSW = errors.New("bot: invalid CSW")
	// ErrMeaninglessCSW: a valid CSW that is not meaningful (BOT 6.3.2:
	// a reserved status, or a residue larger than the transfer length).
	ErrMeaninglessCSW = errors.New("bot: CSW not meaningful")
)

// ParseCSW decodes a Command Status Wrapper and checks that it is valid
// (BOT 6.3.1): exactly 13 bytes with the CSW signature. Whether its tag
// matches and it is meaningful depends on the CBW: see [CSW.Check].
func ParseCSW(b []byte) (CSW, error) {
	// BOT 6.3.1: "The CSW is valid if ... the CSW is 13 (Dh) bytes in
	// size, ... dCSWSignature is equal to 53425355h".
	if len(b) != CSWLen {
		return CSW{}, fmt.Errorf("%w: %d bytes, a CSW has %d", ErrInvalidCSW, len(b), CSWLen)
	}
	if sig := binary.LittleEndian.Uint32(b[0:]); sig != CSWSignature {
		return CSW{}, fmt.Errorf("%w: signature %#08x", ErrInvalidCSW, sig)
	}
	return CSW{
		Tag:         binary.LittleEndian.Uint32(b[4:]),
		DataResidue: binary.LittleEndian.Uint32(b[8:]),
		Status:      CSWStatus(b[12]),
	}, nil
}

// Check completes the validity check of a parsed CSW against the CBW it
// answers (BOT 6.3.1: "the dCSWTag matches the dCBWTag from the
// corresponding CBW") and checks that it is meaningful (6.3.2: status
// passed or failed with dCSWDataResidue <= dCBWDataTransferLength, or a
// phase error).
func (c *CSW) Check(cbw *CBW) error {
	if c.Tag != cbw.Tag {
		return fmt.Errorf("%w: tag %#08x, the CBW's was %#08x", ErrInvalidCSW, c.Tag, cbw.Tag)
	}
	switch c.Status {
	case CSWPassed, CSWFailed:
		if c.DataResidue > cbw.DataTransferLength {
			return fmt.Errorf("%w: residue %d exceeds the transfer length %d", ErrMeaninglessCSW, c.DataResidue, cbw.DataTransferLength)
		}
	case CSWPhaseError:
	default:
		return fmt.Errorf("%w: status %v", ErrMeaninglessCSW, c.Status)
	}
	return nil
}
