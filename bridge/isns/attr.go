package isns

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
)

// Tag is an iSNS attribute tag (RFC 4171 6.1).
type Tag uint32

// Attribute tags the gateway uses or reads (RFC 4171 6.1, table 6).
const (
	TagDelimiter           Tag = 0
	TagEntityID            Tag = 1  // Entity Identifier (EID), string
	TagEntityProtocol      Tag = 2  // uint32: 1 none, 2 iSCSI, 3 iFCP
	TagMgmtIPAddress       Tag = 3  // 16-byte address
	TagTimestamp           Tag = 4  // uint64 seconds since the epoch
	TagProtocolVersion     Tag = 5  // uint32: max << 16 | min
	TagRegistrationPeriod  Tag = 6  // uint32 seconds
	TagEntityIndex         Tag = 7  // uint32
	TagPortalIPAddress     Tag = 16 // 16-byte address
	TagPortalPort          Tag = 17 // TCP/UDP port
	TagPortalSymbolicName  Tag = 18 // string
	TagESIInterval         Tag = 19 // uint32 seconds
	TagESIPort             Tag = 20 // TCP/UDP port
	TagPortalIndex         Tag = 22 // uint32
	TagSCNPort             Tag = 23 // TCP/UDP port
	TagISCSIName           Tag = 32 // string
	TagISCSINodeType       Tag = 33 // uint32 bitmap (NodeType)
	TagISCSIAlias          Tag = 34 // string
	TagISCSISCNBitmap      Tag = 35 // uint32
	TagISCSINodeIndex      Tag = 36 // uint32
	TagISCSIAuthMethod     Tag = 42 // string
	TagPGISCSIName         Tag = 48 // string
	TagPGPortalIPAddress   Tag = 49 // 16-byte address
	TagPGPortalPort        Tag = 50 // TCP/UDP port
	TagPGTag               Tag = 51 // uint32 (0-65535) or NIL: no portal group
	TagPGIndex             Tag = 52 // uint32
	TagDDID                Tag = 2065
	TagDDSymbolicName      Tag = 2066
	TagDDMemberISCSIName   Tag = 2068
	TagServerVendorOUI     Tag = 256
	tagVendorSpecificFirst Tag = 257
)

var tagNames = map[Tag]string{
	TagDelimiter: "Delimiter", TagEntityID: "Entity Identifier", TagEntityProtocol: "Entity Protocol",
	TagMgmtIPAddress: "Management IP Address", TagTimestamp: "Timestamp",
	TagProtocolVersion: "Protocol Version Range", TagRegistrationPeriod: "Registration Period",
	TagEntityIndex: "Entity Index", TagPortalIPAddress: "Portal IP Address",
	TagPortalPort: "Portal TCP/UDP Port", TagPortalSymbolicName: "Portal Symbolic Name",
	TagESIInterval: "ESI Interval", TagESIPort: "ESI Port", TagPortalIndex: "Portal Index",
	TagSCNPort: "SCN Port", TagISCSIName: "iSCSI Name", TagISCSINodeType: "iSCSI Node Type",
	TagISCSIAlias: "iSCSI Alias", TagISCSISCNBitmap: "iSCSI SCN Bitmap",
	TagISCSINodeIndex: "iSCSI Node Index", TagISCSIAuthMethod: "iSCSI AuthMethod",
	TagPGISCSIName: "PG iSCSI Name", TagPGPortalIPAddress: "PG Portal IP Addr",
	TagPGPortalPort: "PG Portal TCP/UDP Port", TagPGTag: "PG Tag", TagPGIndex: "PG Index",
	TagDDID: "DD_ID", TagDDSymbolicName: "DD Symbolic Name", TagDDMemberISCSIName: "DD Member iSCSI Name",
	TagServerVendorOUI: "iSNS Server Vendor OUI",
}

