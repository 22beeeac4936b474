package iscsi

import (
	"fmt"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// This file holds the PDUs a target sends. Each encodes its BHS with
// EncodeBHS; the data segment is passed beside it to the writer, which
// adds padding and digests. AppendBinary gives the whole PDU (without
// digests) for tests and golden files.

// Outgoing is a PDU the target sends.
type Outgoing interface {
	// EncodeBHS writes the header, including DataSegmentLength set from
	// the data segment the PDU carries.
	EncodeBHS(b *BHS)
	// DataSegment returns the data segment (unpadded), or nil.
	DataSegment() []byte
}

// AppendPDU appends p's BHS and padded data segment to dst.
func AppendPDU(dst []byte, p Outgoing) []byte {
	var b BHS
	p.EncodeBHS(&b)
	dst = append(dst, b[:]...)
	d := p.DataSegment()
	dst = append(dst, d...)
	var pad [3]byte
	return append(dst, pad[:padLen(len(d))]...)
}

// seqNums are the sequence numbers most target PDUs carry at 24..35.
type seqNums struct {
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
}

func (s *seqNums) put(b *BHS) {
	b.put32(24, s.StatSN)
	b.put32(28, s.ExpCmdSN)
	b.put32(32, s.MaxCmdSN)
}

// ServiceResponse is the Response field of a SCSI Response (RFC 7143 11.4.3).
type ServiceResponse uint8

// SCSI Response codes.
const (
	RespCompleted     ServiceResponse = 0x00
	RespTargetFailure ServiceResponse = 0x01
)

// SCSIResponse is a SCSI Response PDU (RFC 7143 11.4).
type SCSIResponse struct {
	seqNums
	Response  ServiceResponse
	Status    scsi.Status
	ITT       uint32
	ExpDataSN uint32
	// Residual flags and counts: Overflow/Underflow for the (read or
	// write) transfer, BidiOverflow/BidiUnderflow for the read part of a
	// bidirectional command.
	Overflow, Underflow         bool
	BidiOverflow, BidiUnderflow bool
	ResidualCount               uint32
	BidiResidualCount           uint32
	// Data is the data segment: SenseLength (2 bytes) + sense data, or nil.
	Data []byte
}

// EncodeBHS implements Outgoing.
func (r *SCSIResponse) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpSCSIResponse)
	b[1] = finalBit
	if r.BidiOverflow {
		b[1] |= 0x10
	}
	if r.BidiUnderflow {
		b[1] |= 0x08
	}
	if r.Overflow {
		b[1] |= 0x04
	}
	if r.Underflow {
		b[1] |= 0x02
	}
	b[2] = byte(r.Response)
	b[3] = byte(r.Status)
	b.SetDataSegmentLength(uint32(len(r.Data)))
	b.put32(16, r.ITT)
	r.put(b)
	b.put32(36, r.ExpDataSN)
	b.put32(40, r.BidiResidualCount)
	b.put32(44, r.ResidualCount)
}

// DataSegment implements Outgoing.
func (r *SCSIResponse) DataSegment() []byte { return r.Data }

// DataIn is a SCSI Data-In PDU (RFC 7143 11.7).
type DataIn struct {
	seqNums
	Final bool
	// Ack asks the initiator for a DataACK SNACK (ERL > 0 only).
	Ack bool
	// HasStatus (S bit) carries the command's status in this PDU.
	HasStatus           bool
	Overflow, Underflow bool
	Status              scsi.Status
	LUN                 LUN
	ITT                 uint32
	TTT                 uint32
	DataSN              uint32
	BufferOffset        uint32
	ResidualCount       uint32
	Data                []byte
}

// EncodeBHS implements Outgoing.
func (d *DataIn) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpSCSIDataIn)
	if d.Final {
		b[1] |= finalBit
	}
	if d.Ack {
		b[1] |= 0x40
		copy(b[8:16], d.LUN[:])
		b.put32(20, d.TTT)
	} else {
		b.put32(20, reservedTag)
	}
	b.SetDataSegmentLength(uint32(len(d.Data)))
	b.put32(16, d.ITT)
	if d.HasStatus {
		b[1] |= 0x01
		if d.Overflow {
			b[1] |= 0x04
		}
		if d.Underflow {
			b[1] |= 0x02
		}
		b[3] = byte(d.Status)
		b.put32(24, d.StatSN)
		b.put32(44, d.ResidualCount)
	}
	b.put32(28, d.ExpCmdSN)
	b.put32(32, d.MaxCmdSN)
	b.put32(36, d.DataSN)
	b.put32(40, d.BufferOffset)
}

