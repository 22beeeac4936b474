package discover

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CodeSet is the encoding of a designator (SPC-4 7.8.6.1, table 590).
type CodeSet uint8

// Code sets.
const (
	CodeSetBinary CodeSet = 1
	CodeSetASCII  CodeSet = 2
	CodeSetUTF8   CodeSet = 3
)

// String names the code set.
func (c CodeSet) String() string {
	switch c {
	case CodeSetBinary:
		return "binary"
	case CodeSetASCII:
		return "ascii"
	case CodeSetUTF8:
		return "utf8"
	}
	return fmt.Sprintf("codeset-%d", uint8(c))
}

// MarshalText encodes the code set as its name.
func (c CodeSet) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (c *CodeSet) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(b, 0xf, func(i int) string { return CodeSet(i).String() })
	*c = CodeSet(v)
	return err
}

// unmarshalEnum finds the value in 0..max whose name is b.
func unmarshalEnum(b []byte, max int, name func(int) string) (int, error) {
	for i := 0; i <= max; i++ {
		if name(i) == string(b) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("discover: unknown name %q", b)
}

// Association is what a designator identifies (SPC-4 table 591).
type Association uint8

// Associations.
const (
	AssocLU           Association = 0 // the logical unit
	AssocTargetPort   Association = 1 // the port that received the INQUIRY
	AssocTargetDevice Association = 2 // the SCSI target device holding the port
)

// String names the association.
func (a Association) String() string {
	switch a {
	case AssocLU:
		return "lu"
	case AssocTargetPort:
		return "target-port"
	case AssocTargetDevice:
		return "target-device"
	}
	return fmt.Sprintf("assoc-%d", uint8(a))
}

// MarshalText encodes the association as its name.
func (a Association) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (a *Association) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(b, 3, func(i int) string { return Association(i).String() })
	*a = Association(v)
	return err
}

// DesignatorType is the type of a designator (SPC-4 table 592).
type DesignatorType uint8

// Designator types.
const (
	DesigVendor       DesignatorType = 0x0 // vendor specific
	DesigT10          DesignatorType = 0x1 // T10 vendor ID based
	DesigEUI64        DesignatorType = 0x2
	DesigNAA          DesignatorType = 0x3
	DesigRelativePort DesignatorType = 0x4
	DesigPortGroup    DesignatorType = 0x5
	DesigLUGroup      DesignatorType = 0x6
	DesigMD5          DesignatorType = 0x7
	DesigSCSIName     DesignatorType = 0x8
	DesigProtocolPort DesignatorType = 0x9
	DesigUUID         DesignatorType = 0xa
)

var designatorTypeNames = [...]string{
	DesigVendor: "vendor", DesigT10: "t10", DesigEUI64: "eui64", DesigNAA: "naa",
	DesigRelativePort: "relative-port", DesigPortGroup: "port-group", DesigLUGroup: "lu-group",
	DesigMD5: "md5", DesigSCSIName: "scsi-name", DesigProtocolPort: "protocol-port", DesigUUID: "uuid",
}

// String names the designator type.
func (t DesignatorType) String() string {
	if int(t) < len(designatorTypeNames) {
		return designatorTypeNames[t]
	}
	return fmt.Sprintf("designator-%d", uint8(t))
}

// MarshalText encodes the type as its name.
func (t DesignatorType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (t *DesignatorType) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(b, 0xf, func(i int) string { return DesignatorType(i).String() })
	*t = DesignatorType(v)
	return err
}

// ProtocolID is a SCSI transport protocol identifier (SPC-4 table 444).
type ProtocolID uint8

// Protocol identifiers.
const (
	ProtoFC    ProtocolID = 0x0
	ProtoSPI   ProtocolID = 0x1
	ProtoSSA   ProtocolID = 0x2
	ProtoSBP   ProtocolID = 0x3
	ProtoSRP   ProtocolID = 0x4
	ProtoISCSI ProtocolID = 0x5
	ProtoSAS   ProtocolID = 0x6
	ProtoADT   ProtocolID = 0x7
	ProtoATA   ProtocolID = 0x8
	ProtoUAS   ProtocolID = 0x9
	ProtoSOP   ProtocolID = 0xa
	ProtoPCIe  ProtocolID = 0xb
	ProtoNone  ProtocolID = 0xf
)

var protocolNames = [...]string{
	ProtoFC: "fc", ProtoSPI: "spi", ProtoSSA: "ssa", ProtoSBP: "sbp", ProtoSRP: "srp",
	ProtoISCSI: "iscsi", ProtoSAS: "sas", ProtoADT: "adt", ProtoATA: "ata", ProtoUAS: "uas",
	ProtoSOP: "sop", ProtoPCIe: "pcie", 0xc: "proto-12", 0xd: "proto-13", 0xe: "proto-14", ProtoNone: "none",
}

// String names the protocol.
func (p ProtocolID) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// MarshalText encodes the protocol as its name.
func (p ProtocolID) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Designator is one designation descriptor of the Device Identification
// VPD page (SPC-4 7.8.6.1).
type Designator struct {
	// Protocol is the transport the designator belongs to; meaningful
	// only when PIV is set (and the association is a port or device).
	Protocol ProtocolID `json:"-"`
	// PIV is the protocol identifier valid bit.
	PIV bool `json:"-"`
	// ProtocolName is Protocol's name when PIV is set, for JSON.
	ProtocolName string `json:"protocol,omitempty"`
	// CodeSet is the encoding of Value.
	CodeSet CodeSet `json:"code_set"`
	// Association is what the designator identifies.
	Association Association `json:"association"`
	// Type is the designator type.
	Type DesignatorType `json:"type"`
	// Value is the designator, as sent.
	Value []byte `json:"-"`
	// Text is String(), for JSON.
	Text string `json:"value"`
}