// String returns the RFC's name of the tag.
func (t Tag) String() string {
	if n, ok := tagNames[t]; ok {
		return n
	}
	return "Tag(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// EntityProtocol values (RFC 4171 6.2.2).
const (
	EntityProtocolNone  uint32 = 1
	EntityProtocolISCSI uint32 = 2
	EntityProtocolIFCP  uint32 = 3
)

// NodeType is the iSCSI Node Type bitmap (RFC 4171 6.4.2).
type NodeType uint32

// Node type bits.
const (
	NodeTarget    NodeType = 1 << 0
	NodeInitiator NodeType = 1 << 1
	NodeControl   NodeType = 1 << 2
)

// portUDP marks a UDP port in a TCP/UDP Port attribute (RFC 4171 6.3.2).
const portUDP = 1 << 16

// maxAttrValue bounds one attribute's value when decoding.
const maxAttrValue = 1 << 16

// Attr is one TLV attribute. Value holds the bytes as on the wire
// (strings NUL-terminated and padded); a nil or empty Value is NIL.
type Attr struct {
	Tag   Tag
	Value []byte
}

// wireLen is the attribute's encoded size.
func (a Attr) wireLen() int { return 8 + (len(a.Value)+3)&^3 }

// AppendBinary appends the attribute's TLV to dst, padding the value
// with zeros to a multiple of 4 bytes (RFC 4171 5.5).
func (a Attr) AppendBinary(dst []byte) ([]byte, error) {
	n := (len(a.Value) + 3) &^ 3
	if n > maxAttrValue {
		return dst, fmt.Errorf("%w: %s value of %d bytes", ErrTooLarge, a.Tag, len(a.Value))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(a.Tag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, a.Value...)
	for i := len(a.Value); i < n; i++ {
		dst = append(dst, 0)
	}
	return dst, nil
}

// ParseAttrs decodes a list of TLV attributes. The values alias b.
func ParseAttrs(b []byte) ([]Attr, error) {
	var attrs []Attr
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, formatErr("%d trailing bytes after the attribute at %d", len(b)-off, off)
		}
		tag := Tag(binary.BigEndian.Uint32(b[off:]))
		n := binary.BigEndian.Uint32(b[off+4:])
		// RFC 4171 5.5: the attribute length is a multiple of 4.
		if n%4 != 0 {
			return nil, formatErr("%s at %d: length %d is not a multiple of 4", tag, off, n)
		}
		if n > maxAttrValue || int(n) > len(b)-off-8 {
			return nil, formatErr("%s at %d: length %d overruns the %d-byte payload", tag, off, n, len(b))
		}
		if tag == TagDelimiter && n != 0 {
			return nil, formatErr("delimiter at %d has length %d", off, n)
		}
		v := b[off+8 : off+8+int(n) : off+8+int(n)]
		if n == 0 {
			v = nil
		}
		attrs = append(attrs, Attr{Tag: tag, Value: v})
		off += 8 + int(n)
	}
	return attrs, nil
}

// Nil returns a NIL attribute (length 0) of tag t.
func Nil(t Tag) Attr { return Attr{Tag: t} }

// String returns a string attribute: UTF-8, NUL-terminated, padded.
func String(t Tag, s string) Attr {
	v := make([]byte, (len(s)+4)&^3)
	copy(v, s)
	return Attr{Tag: t, Value: v}
}

// Uint32 returns a 4-byte integer attribute.
func Uint32(t Tag, v uint32) Attr {
	return Attr{Tag: t, Value: binary.BigEndian.AppendUint32(nil, v)}
}

// Uint64 returns an 8-byte integer attribute.
func Uint64(t Tag, v uint64) Attr {
	return Attr{Tag: t, Value: binary.BigEndian.AppendUint64(nil, v)}
}

// IP returns a 16-byte IP address attribute (IPv4 as IPv4-mapped IPv6,
// RFC 4171 6.3.1).
func IP(t Tag, a netip.Addr) Attr {
	b := netip.AddrFrom16(a.As16()).As16()
	return Attr{Tag: t, Value: b[:]}
}

// Port returns a TCP/UDP Port attribute (RFC 4171 6.3.2).
func Port(t Tag, port uint16, udp bool) Attr {
	v := uint32(port)
	if udp {
		v |= portUDP
	}
	return Uint32(t, v)
}

// IsNil reports whether the attribute has no value.
func (a Attr) IsNil() bool { return len(a.Value) == 0 }

// Str decodes a string attribute: the bytes up to the first NUL.
func (a Attr) Str() (string, error) {
	if len(a.Value) == 0 {
		return "", nil
	}
	i := bytes.IndexByte(a.Value, 0)
	if i < 0 {
		return "", formatErr("%s: string not NUL-terminated", a.Tag)
	}
	return string(a.Value[:i]), nil
}

// Uint32 decodes a 4-byte integer attribute.
func (a Attr) Uint32() (uint32, error) {
	if len(a.Value) != 4 {
		return 0, formatErr("%s: %d bytes for a 4-byte integer", a.Tag, len(a.Value))
	}
	return binary.BigEndian.Uint32(a.Value), nil
}

// Uint64 decodes an 8-byte integer attribute.
func (a Attr) Uint64() (uint64, error) {
	if len(a.Value) != 8 {
		return 0, formatErr("%s: %d bytes for an 8-byte integer", a.Tag, len(a.Value))
	}
	return binary.BigEndian.Uint64(a.Value), nil
}

// IP decodes a 16-byte address attribute (an IPv4-mapped address comes
// back as IPv4).
func (a Attr) IP() (netip.Addr, error) {
	if len(a.Value) != 16 {
		return netip.Addr{}, formatErr("%s: %d bytes for an IP address", a.Tag, len(a.Value))
	}
	return netip.AddrFrom16([16]byte(a.Value)).Unmap(), nil
}

// Port decodes a TCP/UDP Port attribute.
func (a Attr) Port() (port uint16, udp bool, err error) {
	v, err := a.Uint32()
	if err != nil {
		return 0, false, err
	}
	return uint16(v), v&portUDP != 0, nil
}

// Find returns the first attribute of tag t in attrs.
func Find(attrs []Attr, t Tag) (Attr, bool) {
	for _, a := range attrs {
		if a.Tag == t {
			return a, true
		}
	}
	return Attr{}, false
}