// DataSegment implements Outgoing.
func (d *DataIn) DataSegment() []byte { return d.Data }

// R2T is a Ready To Transfer PDU (RFC 7143 11.8).
type R2T struct {
	seqNums
	LUN                       LUN
	ITT                       uint32
	TTT                       uint32
	R2TSN                     uint32
	BufferOffset              uint32
	DesiredDataTransferLength uint32
}

// EncodeBHS implements Outgoing.
func (r *R2T) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpR2T)
	b[1] = finalBit
	copy(b[8:16], r.LUN[:])
	b.put32(16, r.ITT)
	b.put32(20, r.TTT)
	r.put(b)
	b.put32(36, r.R2TSN)
	b.put32(40, r.BufferOffset)
	b.put32(44, r.DesiredDataTransferLength)
}

// DataSegment implements Outgoing.
func (r *R2T) DataSegment() []byte { return nil }

// NOPIn is a NOP-In PDU (RFC 7143 11.19).
type NOPIn struct {
	seqNums
	LUN  LUN
	ITT  uint32
	TTT  uint32
	Data []byte
}

// EncodeBHS implements Outgoing.
func (n *NOPIn) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpNOPIn)
	b[1] = finalBit
	b.SetDataSegmentLength(uint32(len(n.Data)))
	copy(b[8:16], n.LUN[:])
	b.put32(16, n.ITT)
	b.put32(20, n.TTT)
	n.put(b)
}

// DataSegment implements Outgoing.
func (n *NOPIn) DataSegment() []byte { return n.Data }

// TMFResponse is a Task Management Function response code (RFC 7143 11.6.1).
type TMFResponse uint8

// TMF response codes.
const (
	TMFComplete            TMFResponse = 0
	TMFTaskNotExist        TMFResponse = 1
	TMFLUNNotExist         TMFResponse = 2
	TMFTaskStillAllegiant  TMFResponse = 3
	TMFReassignUnsupported TMFResponse = 4
	TMFNotSupported        TMFResponse = 5
	TMFAuthFailed          TMFResponse = 6
	TMFRejected            TMFResponse = 255
)

// String names the response.
func (r TMFResponse) String() string {
	switch r {
	case TMFComplete:
		return "function complete"
	case TMFTaskNotExist:
		return "task does not exist"
	case TMFLUNNotExist:
		return "LUN does not exist"
	case TMFTaskStillAllegiant:
		return "task still allegiant"
	case TMFReassignUnsupported:
		return "task allegiance reassignment not supported"
	case TMFNotSupported:
		return "function not supported"
	case TMFAuthFailed:
		return "function authorization failed"
	case TMFRejected:
		return "function rejected"
	}
	return fmt.Sprintf("TMFResponse(%d)", uint8(r))
}

// TaskMgmtResponse is a Task Management Function Response (RFC 7143 11.6).
type TaskMgmtResponse struct {
	seqNums
	Response TMFResponse
	ITT      uint32
}

// EncodeBHS implements Outgoing.
func (t *TaskMgmtResponse) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpTaskMgmtResp)
	b[1] = finalBit
	b[2] = byte(t.Response)
	b.put32(16, t.ITT)
	t.put(b)
}

// DataSegment implements Outgoing.
func (t *TaskMgmtResponse) DataSegment() []byte { return nil }

// LoginStatus is the Status-Class and Status-Detail pair of a Login
// Response (RFC 7143 11.13.5), class in the high byte.
type LoginStatus uint16

// Login statuses.
const (
	LoginSuccess                LoginStatus = 0x0000
	LoginTargetMovedTemp        LoginStatus = 0x0101
	LoginTargetMovedPerm        LoginStatus = 0x0102
	LoginInitiatorError         LoginStatus = 0x0200
	LoginAuthFailure            LoginStatus = 0x0201
	LoginAuthorizationFailure   LoginStatus = 0x0202
	LoginNotFound               LoginStatus = 0x0203
	LoginTargetRemoved          LoginStatus = 0x0204
	LoginUnsupportedVersion     LoginStatus = 0x0205
	LoginTooManyConnections     LoginStatus = 0x0206
	LoginMissingParameter       LoginStatus = 0x0207
	LoginCantIncludeInSession   LoginStatus = 0x0208
	LoginSessionTypeUnsupported LoginStatus = 0x0209
	LoginSessionDoesNotExist    LoginStatus = 0x020a
	LoginInvalidDuringLogin     LoginStatus = 0x020b
	LoginTargetError            LoginStatus = 0x0300
	LoginServiceUnavailable     LoginStatus = 0x0301
	LoginOutOfResources         LoginStatus = 0x0302
)

