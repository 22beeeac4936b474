package iscsi

import (
	"encoding/binary"
	"fmt"
)

// This file holds the PDUs an initiator sends. Each decodes from a BHS
// (and the AHS where the opcode allows one); the data segment stays with
// the frame. Decoders validate only what the layout itself needs; session
// rules (sequence numbers, lengths against negotiated values) are checked
// by the connection.

// TaskAttr is the SAM task attribute of a SCSI command (RFC 7143 11.3.1).
type TaskAttr uint8

// Task attributes.
const (
	AttrUntagged    TaskAttr = 0
	AttrSimple      TaskAttr = 1
	AttrOrdered     TaskAttr = 2
	AttrHeadOfQueue TaskAttr = 3
	AttrACA         TaskAttr = 4
)

// String names the attribute.
func (a TaskAttr) String() string {
	switch a {
	case AttrUntagged:
		return "untagged"
	case AttrSimple:
		return "simple"
	case AttrOrdered:
		return "ordered"
	case AttrHeadOfQueue:
		return "head-of-queue"
	case AttrACA:
		return "ACA"
	}
	return fmt.Sprintf("TaskAttr(%d)", uint8(a))
}

// AHS types (RFC 7143 11.2.2.1).
const (
	ahsExtendedCDB   = 1
	ahsBidiReadLen   = 2
	maxCDBLen        = 16 + 244 // SPC: 260 bytes at most
	scsiCmdReadBit   = 0x40
	scsiCmdWriteBit  = 0x20
	scsiCmdAttrMask  = 0x07
	loginTransitBit  = 0x80
	loginContinueBit = 0x40
)

// SCSICommand is a SCSI Command PDU (RFC 7143 11.3).
type SCSICommand struct {
	Immediate bool
	Final     bool
	Read      bool
	Write     bool
	Attr      TaskAttr
	LUN       LUN
	ITT       uint32
	// ExpectedDataTransferLength is EDTL: the write length for writes and
	// bidirectional commands, the read length for reads.
	ExpectedDataTransferLength uint32
	CmdSN                      uint32
	ExpStatSN                  uint32
	// CDB is the full CDB: the 16 bytes of the BHS, extended by an
	// Extended CDB AHS. It aliases cdbBuf or the AHS buffer.
	CDB []byte
	// BidiReadLength is the Expected Bidirectional Read Data Length.
	BidiReadLength uint32
	// HasBidiReadLength reports whether the AHS carried it.
	HasBidiReadLength bool
	cdbBuf            [maxCDBLen]byte
}

// Decode fills c from a BHS and its AHS. The CDB is copied into c, so c
// stays valid after the frame's buffers are reused.
func (c *SCSICommand) Decode(b *BHS, ahs []byte) error {
	c.Immediate = b.Immediate()
	c.Final = b.Final()
	c.Read = b[1]&scsiCmdReadBit != 0
	c.Write = b[1]&scsiCmdWriteBit != 0
	c.Attr = TaskAttr(b[1] & scsiCmdAttrMask)
	c.LUN = b.LUN()
	c.ITT = b.ITT()
	c.ExpectedDataTransferLength = b.u32(20)
	c.CmdSN = b.u32(24)
	c.ExpStatSN = b.u32(28)
	c.BidiReadLength = 0
	c.HasBidiReadLength = false
	n := copy(c.cdbBuf[:], b[32:48])
	for len(ahs) > 0 {
		if len(ahs) < 4 {
			return fmt.Errorf("%w: truncated AHS header", ErrMalformed)
		}
		alen := int(binary.BigEndian.Uint16(ahs[0:2]))
		typ := ahs[2]
		// AHSLength counts bytes after the 3-byte header beyond the type
		// byte (RFC 7143 11.2.2.2): the specific field starts at 3,
		// and the whole AHS is padded to 4 bytes.
		total := 3 + alen
		total += padLen(total)
		if alen < 1 || total > len(ahs) {
			return fmt.Errorf("%w: AHS length %d exceeds the %d bytes left", ErrMalformed, alen, len(ahs))
		}
		switch typ {
		case ahsExtendedCDB:
			ext := ahs[4 : 3+alen]
			if n+len(ext) > maxCDBLen {
				return fmt.Errorf("%w: extended CDB of %d bytes", ErrMalformed, n+len(ext))
			}
			n += copy(c.cdbBuf[n:], ext)
		case ahsBidiReadLen:
			if alen != 5 {
				return fmt.Errorf("%w: bidirectional read length AHS of length %d", ErrMalformed, alen)
			}
			c.BidiReadLength = binary.BigEndian.Uint32(ahs[4:8])
			c.HasBidiReadLength = true
		default:
			return fmt.Errorf("%w: unknown AHS type %d", ErrMalformed, typ)
		}
		ahs = ahs[total:]
	}
	c.CDB = c.cdbBuf[:n]
	return nil
}

