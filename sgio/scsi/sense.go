package scsi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sense data response codes (SPC-4 4.5.1).
const (
	RespFixedCurrent       byte = 0x70
	RespFixedDeferred      byte = 0x71
	RespDescriptorCurrent  byte = 0x72
	RespDescriptorDeferred byte = 0x73
)

// FixedSenseLen is the length of the fixed-format sense data this package
// builds: the 18 bytes that hold everything up to SENSE KEY SPECIFIC.
const FixedSenseLen = 18

// Sense data descriptor types (SPC-4 4.5.2.1, table 28).
const (
	descInformation     byte = 0x00
	descCommandSpecific byte = 0x01
	descSenseKeySpec    byte = 0x02
	descFRU             byte = 0x03
	descStreamCommands  byte = 0x04
	descBlockCommands   byte = 0x05
)

// Errors of [ParseSense], for errors.Is.
var (
	// ErrShortSense: the buffer ends before the sense key and ASC/ASCQ.
	ErrShortSense = errors.New("scsi: sense data too short")
	// ErrSenseFormat: the response code is neither 70h-73h.
	ErrSenseFormat = errors.New("scsi: unknown sense data response code")
)

// Sense is decoded sense data, either format (SPC-4 4.5). The zero value
// is current, fixed-format NO SENSE.
type Sense struct {
	// Descriptor selects descriptor format (72h/73h) over fixed (70h/71h).
	Descriptor bool
	// Deferred marks a deferred error (71h/73h) rather than a current one.
	Deferred bool
	// Key is the sense key.
	Key SenseKey
	// ASC is the additional sense code and qualifier.
	ASC ASC
	// InfoValid says Info is meaningful (the VALID bit).
	InfoValid bool
	// Info is the INFORMATION field: for example the first LBA in error,
	// or the offset of the first miscompared byte (SBC-3 VERIFY). Fixed
	// format holds 32 bits; a larger value is sent only in descriptor
	// format (fixed format clears VALID instead, SPC-4 4.5.3).
	Info uint64
	// CommandInfo is the COMMAND-SPECIFIC INFORMATION field.
	CommandInfo uint64
	// Filemark, EOM and ILI are the stream/block command bits.
	Filemark, EOM, ILI bool
	// FRU is the field replaceable unit code.
	FRU byte
	// SKSV says SKS holds sense-key-specific information.
	SKSV bool
	// SKS is the SENSE KEY SPECIFIC field, three bytes, with the SKSV bit
	// (bit 7 of the first byte) cleared. For ILLEGAL REQUEST it is a field
	// pointer; see [Sense.FieldPointer] and [FieldPointerSense].
	SKS [3]byte
}

// NewSense returns current, fixed-format sense data with key and asc.
func NewSense(key SenseKey, asc ASC) Sense { return Sense{Key: key, ASC: asc} }

// FieldPointerSense returns ILLEGAL REQUEST sense data with asc (usually
// [ASCInvalidFieldInCDB] or [ASCInvalidFieldInParamList]) and a
// sense-key-specific field pointer (SPC-4 4.5.2.4.2): inCDB sets C/D (the
// error is in the CDB, not the parameter list), byteOff is the byte that
// holds the bad field and bit, when 0-7, the most significant bit of the
// field within that byte (BPV set); a negative bit leaves BPV clear.
func FieldPointerSense(asc ASC, inCDB bool, byteOff, bit int) Sense {
	s := Sense{Key: SenseIllegalRequest, ASC: asc, SKSV: true}
	if inCDB {
		s.SKS[0] |= 0x40
	}
	if bit >= 0 && bit <= 7 {
		s.SKS[0] |= 0x08 | byte(bit)
	}
	if byteOff < 0 {
		byteOff = 0
	}
	if byteOff > 0xffff {
		byteOff = 0xffff
	}
	binary.BigEndian.PutUint16(s.SKS[1:], uint16(byteOff))
	return s
}

// FieldPointer decodes SKS as a field pointer (ILLEGAL REQUEST): whether
// the field is in the CDB, the byte offset, and the bit (or -1 when BPV is
// clear). ok is false when SKSV is clear.
func (s *Sense) FieldPointer() (inCDB bool, byteOff int, bit int, ok bool) {
	if !s.SKSV {
		return false, 0, -1, false
	}
	bit = -1
	if s.SKS[0]&0x08 != 0 {
		bit = int(s.SKS[0] & 0x07)
	}
	return s.SKS[0]&0x40 != 0, int(binary.BigEndian.Uint16(s.SKS[1:])), bit, true
}

