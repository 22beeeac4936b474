package emul

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// Defaults of [Config].
const (
	DefaultBlockSize        = 512
	DefaultVendor           = "SANBRDG"
	DefaultProduct          = "EMULATED DISK"
	DefaultRevision         = "0001"
	DefaultMaxTransferBytes = 8 << 20
	DefaultQueueDepth       = 64
	// MaxSerial is the longest unit serial number accepted.
	MaxSerial = 64
	// MaxWriteSameBlocks is the MAXIMUM WRITE SAME LENGTH reported in the
	// Block Limits VPD page and enforced.
	MaxWriteSameBlocks = 0xffff
	// MaxCompareAndWriteBlocks is the MAXIMUM COMPARE AND WRITE LENGTH:
	// every length the CDB can express.
	MaxCompareAndWriteBlocks = 255
	// MaxUnmapDescriptors is the MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
	MaxUnmapDescriptors = 256
	// MaxUnmapBlocks is the MAXIMUM UNMAP LBA COUNT: FFFFFFFFh, no limit
	// (SBC-3 6.5.3).
	MaxUnmapBlocks = 0xffffffff
)

// ErrConfig is wrapped by every configuration error of [New].
var ErrConfig = errors.New("emul: invalid configuration")

// Config describes an emulated disk.
type Config struct {
	// SizeBytes is the capacity, a positive multiple of BlockSize. With a
	// File it may be zero: the file's size (rounded down to whole blocks)
	// is used.
	SizeBytes int64
	// BlockSize is the logical block size: 512 (default) or 4096.
	BlockSize int
	// File is the backing file. Empty means memory: a sparse store that
	// allocates 64 KiB chunks on first write and frees them on UNMAP. A
	// file is created if missing and extended (sparsely) to SizeBytes if
	// shorter; an existing block device is used as-is.
	File string
	// ReadOnly write-protects the disk (DATA PROTECT, WRITE PROTECTED);
	// a file is then opened read-only and must exist.
	ReadOnly bool
	// FullyProvisioned disables thin provisioning: no UNMAP, no WRITE SAME
	// with UNMAP, no GET LBA STATUS, LBPME clear.
	FullyProvisioned bool
	// Vendor (at most 8 bytes), Product (16) and Revision (4) are the
	// standard INQUIRY identification, printable ASCII; empty means the
	// Default* value.
	Vendor, Product, Revision string
	// Serial is the unit serial number (VPD page 80h), printable ASCII
	// without spaces, at most MaxSerial bytes. Empty means one derived from
	// File, or a random one for a memory disk.
	Serial string
	// NAA is the logical unit's NAA designator (VPD page 83h), 8 bytes
	// (NAA 2, 3 or 5) or 16 bytes (NAA 6). Nil means an NAA-6 derived
	// from CompanyID and a hash of Vendor, Product and Serial, stable for
	// a given serial.
	NAA []byte
	// CompanyID is the 24-bit IEEE company identifier of a derived NAA-6
	// designator. Zero is a placeholder; an appliance sets its own.
	CompanyID uint32
	// MaxTransferBytes is the largest transfer of one command, a multiple
	// of BlockSize; default DefaultMaxTransferBytes. It is reported as the
	// MAXIMUM TRANSFER LENGTH in the Block Limits VPD page and enforced.
	MaxTransferBytes int
	// QueueDepth is the concurrency reported by Limits; default
	// DefaultQueueDepth. The disk itself has no queue.
	QueueDepth int
	// Logger receives I/O errors of the backing file. The zero value logs
	// nothing.
	Logger zerolog.Logger
}