// DataOut is a SCSI Data-Out PDU (RFC 7143 11.7).
type DataOut struct {
	Final        bool
	LUN          LUN
	ITT          uint32
	TTT          uint32
	ExpStatSN    uint32
	DataSN       uint32
	BufferOffset uint32
}

// Decode fills d from a BHS.
func (d *DataOut) Decode(b *BHS) {
	d.Final = b.Final()
	d.LUN = b.LUN()
	d.ITT = b.ITT()
	d.TTT = b.u32(20)
	d.ExpStatSN = b.u32(28)
	d.DataSN = b.u32(36)
	d.BufferOffset = b.u32(40)
}

// NOPOut is a NOP-Out PDU (RFC 7143 11.18).
type NOPOut struct {
	Immediate bool
	LUN       LUN
	ITT       uint32
	TTT       uint32
	CmdSN     uint32
	ExpStatSN uint32
}

// Decode fills n from a BHS.
func (n *NOPOut) Decode(b *BHS) {
	n.Immediate = b.Immediate()
	n.LUN = b.LUN()
	n.ITT = b.ITT()
	n.TTT = b.u32(20)
	n.CmdSN = b.u32(24)
	n.ExpStatSN = b.u32(28)
}

// TMFunction is a task management function code (RFC 7143 11.5.1).
type TMFunction uint8

// Task management functions.
const (
	TMFAbortTask        TMFunction = 1
	TMFAbortTaskSet     TMFunction = 2
	TMFClearACA         TMFunction = 3
	TMFClearTaskSet     TMFunction = 4
	TMFLogicalUnitReset TMFunction = 5
	TMFTargetWarmReset  TMFunction = 6
	TMFTargetColdReset  TMFunction = 7
	TMFTaskReassign     TMFunction = 8
)

// String names the function.
func (f TMFunction) String() string {
	switch f {
	case TMFAbortTask:
		return "ABORT TASK"
	case TMFAbortTaskSet:
		return "ABORT TASK SET"
	case TMFClearACA:
		return "CLEAR ACA"
	case TMFClearTaskSet:
		return "CLEAR TASK SET"
	case TMFLogicalUnitReset:
		return "LOGICAL UNIT RESET"
	case TMFTargetWarmReset:
		return "TARGET WARM RESET"
	case TMFTargetColdReset:
		return "TARGET COLD RESET"
	case TMFTaskReassign:
		return "TASK REASSIGN"
	}
	return fmt.Sprintf("TMFunction(%d)", uint8(f))
}

// TaskMgmtRequest is a Task Management Function Request (RFC 7143 11.5).
type TaskMgmtRequest struct {
	Immediate  bool
	Function   TMFunction
	LUN        LUN
	ITT        uint32
	RefTaskTag uint32
	CmdSN      uint32
	ExpStatSN  uint32
	RefCmdSN   uint32
	ExpDataSN  uint32
}

// Decode fills t from a BHS.
func (t *TaskMgmtRequest) Decode(b *BHS) {
	t.Immediate = b.Immediate()
	t.Function = TMFunction(b[1] & 0x7f)
	t.LUN = b.LUN()
	t.ITT = b.ITT()
	t.RefTaskTag = b.u32(20)
	t.CmdSN = b.u32(24)
	t.ExpStatSN = b.u32(28)
	t.RefCmdSN = b.u32(32)
	t.ExpDataSN = b.u32(36)
}