// ResponseCode returns the response code byte the sense data is sent with.
func (s *Sense) ResponseCode() byte {
	switch {
	case s.Descriptor && s.Deferred:
		return RespDescriptorDeferred
	case s.Descriptor:
		return RespDescriptorCurrent
	case s.Deferred:
		return RespFixedDeferred
	}
	return RespFixedCurrent
}

// AppendFixed appends the 18-byte fixed-format encoding of s to dst,
// whatever s.Descriptor says. An Info wider than 32 bits is not
// representable: VALID is cleared and INFORMATION left zero. CommandInfo
// is truncated to 32 bits.
func (s *Sense) AppendFixed(dst []byte) []byte {
	var b [FixedSenseLen]byte
	b[0] = RespFixedCurrent
	if s.Deferred {
		b[0] = RespFixedDeferred
	}
	if s.Info <= 0xffffffff {
		if s.InfoValid {
			b[0] |= 0x80
		}
		binary.BigEndian.PutUint32(b[3:], uint32(s.Info))
	}
	b[2] = byte(s.Key) & 0x0f
	if s.Filemark {
		b[2] |= 0x80
	}
	if s.EOM {
		b[2] |= 0x40
	}
	if s.ILI {
		b[2] |= 0x20
	}
	b[7] = FixedSenseLen - 8
	binary.BigEndian.PutUint32(b[8:], uint32(s.CommandInfo))
	b[12] = s.ASC.Code()
	b[13] = s.ASC.Qualifier()
	b[14] = s.FRU
	if s.SKSV {
		b[15] = 0x80 | s.SKS[0]&0x7f
		b[16] = s.SKS[1]
		b[17] = s.SKS[2]
	}
	return append(dst, b[:]...)
}

// AppendDescriptor appends the descriptor-format encoding of s to dst,
// whatever s.Descriptor says: the 8-byte header followed by an information
// descriptor (when InfoValid or Info is non-zero), a command-specific information descriptor
// (when CommandInfo is non-zero), a sense key specific descriptor (when
// SKSV), a field replaceable unit descriptor (when FRU is non-zero) and a
// block commands descriptor (when ILI) or stream commands descriptor (when
// Filemark or EOM).
func (s *Sense) AppendDescriptor(dst []byte) []byte { return s.appendDescriptor(dst, false) }

// appendDescriptor is AppendDescriptor; with stream set, FILEMARK, EOM
// and ILI always travel in the stream commands descriptor (SSC-4 4.2.22:
// sequential-access devices report ILI there, not in the block commands
// descriptor of SBC).
func (s *Sense) appendDescriptor(dst []byte, stream bool) []byte {
	start := len(dst)
	code := RespDescriptorCurrent
	if s.Deferred {
		code = RespDescriptorDeferred
	}
	dst = append(dst, code, byte(s.Key)&0x0f, s.ASC.Code(), s.ASC.Qualifier(), 0, 0, 0, 0)
	if s.InfoValid || s.Info != 0 {
		valid := byte(0)
		if s.InfoValid {
			valid = 0x80
		}
		dst = append(dst, descInformation, 0x0a, valid, 0)
		dst = binary.BigEndian.AppendUint64(dst, s.Info)
	}
	if s.CommandInfo != 0 {
		dst = append(dst, descCommandSpecific, 0x0a, 0, 0)
		dst = binary.BigEndian.AppendUint64(dst, s.CommandInfo)
	}
	if s.SKSV {
		dst = append(dst, descSenseKeySpec, 0x06, 0, 0, 0x80|s.SKS[0]&0x7f, s.SKS[1], s.SKS[2], 0)
	}
	if s.FRU != 0 {
		dst = append(dst, descFRU, 0x02, 0, s.FRU)
	}
	switch {
	case s.Filemark || s.EOM || stream && s.ILI:
		var f byte
		if s.Filemark {
			f |= 0x80
		}
		if s.EOM {
			f |= 0x40
		}
		if s.ILI {
			f |= 0x20
		}
		dst = append(dst, descStreamCommands, 0x02, 0, f)
	case s.ILI:
		dst = append(dst, descBlockCommands, 0x02, 0, 0x20)
	}
	dst[start+7] = byte(len(dst) - start - 8)
	return dst
}