// Class returns the Status-Class byte.
func (s LoginStatus) Class() uint8 { return uint8(s >> 8) }

// Detail returns the Status-Detail byte.
func (s LoginStatus) Detail() uint8 { return uint8(s) }

// String names the status.
func (s LoginStatus) String() string {
	switch s {
	case LoginSuccess:
		return "success"
	case LoginTargetMovedTemp:
		return "target moved temporarily"
	case LoginTargetMovedPerm:
		return "target moved permanently"
	case LoginInitiatorError:
		return "initiator error"
	case LoginAuthFailure:
		return "authentication failure"
	case LoginAuthorizationFailure:
		return "authorization failure"
	case LoginNotFound:
		return "target not found"
	case LoginTargetRemoved:
		return "target removed"
	case LoginUnsupportedVersion:
		return "unsupported version"
	case LoginTooManyConnections:
		return "too many connections"
	case LoginMissingParameter:
		return "missing parameter"
	case LoginCantIncludeInSession:
		return "can't include in session"
	case LoginSessionTypeUnsupported:
		return "session type not supported"
	case LoginSessionDoesNotExist:
		return "session does not exist"
	case LoginInvalidDuringLogin:
		return "invalid request during login"
	case LoginTargetError:
		return "target error"
	case LoginServiceUnavailable:
		return "service unavailable"
	case LoginOutOfResources:
		return "out of resources"
	}
	return fmt.Sprintf("LoginStatus(%#04x)", uint16(s))
}

// LoginResponse is a Login Response PDU (RFC 7143 11.13).
type LoginResponse struct {
	seqNums
	Transit       bool
	Continue      bool
	CSG           Stage
	NSG           Stage
	VersionMax    uint8
	VersionActive uint8
	ISID          ISID
	TSIH          uint16
	ITT           uint32
	Status        LoginStatus
	Data          []byte
}

// EncodeBHS implements Outgoing.
func (l *LoginResponse) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpLoginResp)
	if l.Transit {
		b[1] |= loginTransitBit
	}
	if l.Continue {
		b[1] |= loginContinueBit
	}
	b[1] |= byte(l.CSG&3)<<2 | byte(l.NSG&3)
	b[2] = l.VersionMax
	b[3] = l.VersionActive
	b.SetDataSegmentLength(uint32(len(l.Data)))
	copy(b[8:14], l.ISID[:])
	b.put16(14, l.TSIH)
	b.put32(16, l.ITT)
	l.put(b)
	b[36] = l.Status.Class()
	b[37] = l.Status.Detail()
}

// DataSegment implements Outgoing.
func (l *LoginResponse) DataSegment() []byte { return l.Data }

// TextResponse is a Text Response PDU (RFC 7143 11.11).
type TextResponse struct {
	seqNums
	Final    bool
	Continue bool
	LUN      LUN
	ITT      uint32
	TTT      uint32
	Data     []byte
}

// EncodeBHS implements Outgoing.
func (t *TextResponse) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpTextResp)
	if t.Final {
		b[1] |= finalBit
	}
	if t.Continue {
		b[1] |= continueBit
	}
	b.SetDataSegmentLength(uint32(len(t.Data)))
	copy(b[8:16], t.LUN[:])
	b.put32(16, t.ITT)
	b.put32(20, t.TTT)
	t.put(b)
}

// DataSegment implements Outgoing.
func (t *TextResponse) DataSegment() []byte { return t.Data }

// LogoutResponseCode is the Response of a Logout Response (RFC 7143 11.15.1).
type LogoutResponseCode uint8

// Logout response codes.
const (
	LogoutOK             LogoutResponseCode = 0
	LogoutCIDNotFound    LogoutResponseCode = 1
	LogoutRecoveryUnsupp LogoutResponseCode = 2
	LogoutCleanupFailed  LogoutResponseCode = 3
)