// String formats the designator: "naa.5000c500a1b2c3d4",
// "eui.0123456789abcdef", "t10.VENDOR  PRODUCT SERIAL", the SCSI name
// string as is ("iqn.2003-01.org.example:disk,t,0x1"), "port:1",
// "tpg:1", and for others the code set's rendering.
func (d *Designator) String() string {
	switch d.Type {
	case DesigNAA:
		return "naa." + hex.EncodeToString(d.Value)
	case DesigEUI64:
		return "eui." + hex.EncodeToString(d.Value)
	case DesigT10:
		return "t10." + cleanASCII(d.Value)
	case DesigSCSIName:
		return cleanUTF8(d.Value)
	case DesigRelativePort:
		if len(d.Value) == 4 {
			return fmt.Sprintf("port:%d", binary.BigEndian.Uint16(d.Value[2:]))
		}
	case DesigPortGroup:
		if len(d.Value) == 4 {
			return fmt.Sprintf("tpg:%d", binary.BigEndian.Uint16(d.Value[2:]))
		}
	case DesigLUGroup:
		if len(d.Value) == 4 {
			return fmt.Sprintf("lug:%d", binary.BigEndian.Uint16(d.Value[2:]))
		}
	case DesigUUID:
		return "uuid." + hex.EncodeToString(d.Value)
	}
	switch d.CodeSet {
	case CodeSetASCII:
		return d.Type.String() + ":" + cleanASCII(d.Value)
	case CodeSetUTF8:
		return d.Type.String() + ":" + cleanUTF8(d.Value)
	}
	return d.Type.String() + ":" + hex.EncodeToString(d.Value)
}

// ParseDeviceIdentification decodes the Device Identification VPD page
// (83h). A descriptor whose length runs past the page ends decoding with
// ErrTruncated; the descriptors before it are returned.
func ParseDeviceIdentification(b []byte) ([]Designator, error) {
	p, err := vpdPayload(b, PageIdentification)
	var out []Designator
	for len(p) > 0 {
		if len(p) < 4 {
			return out, fmt.Errorf("%w: designation descriptor header of %d bytes", ErrTruncated, len(p))
		}
		n := int(p[3])
		if 4+n > len(p) {
			return out, fmt.Errorf("%w: designator of %d bytes, %d left", ErrTruncated, n, len(p)-4)
		}
		d := Designator{
			Protocol:    ProtocolID(p[0] >> 4),
			CodeSet:     CodeSet(p[0] & 0x0f),
			PIV:         p[1]&0x80 != 0,
			Association: Association((p[1] >> 4) & 0x3),
			Type:        DesignatorType(p[1] & 0x0f),
			Value:       append([]byte(nil), p[4:4+n]...),
		}
		d.Text = d.String()
		if d.PIV {
			d.ProtocolName = d.Protocol.String()
		}
		out = append(out, d)
		p = p[4+n:]
	}
	return out, err
}

// wwnRank orders logical unit designators the way the Linux kernel picks
// the wwid attribute (scsi_vpd_lun_id in drivers/scsi/scsi_lib.c):
// SCSI name string, NAA IEEE Registered Extended, EUI-64 16 and 12
// bytes, other NAA, EUI-64 8 bytes, T10 vendor ID, so that our WWN is
// the name multipath and udev use. Like the kernel, it does not insist
// that an NAA's length match its NAA field (QEMU sends 8-byte NAA 6).
// Zero means "not a WWN candidate".
func wwnRank(d *Designator) int {
	if d.Association != AssocLU || len(d.Value) == 0 {
		return 0
	}
	switch d.Type {
	case DesigSCSIName:
		if d.CodeSet == CodeSetUTF8 {
			return 9
		}
	case DesigNAA:
		switch {
		case len(d.Value) == 16:
			return 8
		case d.Value[0]>>4 == 5:
			return 5
		default:
			return 4
		}
	case DesigEUI64:
		switch len(d.Value) {
		case 16:
			return 7
		case 12:
			return 6
		default:
			return 3
		}
	case DesigT10:
		return 1
	}
	return 0
}

// PreferredWWN returns the logical unit's preferred designator, formatted
// by [Designator.String], or "" when there is none.
func PreferredWWN(ds []Designator) string {
	best, rank := -1, 0
	for i := range ds {
		if r := wwnRank(&ds[i]); r > rank {
			best, rank = i, r
		}
	}
	if best < 0 {
		return ""
	}
	return ds[best].String()
}

// portAddress returns the target port's address from designators
// carrying a protocol identifier: the SAS address or FC WWPN (NAA) or
// the iSCSI port name.
func portAddress(ds []Designator, proto ProtocolID) string {
	for i := range ds {
		d := &ds[i]
		if d.Association != AssocTargetPort || !d.PIV || d.Protocol != proto {
			continue
		}
		switch d.Type {
		case DesigNAA, DesigEUI64:
			return "0x" + hex.EncodeToString(d.Value)
		case DesigSCSIName:
			return cleanUTF8(d.Value)
		}
	}
	return ""
}

// cleanUTF8 renders a NUL-terminated, NUL-padded UTF-8 string with
// invalid or control characters replaced by '?'.
func cleanUTF8(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			sb.WriteByte('?')
		} else {
			sb.WriteRune(r)
		}
		b = b[n:]
	}
	return strings.TrimSpace(sb.String())
}
