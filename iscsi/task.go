package iscsi

import (
	"context"
	"fmt"
)

// Nexus identifies an I_T nexus: one initiator port (name + ISID) logged
// in to one target port (name + portal group).
type Nexus struct {
	InitiatorName string
	ISID          ISID
	TargetName    string
	TPGT          uint16
	// TSIH is the target-assigned session handle; it changes when the
	// session is reinstated, the nexus does not.
	TSIH uint16

	port string // cached InitiatorPort
}

// InitiatorPort returns the SCSI initiator port name of the nexus
// (RFC 7143 10.1.1): "name,i,0x<ISID>".
func (n *Nexus) InitiatorPort() string {
	if n.port != "" {
		return n.port
	}
	return fmt.Sprintf("%s,i,0x%s", n.InitiatorName, n.ISID)
}

// TargetPort returns the SCSI target port name: "name,t,0x<TPGT>".
func (n *Nexus) TargetPort() string {
	return fmt.Sprintf("%s,t,0x%04x", n.TargetName, n.TPGT)
}

// Command is one SCSI command the engine hands to a Handler. The engine
// has already collected all write data. Buffers belong to the engine and
// are valid until Execute returns.
type Command struct {
	Nexus *Nexus
	LUN   LUN
	CDB   []byte
	Attr  TaskAttr
	// Tag is the Initiator Task Tag, unique among the nexus' live tasks.
	Tag uint32
	// Read and Write are the R and W bits; both set for bidirectional.
	Read, Write bool
	// WriteData is the data-out buffer, of the expected write length.
	WriteData []byte
	// ReadBuf is the data-in buffer, of the expected read length; the
	// handler fills a prefix and reports its length in Response.ReadLen.
	ReadBuf []byte
}

// Response is the outcome of a Command.
type Response struct {
	// Status is the SCSI status byte (SAM-5 5.3).
	Status byte
	// Sense is the sense data for CHECK CONDITION; the engine copies it.
	Sense []byte
	// ReadLen is how many bytes of ReadBuf (or of ReadData) hold data-in.
	ReadLen int
	// ReadData, when non-nil, holds the data-in instead of ReadBuf: a
	// handler whose device lends its own buffer returns it here rather
	// than copy it into ReadBuf. The engine sends at most len(ReadBuf)
	// bytes of it.
	ReadData []byte
	// Release, when non-nil, is called exactly once when the engine no
	// longer needs ReadData: after the data is sent, or when the task
	// ends without a response (aborted, connection lost).
	Release func()
	// Wanted is how many bytes the CDB itself asked to transfer in its
	// data direction (the read part for bidirectional commands), when the
	// handler knows. The engine reports residual overflow when Wanted
	// exceeds the expected length and underflow when less moved.
	Wanted int
	// ServiceFailure reports that the command could not be delivered at
	// all (iSCSI Response "target failure", RFC 7143 11.4.3).
	ServiceFailure bool
}

// Handler executes SCSI commands for one target. The engine calls it
// concurrently, from many sessions, for many LUNs.
type Handler interface {
	// Execute runs cmd. ctx is cancelled when the task is aborted or the
	// session ends; the handler should return promptly then (its response
	// is discarded).
	Execute(ctx context.Context, cmd *Command) Response
	// TaskManagement is called for a task management function after the
	// engine has aborted the tasks it affects in every session; the
	// handler applies the function's other effects (reservations, unit
	// attentions) and answers. lun is meaningful for LUN-scoped functions.
	TaskManagement(ctx context.Context, nexus *Nexus, fn TMFunction, lun LUN) TMFResponse
	// HasLUN reports whether lun exists for the nexus (for task
	// management answers "LUN does not exist").
	HasLUN(nexus *Nexus, lun LUN) bool
	// SessionEnded tells the handler that the nexus is gone (logout,
	// connection loss or reinstatement), so per-nexus state can go.
	SessionEnded(nexus *Nexus)
}
