// Package isns is an iSNS client (RFC 4171) for the gateway: it registers
// one Network Entity with its portals, its iSCSI target nodes and their
// portal groups with an iSNS server, keeps the registration alive
// (refreshes within the Registration Period and answers Entity Status
// Inquiries), replaces it when the configuration changes and
// deregisters it when the gateway stops.
//
// The wire codec is separate from the client (codec.go, attr.go). An
// iSNSP PDU (RFC 4171 5.1) is a 12-byte header and a payload:
//
//	 0               2               4               6
//	+---------------+---------------+---------------+---------------+
//	| Version (1)   | Function ID   | PDU Length    | Flags         |
//	+---------------+---------------+---------------+---------------+
//	| Transaction ID| Sequence ID   |  payload (PDU Length bytes) ...
//	+---------------+---------------+
//
// A message is one or more PDUs with the same Transaction ID, Sequence
// IDs 0, 1, ..., the first flagged FIRST PDU and the last LAST PDU; the
// payloads concatenated are, for a request, a list of TLV attributes
//
//	Source attribute | Message Key attributes | Delimiter | Operating attributes
//
// and for a response a 4-byte Status Code followed by attributes. Each
// attribute (RFC 4171 5.5) is
//
//	+-------------------------------+-------------------------------+------------
//	| Tag (4 bytes)                 | Length (4 bytes, multiple of 4)| Value ...
//	+-------------------------------+-------------------------------+------------
//
// with strings NUL-terminated and padded with NULs, IP addresses 16 bytes
// (IPv4 as IPv4-mapped IPv6) and TCP/UDP ports 4 bytes (bit 16 set for
// UDP). The Delimiter is tag 0 with length 0; an attribute of length 0
// elsewhere is a NIL value (a query for that attribute, or "no portal
// group" for a PGT).
package isns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Version is the only iSNSP version (RFC 4171 5.1.1).
const Version = 1

// HeaderLen is the size of an iSNSP PDU header.
const HeaderLen = 12

// MaxPDUPayload is the largest payload one PDU can carry (its length
// field has 16 bits), rounded down to a multiple of 4.
const MaxPDUPayload = 65532

// maxMessage bounds a reassembled message (many PDUs).
const maxMessage = 4 << 20

// Function is an iSNSP Function ID (RFC 4171 5.1.3); responses have bit
// 15 set.
type Function uint16

// Function IDs (RFC 4171 5.1.3).
const (
	DevAttrReg Function = 0x0001
	DevAttrQry Function = 0x0002
	DevGetNext Function = 0x0003
	DevDereg   Function = 0x0004
	SCNReg     Function = 0x0005
	SCNDereg   Function = 0x0006
	SCNEvent   Function = 0x0007
	SCN        Function = 0x0008
	DDReg      Function = 0x0009
	DDDereg    Function = 0x000a
	DDSReg     Function = 0x000b
	DDSDereg   Function = 0x000c
	ESI        Function = 0x000d
	Heartbeat  Function = 0x000e
	// responseBit marks a response (DevAttrRegRsp = 0x8001, ...).
	responseBit Function = 0x8000
)

var functionNames = [...]string{
	DevAttrReg: "DevAttrReg", DevAttrQry: "DevAttrQry", DevGetNext: "DevGetNext",
	DevDereg: "DevDereg", SCNReg: "SCNReg", SCNDereg: "SCNDereg", SCNEvent: "SCNEvent",
	SCN: "SCN", DDReg: "DDReg", DDDereg: "DDDereg", DDSReg: "DDSReg", DDSDereg: "DDSDereg",
	ESI: "ESI", Heartbeat: "Heartbeat",
}

// Response returns the response function of request function f.
func (f Function) Response() Function { return f | responseBit }

// IsResponse reports whether f is a response function.
func (f Function) IsResponse() bool { return f&responseBit != 0 }

// Request returns the request function of f (f itself for a request).
func (f Function) Request() Function { return f &^ responseBit }

// String returns the RFC's name of f ("DevAttrRegRsp" for a response).
func (f Function) String() string {
	r := f.Request()
	if int(r) < len(functionNames) && functionNames[r] != "" {
		if f.IsResponse() {
			return functionNames[r] + "Rsp"
		}
		return functionNames[r]
	}
	return fmt.Sprintf("Function(0x%04x)", uint16(f))
}