// Bytes encodes s in the format s.Descriptor selects.
func (s *Sense) Bytes() []byte {
	if s.Descriptor {
		return s.AppendDescriptor(make([]byte, 0, 40))
	}
	return s.AppendFixed(make([]byte, 0, FixedSenseLen))
}

// String summarizes s for logs: "ILLEGAL REQUEST: INVALID FIELD IN CDB
// (byte 1 bit 7)".
func (s Sense) String() string {
	str := s.Key.String() + ": " + s.ASC.String()
	if inCDB, off, bit, ok := s.FieldPointer(); ok && s.Key == SenseIllegalRequest {
		where := "parameter"
		if inCDB {
			where = "CDB"
		}
		if bit >= 0 {
			str += fmt.Sprintf(" (%s byte %d bit %d)", where, off, bit)
		} else {
			str += fmt.Sprintf(" (%s byte %d)", where, off)
		}
	}
	if s.InfoValid {
		str += fmt.Sprintf(" info=0x%x", s.Info)
	}
	return str
}

// FixedSense returns current fixed-format sense data with key and asc.
func FixedSense(key SenseKey, asc ASC) []byte {
	s := NewSense(key, asc)
	return s.AppendFixed(make([]byte, 0, FixedSenseLen))
}

// DescriptorSense returns current descriptor-format sense data with key
// and asc and no descriptors.
func DescriptorSense(key SenseKey, asc ASC) []byte {
	s := NewSense(key, asc)
	return s.AppendDescriptor(make([]byte, 0, 8))
}

// InvalidFieldInCDB returns fixed-format ILLEGAL REQUEST, INVALID FIELD IN
// CDB sense data pointing at byteOff and bit (bit < 0: no bit pointer).
func InvalidFieldInCDB(byteOff, bit int) []byte {
	s := FieldPointerSense(ASCInvalidFieldInCDB, true, byteOff, bit)
	return s.AppendFixed(make([]byte, 0, FixedSenseLen))
}

// InvalidFieldInParamList returns fixed-format ILLEGAL REQUEST, INVALID
// FIELD IN PARAMETER LIST sense data pointing at byteOff and bit of the
// parameter list (bit < 0: no bit pointer).
func InvalidFieldInParamList(byteOff, bit int) []byte {
	s := FieldPointerSense(ASCInvalidFieldInParamList, false, byteOff, bit)
	return s.AppendFixed(make([]byte, 0, FixedSenseLen))
}

// ParseSense decodes fixed- or descriptor-format sense data. It reads only
// what the buffer and the ADDITIONAL SENSE LENGTH both cover, so truncated
// sense data yields whatever fields it holds (a short fixed-format buffer
// that ends before the ASC leaves ASC zero). It fails only when even the
// sense key is missing or the response code is unknown; it never panics.
func ParseSense(b []byte) (Sense, error) {
	var s Sense
	if len(b) == 0 {
		return s, ErrShortSense
	}
	code := b[0] & 0x7f
	switch code {
	case RespFixedCurrent, RespFixedDeferred:
		if len(b) < 3 {
			return s, fmt.Errorf("%w: fixed format, %d bytes", ErrShortSense, len(b))
		}
		s.Deferred = code == RespFixedDeferred
		n := len(b)
		if n >= 8 && 8+int(b[7]) < n {
			n = 8 + int(b[7])
		}
		b = b[:n]
		s.Key = SenseKey(b[2] & 0x0f)
		s.Filemark = b[2]&0x80 != 0
		s.EOM = b[2]&0x40 != 0
		s.ILI = b[2]&0x20 != 0
		if len(b) >= 7 {
			s.InfoValid = b[0]&0x80 != 0
			s.Info = uint64(binary.BigEndian.Uint32(b[3:7]))
		}
		if len(b) >= 12 {
			s.CommandInfo = uint64(binary.BigEndian.Uint32(b[8:12]))
		}
		if len(b) >= 14 {
			s.ASC = NewASC(b[12], b[13])
		} else if len(b) >= 13 {
			s.ASC = NewASC(b[12], 0)
		}
		if len(b) >= 15 {
			s.FRU = b[14]
		}
		if len(b) >= 18 && b[15]&0x80 != 0 {
			s.SKSV = true
			s.SKS = [3]byte{b[15] & 0x7f, b[16], b[17]}
		}
		return s, nil
	case RespDescriptorCurrent, RespDescriptorDeferred:
		if len(b) < 2 {
			return s, fmt.Errorf("%w: descriptor format, %d bytes", ErrShortSense, len(b))
		}
		s.Descriptor = true
		s.Deferred = code == RespDescriptorDeferred
		s.Key = SenseKey(b[1] & 0x0f)
		if len(b) >= 4 {
			s.ASC = NewASC(b[2], b[3])
		} else if len(b) >= 3 {
			s.ASC = NewASC(b[2], 0)
		}
		if len(b) < 8 {
			return s, nil
		}
		end := 8 + int(b[7])
		if end > len(b) {
			end = len(b)
		}
		for p := 8; p+2 <= end; {
			dlen := int(b[p+1])
			if p+2+dlen > end {
				break // truncated descriptor
			}
			d := b[p : p+2+dlen]
			parseDescriptor(&s, d)
			p += 2 + dlen
		}
		return s, nil
	}
	return s, fmt.Errorf("%w: 0x%02x", ErrSenseFormat, b[0])
}