// normalize fills defaults and validates c; it returns the first problem.
func (c *Config) normalize() error {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.BlockSize != 512 && c.BlockSize != 4096 {
		return fmt.Errorf("%w: block size %d is neither 512 nor 4096", ErrConfig, c.BlockSize)
	}
	if c.SizeBytes < 0 || (c.SizeBytes == 0 && c.File == "") {
		return fmt.Errorf("%w: size %d bytes", ErrConfig, c.SizeBytes)
	}
	if c.SizeBytes%int64(c.BlockSize) != 0 {
		return fmt.Errorf("%w: size %d is not a multiple of the block size %d", ErrConfig, c.SizeBytes, c.BlockSize)
	}
	var err error
	if c.Vendor, err = inquiryString("vendor", c.Vendor, DefaultVendor, 8); err != nil {
		return err
	}
	if c.Product, err = inquiryString("product", c.Product, DefaultProduct, 16); err != nil {
		return err
	}
	if c.Revision, err = inquiryString("revision", c.Revision, DefaultRevision, 4); err != nil {
		return err
	}
	if c.Serial == "" {
		if c.File != "" {
			sum := sha256.Sum256([]byte(c.File))
			c.Serial = hex.EncodeToString(sum[:8])
		} else {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("emul: random serial: %w", err)
			}
			c.Serial = hex.EncodeToString(b[:])
		}
	}
	if len(c.Serial) > MaxSerial || !printable(c.Serial) || strings.ContainsRune(c.Serial, ' ') {
		return fmt.Errorf("%w: serial %q is not at most %d printable ASCII characters without spaces", ErrConfig, c.Serial, MaxSerial)
	}
	if c.CompanyID > 0xffffff {
		return fmt.Errorf("%w: company id %#x is wider than 24 bits", ErrConfig, c.CompanyID)
	}
	if c.NAA == nil {
		c.NAA = deriveNAA6(c.CompanyID, c.Vendor, c.Product, c.Serial)
	}
	if err := checkNAA(c.NAA); err != nil {
		return err
	}
	if c.MaxTransferBytes == 0 {
		c.MaxTransferBytes = DefaultMaxTransferBytes
	}
	if c.MaxTransferBytes < c.BlockSize || c.MaxTransferBytes%c.BlockSize != 0 {
		return fmt.Errorf("%w: max transfer %d bytes is not a positive multiple of the block size %d", ErrConfig, c.MaxTransferBytes, c.BlockSize)
	}
	if c.QueueDepth == 0 {
		c.QueueDepth = DefaultQueueDepth
	}
	if c.QueueDepth < 0 {
		return fmt.Errorf("%w: queue depth %d", ErrConfig, c.QueueDepth)
	}
	return nil
}

// inquiryString validates an INQUIRY identification string.
func inquiryString(what, v, def string, max int) (string, error) {
	if v == "" {
		return def, nil
	}
	if len(v) > max || !printable(v) {
		return "", fmt.Errorf("%w: %s %q is not at most %d printable ASCII characters", ErrConfig, what, v, max)
	}
	return v, nil
}

// printable reports whether s is ASCII 20h-7Eh only (SPC-4 4.4.1).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// deriveNAA6 builds an NAA IEEE Registered Extended designator (SPC-4
// 7.8.6.6.5): NAA 6h, the 24-bit company id, then 100 bits of a SHA-256
// of vendor, product and serial.
func deriveNAA6(companyID uint32, vendor, product, serial string) []byte {
	h := sha256.Sum256([]byte(vendor + "\x00" + product + "\x00" + serial))
	b := make([]byte, 16)
	b[0] = 0x60 | byte(companyID>>20)&0x0f
	b[1] = byte(companyID >> 12)
	b[2] = byte(companyID >> 4)
	b[3] = byte(companyID<<4) | h[0]&0x0f
	copy(b[4:], h[1:13])
	return b
}

// checkNAA validates an NAA designator's length against its NAA field.
func checkNAA(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty NAA designator", ErrConfig)
	}
	naa := b[0] >> 4
	switch {
	case (naa == 2 || naa == 3 || naa == 5) && len(b) == 8:
		return nil
	case naa == 6 && len(b) == 16:
		return nil
	}
	return fmt.Errorf("%w: NAA designator % x: NAA %d with %d bytes", ErrConfig, b, naa, len(b))
}