// Flags are the iSNSP header flags (RFC 4171 5.1.4).
type Flags uint16

// Header flags.
const (
	FlagClient   Flags = 0x8000 // sender is the iSNS client
	FlagServer   Flags = 0x4000 // sender is the iSNS server
	FlagAuth     Flags = 0x2000 // authentication block present
	FlagReplace  Flags = 0x1000 // DevAttrReg: replace the keyed object
	FlagLastPDU  Flags = 0x0800 // last PDU of the message
	FlagFirstPDU Flags = 0x0400 // first PDU of the message
)

// String lists the set flags.
func (f Flags) String() string {
	names := []struct {
		f Flags
		s string
	}{{FlagClient, "client"}, {FlagServer, "server"}, {FlagAuth, "auth"}, {FlagReplace, "replace"}, {FlagLastPDU, "last"}, {FlagFirstPDU, "first"}}
	s := ""
	for _, n := range names {
		if f&n.f != 0 {
			if s != "" {
				s += "|"
			}
			s += n.s
			f &^= n.f
		}
	}
	if f != 0 {
		if s != "" {
			s += "|"
		}
		s += "0x" + strconv.FormatUint(uint64(f), 16)
	}
	return s
}

// Status is an iSNS response Status Code (RFC 4171 5.4).
type Status uint32

// Status codes (RFC 4171 5.4).
const (
	StatusSuccess                  Status = 0
	StatusUnknownError             Status = 1
	StatusMessageFormatError       Status = 2
	StatusInvalidRegistration      Status = 3
	StatusInvalidQuery             Status = 5
	StatusSourceUnknown            Status = 6
	StatusSourceAbsent             Status = 7
	StatusSourceUnauthorized       Status = 8
	StatusNoSuchEntry              Status = 9
	StatusVersionNotSupported      Status = 10
	StatusInternalError            Status = 11
	StatusBusy                     Status = 12
	StatusOptionNotUnderstood      Status = 13
	StatusInvalidUpdate            Status = 14
	StatusMessageNotSupported      Status = 15
	StatusSCNEventRejected         Status = 16
	StatusSCNRegistrationRejected  Status = 17
	StatusAttributeNotImplemented  Status = 18
	StatusESINotAvailable          Status = 21
	StatusInvalidDeregistration    Status = 22
	StatusRegistrationNotSupported Status = 23
	statusFCDomainIDNotAvailable   Status = 19
	statusFCDomainIDNotAllocated   Status = 20
)

var statusNames = map[Status]string{
	StatusSuccess: "Successful", StatusUnknownError: "Unknown Error",
	StatusMessageFormatError: "Message Format Error", StatusInvalidRegistration: "Invalid Registration",
	StatusInvalidQuery: "Invalid Query", StatusSourceUnknown: "Source Unknown",
	StatusSourceAbsent: "Source Absent", StatusSourceUnauthorized: "Source Unauthorized",
	StatusNoSuchEntry: "No Such Entry", StatusVersionNotSupported: "Version Not Supported",
	StatusInternalError: "Internal Error", StatusBusy: "Busy",
	StatusOptionNotUnderstood: "Option Not Understood", StatusInvalidUpdate: "Invalid Update",
	StatusMessageNotSupported: "Message Not Supported", StatusSCNEventRejected: "SCN Event Rejected",
	StatusSCNRegistrationRejected: "SCN Registration Rejected", StatusAttributeNotImplemented: "Attribute Not Implemented",
	statusFCDomainIDNotAvailable: "FC_DOMAIN_ID Not Available", statusFCDomainIDNotAllocated: "FC_DOMAIN_ID Not Allocated",
	StatusESINotAvailable: "ESI Not Available", StatusInvalidDeregistration: "Invalid Deregistration",
	StatusRegistrationNotSupported: "Registration Feature Not Supported",
}

// String returns the RFC's name of the status.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "Status(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// Header is an iSNSP PDU header.
type Header struct {
	Version  uint16
	Function Function
	Length   uint16 // payload bytes in this PDU
	Flags    Flags
	XID      uint16
	Seq      uint16
}

