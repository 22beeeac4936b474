package discover

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Capacity is decoded READ CAPACITY parameter data (SBC-3 5.15, 5.16).
type Capacity struct {
	// LastLBA is the RETURNED LOGICAL BLOCK ADDRESS: the last block.
	LastLBA uint64
	// BlockSize is the logical block length in bytes.
	BlockSize uint32
	// From READ CAPACITY(16) only: protection (P_TYPE+1 when PROT_EN is
	// set, else 0), logical blocks per physical block exponent, logical
	// block provisioning (LBPME) and the lowest aligned LBA.
	Protection          uint8
	PhysicalExponent    uint8
	ThinProvisioned     bool
	LowestAlignedLBA    uint16
	ReadCapacity16Valid bool
}

// Blocks returns the number of logical blocks.
func (c Capacity) Blocks() uint64 { return c.LastLBA + 1 }

// Bytes returns the capacity in bytes and false if it does not fit in 64 bits.
func (c Capacity) Bytes() (uint64, bool) {
	hi, lo := bits.Mul64(c.Blocks(), uint64(c.BlockSize))
	return lo, hi == 0 && c.LastLBA != ^uint64(0)
}

// ParseReadCapacity10 decodes the 8 bytes of READ CAPACITY(10) data. A
// RETURNED LOGICAL BLOCK ADDRESS of FFFFFFFFh means the device is too
// large for it (use READ CAPACITY(16)); it is reported with ErrInvalid.
func ParseReadCapacity10(b []byte) (Capacity, error) {
	if len(b) < 8 {
		return Capacity{}, fmt.Errorf("%w: READ CAPACITY(10) data of %d bytes", ErrShort, len(b))
	}
	c := Capacity{
		LastLBA:   uint64(binary.BigEndian.Uint32(b[0:4])),
		BlockSize: binary.BigEndian.Uint32(b[4:8]),
	}
	if c.LastLBA == 0xffffffff {
		return c, fmt.Errorf("%w: capacity exceeds READ CAPACITY(10)", ErrInvalid)
	}
	if c.BlockSize == 0 {
		return c, fmt.Errorf("%w: logical block length 0", ErrInvalid)
	}
	return c, nil
}

// ParseReadCapacity16 decodes READ CAPACITY(16) data: at least the first
// 12 bytes, the rest (protection, physical block exponent, provisioning)
// when present.
func ParseReadCapacity16(b []byte) (Capacity, error) {
	if len(b) < 12 {
		return Capacity{}, fmt.Errorf("%w: READ CAPACITY(16) data of %d bytes", ErrShort, len(b))
	}
	c := Capacity{
		LastLBA:             binary.BigEndian.Uint64(b[0:8]),
		BlockSize:           binary.BigEndian.Uint32(b[8:12]),
		ReadCapacity16Valid: true,
	}
	if len(b) >= 13 && b[12]&0x01 != 0 {
		c.Protection = (b[12]>>1)&0x07 + 1
	}
	if len(b) >= 14 {
		c.PhysicalExponent = b[13] & 0x0f
	}
	if len(b) >= 16 {
		c.ThinProvisioned = b[14]&0x80 != 0
		c.LowestAlignedLBA = binary.BigEndian.Uint16(b[14:16]) & 0x3fff
	}
	if c.BlockSize == 0 {
		return c, fmt.Errorf("%w: logical block length 0", ErrInvalid)
	}
	if _, ok := c.Bytes(); !ok {
		return c, fmt.Errorf("%w: %d blocks of %d bytes overflow 64 bits", ErrInvalid, c.LastLBA, c.BlockSize)
	}
	return c, nil
}