// parseDescriptor fills s from one sense data descriptor d (type, length,
// payload); descriptors too short for their type are ignored.
func parseDescriptor(s *Sense, d []byte) {
	switch d[0] {
	case descInformation:
		if len(d) >= 12 {
			s.InfoValid = d[2]&0x80 != 0
			s.Info = binary.BigEndian.Uint64(d[4:12])
		}
	case descCommandSpecific:
		if len(d) >= 12 {
			s.CommandInfo = binary.BigEndian.Uint64(d[4:12])
		}
	case descSenseKeySpec:
		if len(d) >= 7 && d[4]&0x80 != 0 {
			s.SKSV = true
			s.SKS = [3]byte{d[4] & 0x7f, d[5], d[6]}
		}
	case descFRU:
		if len(d) >= 4 {
			s.FRU = d[3]
		}
	case descStreamCommands:
		if len(d) >= 4 {
			s.Filemark = d[3]&0x80 != 0
			s.EOM = d[3]&0x40 != 0
			s.ILI = d[3]&0x20 != 0
		}
	case descBlockCommands:
		if len(d) >= 4 {
			s.ILI = d[3]&0x20 != 0
		}
	}
}

// ConvertSense re-encodes sense data b in descriptor format (descriptor
// set) or fixed format, as the D_SENSE bit of the Control mode page asks
// (SPC-4 4.5.1, 7.5.8). The conversion keeps every field both formats
// carry: sense key, ASC/ASCQ, current or deferred, INFORMATION with its
// VALID bit, COMMAND-SPECIFIC INFORMATION, the sense-key-specific bytes,
// the FRU code and FILEMARK, EOM and ILI; stream selects the stream
// commands descriptor for ILI (sequential-access devices). What one
// format cannot carry is lost as SPC-4 4.5.3 says: an INFORMATION value
// wider than 32 bits clears VALID in fixed format, and descriptors other
// than those above (vendor-specific ones, ATA status return, progress
// indication) and the additional bytes after byte 17 of fixed format
// are dropped. Sense data already in the wanted format, and data that
// does not parse, are returned as they are (b itself, not a copy).
func ConvertSense(b []byte, descriptor, stream bool) []byte {
	if len(b) == 0 {
		return b
	}
	code := b[0] & 0x7f
	isDesc := code == RespDescriptorCurrent || code == RespDescriptorDeferred
	if isDesc == descriptor {
		return b
	}
	s, err := ParseSense(b)
	if err != nil {
		return b
	}
	if descriptor {
		return s.appendDescriptor(make([]byte, 0, 48), stream)
	}
	return s.AppendFixed(make([]byte, 0, FixedSenseLen))
}

// IsDescriptorSense reports whether b is descriptor-format sense data.
func IsDescriptorSense(b []byte) bool {
	return len(b) > 0 && (b[0]&0x7f == RespDescriptorCurrent || b[0]&0x7f == RespDescriptorDeferred)
}
