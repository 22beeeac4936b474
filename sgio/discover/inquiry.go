package discover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Errors of the decoders, for errors.Is.
var (
	// ErrShort: the data ends before a mandatory field.
	ErrShort = errors.New("discover: data too short")
	// ErrPageCode: a VPD page carries another page code than asked for.
	ErrPageCode = errors.New("discover: unexpected VPD page code")
	// ErrTruncated: a length field points past the end of the data; what
	// precedes it was decoded.
	ErrTruncated = errors.New("discover: data truncated")
	// ErrInvalid: a field holds a value the standard does not allow.
	ErrInvalid = errors.New("discover: invalid data")
)

// VPD page codes used by discovery.
const (
	PageSupported      byte = 0x00 // Supported VPD Pages (SPC-4 7.8.16)
	PageUnitSerial     byte = 0x80 // Unit Serial Number (SPC-4 7.8.17)
	PageIdentification byte = 0x83 // Device Identification (SPC-4 7.8.6)
)

// Inquiry is decoded standard INQUIRY data (SPC-4 6.4.2).
type Inquiry struct {
	// Qualifier is the peripheral qualifier: 0 a device is connected,
	// 1 not connected now, 3 no logical unit at this LUN.
	Qualifier uint8
	// Type is the peripheral device type.
	Type PeripheralType
	// Removable is the RMB bit.
	Removable bool
	// Version is the claimed standard (0x06 = SPC-4).
	Version uint8
	// ResponseFormat should be 2.
	ResponseFormat uint8
	// Vendor (T10 vendor identification), Product and Revision, with
	// padding trimmed and unprintable bytes replaced by '?'. They are
	// empty when the data is too short to hold them.
	Vendor, Product, Revision string
}

// ParseInquiry decodes standard INQUIRY data. It needs the first 5 bytes;
// the identification strings are decoded as far as the data (and its
// ADDITIONAL LENGTH) reaches.
func ParseInquiry(b []byte) (Inquiry, error) {
	if len(b) < 5 {
		return Inquiry{}, fmt.Errorf("%w: standard INQUIRY data of %d bytes", ErrShort, len(b))
	}
	inq := Inquiry{
		Qualifier:      b[0] >> 5,
		Type:           PeripheralType(b[0] & 0x1f),
		Removable:      b[1]&0x80 != 0,
		Version:        b[2],
		ResponseFormat: b[3] & 0x0f,
	}
	end := min(len(b), 5+int(b[4]))
	field := func(from, to int) string {
		if from >= end {
			return ""
		}
		return cleanASCII(b[from:min(to, end)])
	}
	inq.Vendor = field(8, 16)
	inq.Product = field(16, 32)
	inq.Revision = field(32, 36)
	return inq, nil
}

// vpdPayload checks a VPD page header (SPC-4 7.8.1) and returns the page
// contents after the 4-byte header, cut at PAGE LENGTH. The error is
// ErrTruncated when the data ends before PAGE LENGTH does; the payload
// is then what there is.
func vpdPayload(b []byte, page byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: VPD page %02xh of %d bytes", ErrShort, page, len(b))
	}
	if b[1] != page {
		return nil, fmt.Errorf("%w: %02xh, want %02xh", ErrPageCode, b[1], page)
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+n > len(b) {
		return b[4:], fmt.Errorf("%w: VPD page %02xh says %d bytes, has %d", ErrTruncated, page, n, len(b)-4)
	}
	return b[4 : 4+n], nil
}

// ParseSupportedPages decodes the Supported VPD Pages page (00h): the
// list of page codes the device implements.
func ParseSupportedPages(b []byte) ([]byte, error) {
	p, err := vpdPayload(b, PageSupported)
	if p == nil {
		return nil, err
	}
	return append([]byte(nil), p...), err
}

// ParseUnitSerial decodes the Unit Serial Number page (80h). The serial
// is trimmed of the space and NUL padding devices use; unprintable bytes
// become '?'.
func ParseUnitSerial(b []byte) (string, error) {
	p, err := vpdPayload(b, PageUnitSerial)
	if p == nil {
		return "", err
	}
	return cleanASCII(p), err
}

// cleanASCII turns device-supplied bytes into a printable string: NULs
// count as padding, other bytes outside 20h-7Eh become '?', leading and
// trailing blanks are removed. Output of discovery goes to terminals and
// JSON, so it must not carry control characters.
func cleanASCII(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		switch {
		case c == 0:
			sb.WriteByte(' ')
		case c < 0x20 || c > 0x7e:
			sb.WriteByte('?')
		default:
			sb.WriteByte(c)
		}
	}
	return strings.TrimSpace(sb.String())
}