// AppendBinary appends the header's 12 bytes to dst.
func (h Header) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, h.Version)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Function))
	dst = binary.BigEndian.AppendUint16(dst, h.Length)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Flags))
	dst = binary.BigEndian.AppendUint16(dst, h.XID)
	dst = binary.BigEndian.AppendUint16(dst, h.Seq)
	return dst, nil
}

// parseHeader decodes a header from b (at least HeaderLen bytes).
func parseHeader(b []byte) Header {
	return Header{
		Version:  binary.BigEndian.Uint16(b[0:]),
		Function: Function(binary.BigEndian.Uint16(b[2:])),
		Length:   binary.BigEndian.Uint16(b[4:]),
		Flags:    Flags(binary.BigEndian.Uint16(b[6:])),
		XID:      binary.BigEndian.Uint16(b[8:]),
		Seq:      binary.BigEndian.Uint16(b[10:]),
	}
}

// Errors of the wire codec; match with errors.Is.
var (
	// ErrFormat: bytes that are not a well-formed iSNSP PDU, message or
	// attribute list.
	ErrFormat = errors.New("isns: message format error")
	// ErrVersion: a PDU of an iSNSP version other than 1.
	ErrVersion = errors.New("isns: unsupported iSNSP version")
	// ErrTooLarge: a message larger than the client accepts.
	ErrTooLarge = errors.New("isns: message too large")
)

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// Message is one iSNSP message, reassembled from its PDUs.
type Message struct {
	Function Function
	// Flags are the message's flags other than FIRST/LAST PDU (which the
	// encoder sets per PDU and the decoder drops).
	Flags Flags
	XID   uint16
	// Status is the response's Status Code (responses only).
	Status Status
	// Attrs are the payload's attributes in order; for a request they
	// include the source and the delimiter (see [Request]).
	Attrs []Attr
}

// payloadLen is the size of the message's payload.
func (m *Message) payloadLen() int {
	n := 0
	if m.Function.IsResponse() {
		n = 4
	}
	for _, a := range m.Attrs {
		n += a.wireLen()
	}
	return n
}

// AppendBinary appends the message as one or more PDUs of at most
// maxPayload payload bytes each (a multiple of 4 and at least 16;
// values out of range mean MaxPDUPayload). PDUs are split at attribute
// boundaries when the attributes allow it.
func (m *Message) AppendBinary(dst []byte, maxPayload int) ([]byte, error) {
	if maxPayload < 16 || maxPayload > MaxPDUPayload {
		maxPayload = MaxPDUPayload
	}
	maxPayload &^= 3
	if m.payloadLen() > maxMessage {
		return dst, fmt.Errorf("%w: %d bytes", ErrTooLarge, m.payloadLen())
	}
	payload := make([]byte, 0, m.payloadLen())
	// cuts are the offsets where an attribute starts: preferred splits.
	cuts := make([]int, 0, len(m.Attrs)+1)
	if m.Function.IsResponse() {
		payload = binary.BigEndian.AppendUint32(payload, uint32(m.Status))
	}
	for _, a := range m.Attrs {
		cuts = append(cuts, len(payload))
		var err error
		if payload, err = a.AppendBinary(payload); err != nil {
			return dst, err
		}
	}
	cuts = append(cuts, len(payload))
	flags := m.Flags &^ (FlagFirstPDU | FlagLastPDU)
	off, seq, c := 0, uint16(0), 0
	for {
		end := min(off+maxPayload, len(payload))
		if end < len(payload) {
			// Cut before the last attribute that would straddle the limit,
			// unless that attribute alone is larger than a PDU.
			for c < len(cuts) && cuts[c] <= end {
				c++
			}
			if best := cuts[c-1]; best > off {
				end = best
			}
		}
		f := flags
		if seq == 0 {
			f |= FlagFirstPDU
		}
		if end == len(payload) {
			f |= FlagLastPDU
		}
		h := Header{Version: Version, Function: m.Function, Length: uint16(end - off), Flags: f, XID: m.XID, Seq: seq}
		dst, _ = h.AppendBinary(dst)
		dst = append(dst, payload[off:end]...)
		if end == len(payload) {
			return dst, nil
		}
		if seq == 0xffff {
			return dst, fmt.Errorf("%w: more than 65536 PDUs of %d bytes", ErrTooLarge, maxPayload)
		}
		off = end
		seq++
	}
}