// LogoutResponse is a Logout Response PDU (RFC 7143 11.15).
type LogoutResponse struct {
	seqNums
	Response    LogoutResponseCode
	ITT         uint32
	Time2Wait   uint16
	Time2Retain uint16
}

// EncodeBHS implements Outgoing.
func (l *LogoutResponse) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpLogoutResp)
	b[1] = finalBit
	b[2] = byte(l.Response)
	b.put32(16, l.ITT)
	l.put(b)
	b.put16(40, l.Time2Wait)
	b.put16(42, l.Time2Retain)
}

// DataSegment implements Outgoing.
func (l *LogoutResponse) DataSegment() []byte { return nil }

// RejectReason is the reason code of a Reject PDU (RFC 7143 11.17.1).
type RejectReason uint8

// Reject reasons.
const (
	RejectDataDigest       RejectReason = 0x02
	RejectSNACK            RejectReason = 0x03
	RejectProtocolError    RejectReason = 0x04
	RejectCmdNotSupported  RejectReason = 0x05
	RejectImmCmdReject     RejectReason = 0x06
	RejectTaskInProgress   RejectReason = 0x07
	RejectInvalidDataAck   RejectReason = 0x08
	RejectInvalidPDUField  RejectReason = 0x09
	RejectOutOfResources   RejectReason = 0x0a
	RejectNegotiationReset RejectReason = 0x0b
	RejectWaitingForLogout RejectReason = 0x0c
)

// String names the reason.
func (r RejectReason) String() string {
	switch r {
	case RejectDataDigest:
		return "data digest error"
	case RejectSNACK:
		return "SNACK reject"
	case RejectProtocolError:
		return "protocol error"
	case RejectCmdNotSupported:
		return "command not supported"
	case RejectImmCmdReject:
		return "immediate command reject"
	case RejectTaskInProgress:
		return "task in progress"
	case RejectInvalidDataAck:
		return "invalid data ack"
	case RejectInvalidPDUField:
		return "invalid PDU field"
	case RejectOutOfResources:
		return "out of resources"
	case RejectNegotiationReset:
		return "negotiation reset"
	case RejectWaitingForLogout:
		return "waiting for logout"
	}
	return fmt.Sprintf("RejectReason(%#02x)", uint8(r))
}

// Reject is a Reject PDU (RFC 7143 11.17). Its data segment is the
// rejected PDU's BHS.
type Reject struct {
	seqNums
	Reason RejectReason
	DataSN uint32
	Header BHS
}

// EncodeBHS implements Outgoing.
func (r *Reject) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpReject)
	b[1] = finalBit
	b[2] = byte(r.Reason)
	b.SetDataSegmentLength(BHSLen)
	b.put32(16, reservedTag)
	r.put(b)
	b.put32(36, r.DataSN)
}

// DataSegment implements Outgoing.
func (r *Reject) DataSegment() []byte { return r.Header[:] }

// AsyncEvent is an Asynchronous Message event code (RFC 7143 11.9.1).
type AsyncEvent uint8

// Asynchronous events.
const (
	AsyncSCSIEvent      AsyncEvent = 0
	AsyncLogoutRequest  AsyncEvent = 1
	AsyncDropConnection AsyncEvent = 2
	AsyncDropAllConns   AsyncEvent = 3
	AsyncRenegotiate    AsyncEvent = 4
)

// AsyncMessage is an Asynchronous Message PDU (RFC 7143 11.9).
type AsyncMessage struct {
	seqNums
	LUN        LUN
	Event      AsyncEvent
	VCode      uint8
	Parameter1 uint16
	Parameter2 uint16
	Parameter3 uint16
	Data       []byte
}

// EncodeBHS implements Outgoing.
func (a *AsyncMessage) EncodeBHS(b *BHS) {
	*b = BHS{}
	b[0] = byte(OpAsyncMessage)
	b[1] = finalBit
	b.SetDataSegmentLength(uint32(len(a.Data)))
	copy(b[8:16], a.LUN[:])
	b.put32(16, reservedTag)
	a.put(b)
	b[36] = byte(a.Event)
	b[37] = a.VCode
	b.put16(38, a.Parameter1)
	b.put16(40, a.Parameter2)
	b.put16(42, a.Parameter3)
}

// DataSegment implements Outgoing.
func (a *AsyncMessage) DataSegment() []byte { return a.Data }