// LoginRequest is a Login Request PDU (RFC 7143 11.12).
type LoginRequest struct {
	Transit    bool
	Continue   bool
	CSG        Stage
	NSG        Stage
	VersionMax uint8
	VersionMin uint8
	ISID       ISID
	TSIH       uint16
	ITT        uint32
	CID        uint16
	CmdSN      uint32
	ExpStatSN  uint32
}

// Decode fills l from a BHS.
func (l *LoginRequest) Decode(b *BHS) {
	l.Transit = b[1]&loginTransitBit != 0
	l.Continue = b[1]&loginContinueBit != 0
	l.CSG = Stage(b[1] >> 2 & 3)
	l.NSG = Stage(b[1] & 3)
	l.VersionMax = b[2]
	l.VersionMin = b[3]
	copy(l.ISID[:], b[8:14])
	l.TSIH = b.u16(14)
	l.ITT = b.ITT()
	l.CID = b.u16(20)
	l.CmdSN = b.u32(24)
	l.ExpStatSN = b.u32(28)
}

// Stage is a login stage (RFC 7143 11.12.3).
type Stage uint8

// Login stages.
const (
	StageSecurity    Stage = 0
	StageOperational Stage = 1
	StageFullFeature Stage = 3
)

// String names the stage.
func (s Stage) String() string {
	switch s {
	case StageSecurity:
		return "SecurityNegotiation"
	case StageOperational:
		return "LoginOperationalNegotiation"
	case StageFullFeature:
		return "FullFeaturePhase"
	}
	return fmt.Sprintf("Stage(%d)", uint8(s))
}

// ISID is the initiator part of the session identifier (RFC 7143 11.12.5).
type ISID [6]byte

// String formats the ISID as 12 hex digits.
func (i ISID) String() string { return fmt.Sprintf("%012x", i[:]) }

// TextRequest is a Text Request PDU (RFC 7143 11.10).
type TextRequest struct {
	Immediate bool
	Final     bool
	Continue  bool
	LUN       LUN
	ITT       uint32
	TTT       uint32
	CmdSN     uint32
	ExpStatSN uint32
}

// Decode fills t from a BHS.
func (t *TextRequest) Decode(b *BHS) {
	t.Immediate = b.Immediate()
	t.Final = b.Final()
	t.Continue = b[1]&continueBit != 0
	t.LUN = b.LUN()
	t.ITT = b.ITT()
	t.TTT = b.u32(20)
	t.CmdSN = b.u32(24)
	t.ExpStatSN = b.u32(28)
}

// LogoutReason is a Logout Request reason code (RFC 7143 11.14.1).
type LogoutReason uint8

// Logout reasons.
const (
	LogoutCloseSession    LogoutReason = 0
	LogoutCloseConnection LogoutReason = 1
	LogoutRemoveForRecov  LogoutReason = 2
)

// String names the reason.
func (r LogoutReason) String() string {
	switch r {
	case LogoutCloseSession:
		return "close session"
	case LogoutCloseConnection:
		return "close connection"
	case LogoutRemoveForRecov:
		return "remove connection for recovery"
	}
	return fmt.Sprintf("LogoutReason(%d)", uint8(r))
}

// LogoutRequest is a Logout Request PDU (RFC 7143 11.14).
type LogoutRequest struct {
	Immediate bool
	Reason    LogoutReason
	ITT       uint32
	CID       uint16
	CmdSN     uint32
	ExpStatSN uint32
}

// Decode fills l from a BHS.
func (l *LogoutRequest) Decode(b *BHS) {
	l.Immediate = b.Immediate()
	l.Reason = LogoutReason(b[1] & 0x7f)
	l.ITT = b.ITT()
	l.CID = b.u16(20)
	l.CmdSN = b.u32(24)
	l.ExpStatSN = b.u32(28)
}