// parsePayload fills m's Status and Attrs from a reassembled payload.
func (m *Message) parsePayload(p []byte) error {
	if m.Function.IsResponse() {
		if len(p) < 4 {
			return formatErr("%s: payload of %d bytes has no status code", m.Function, len(p))
		}
		m.Status = Status(binary.BigEndian.Uint32(p))
		p = p[4:]
	}
	attrs, err := ParseAttrs(p)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Function, err)
	}
	m.Attrs = attrs
	return nil
}

// ReadMessage reads the PDUs of one message from r and reassembles it.
// maxLen bounds the reassembled payload (0: 4 MiB). The PDUs must come in
// order, as the client's server connection and ESI connections carry one
// message at a time.
func ReadMessage(r io.Reader, maxLen int) (*Message, error) {
	if maxLen <= 0 || maxLen > maxMessage {
		maxLen = maxMessage
	}
	var hb [HeaderLen]byte
	var m *Message
	var payload []byte
	for seq := 0; ; seq++ {
		if _, err := io.ReadFull(r, hb[:]); err != nil {
			if m != nil && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		h := parseHeader(hb[:])
		if h.Version != Version {
			return nil, fmt.Errorf("%w: version %d", ErrVersion, h.Version)
		}
		if len(payload)+int(h.Length) > maxLen {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxLen)
		}
		if m == nil {
			// RFC 4171 5.1.5: the Sequence ID of a message's first PDU is 0.
			if h.Seq != 0 {
				return nil, formatErr("first PDU of xid %d has sequence %d", h.XID, h.Seq)
			}
			m = &Message{Function: h.Function, Flags: h.Flags &^ (FlagFirstPDU | FlagLastPDU), XID: h.XID}
		} else if h.XID != m.XID || h.Function != m.Function || int(h.Seq) != seq {
			return nil, formatErr("PDU %s xid %d seq %d inside message %s xid %d at seq %d", h.Function, h.XID, h.Seq, m.Function, m.XID, seq)
		}
		start := len(payload)
		payload = append(payload, make([]byte, h.Length)...)
		if _, err := io.ReadFull(r, payload[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		// A lone PDU without FIRST/LAST flags is a whole message too.
		if h.Flags&FlagLastPDU != 0 || (seq == 0 && h.Flags&(FlagFirstPDU|FlagLastPDU) == 0) {
			break
		}
	}
	if err := m.parsePayload(payload); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeMessage decodes one message from b (its PDUs back to back) and
// returns it with the number of bytes consumed.
func DecodeMessage(b []byte, maxLen int) (*Message, int, error) {
	r := &countReader{b: b}
	m, err := ReadMessage(r, maxLen)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = formatErr("truncated message")
	}
	return m, r.n, err
}

type countReader struct {
	b []byte
	n int
}

func (r *countReader) Read(p []byte) (int, error) {
	if r.n >= len(r.b) {
		return 0, io.EOF
	}
	k := copy(p, r.b[r.n:])
	r.n += k
	return k, nil
}

// Request builds a request message: source, message key, delimiter,
// operating attributes (RFC 4171 5.6.1).
func Request(fn Function, xid uint16, flags Flags, source Attr, key, op []Attr) *Message {
	attrs := make([]Attr, 0, 2+len(key)+len(op))
	attrs = append(attrs, source)
	attrs = append(attrs, key...)
	attrs = append(attrs, Attr{Tag: TagDelimiter})
	attrs = append(attrs, op...)
	return &Message{Function: fn, Flags: flags | FlagClient, XID: xid, Attrs: attrs}
}

// SplitDelimited splits attributes at the first delimiter: for a
// request, source and key before it, operating attributes after; for a
// DevAttrRegRsp or DevAttrQryRsp, key and operating attributes. ok is
// false when there is no delimiter (then before is all of attrs).
func SplitDelimited(attrs []Attr) (before, after []Attr, ok bool) {
	for i, a := range attrs {
		if a.Tag == TagDelimiter {
			return attrs[:i], attrs[i+1:], true
		}
	}
	return attrs, nil, false
}
