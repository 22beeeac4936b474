package iscsi

import (
	"context"
	"fmt"

	"github.com/sanbridge/sanbridge/sgio/scsi"
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
	// WriteData is the data-out buffer: the expected write length, cut
	// to what the command moves when the handler is an [Admitter] (the
	// rest of the initiator's data was not solicited, or was discarded,
	// and is reported as residual underflow).
	WriteData []byte
	// ReadBuf is the data-in buffer: the expected read length, cut to
	// what the command moves when the handler is an [Admitter]; the
	// handler fills a prefix and reports its length in Response.ReadLen.
	ReadBuf []byte
}

// Response is the outcome of a Command.
type Response struct {
	// Status is the SCSI status (SAM-5 5.3).
	Status scsi.Status
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
//
// For each normal session of the target the engine calls Attach once the
// session reaches full feature phase, before any of its commands reaches
// Execute, and Detach once when the session ends (logout, connection
// loss, reinstatement by a new login of the same initiator port, server
// shutdown), after every task of the nexus has returned from Execute.
// Discovery sessions are neither attached nor detached.
type Handler interface {
	// Execute runs cmd. ctx is the task's own: it is cancelled when the
	// task is aborted (ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LUN
	// RESET, TARGET RESET, [NexusControl.AbortTasks]) or its session ends,
	// and not otherwise; the handler should return promptly then (its
	// response is discarded). Whoever aborted the task waits for Execute
	// to return before it answers, so a handler must not return while the
	// command may still reach the medium. ctx has no deadline and no
	// values, and must not be used after Execute returned (the engine
	// reuses it).
	Execute(ctx context.Context, cmd *Command) Response
	// TaskManagement is called for a task management function other than
	// ABORT TASK (which the engine answers itself) once the engine has
	// aborted the tasks it knows the function affects and their Execute
	// calls have returned: for ABORT TASK SET, CLEAR TASK SET and LOGICAL
	// UNIT RESET the tasks of this nexus for lun; for TARGET WARM RESET
	// and TARGET COLD RESET every task of every session of the target.
	// The handler applies the function's other effects and answers; the
	// engine sends its answer when TaskManagement returns. They include
	// aborting, with the other nexuses' NexusControl.AbortTasks, the
	// tasks of every other I_T nexus that sees the same logical unit for
	// CLEAR TASK SET and LOGICAL UNIT RESET (SAM-5 7.4, 7.7; the engine
	// can't: only the handler knows which logical unit a LUN number is
	// for each initiator), and of nexuses through other targets for the
	// target resets; and reservations, unit attentions, device resets.
	// lun is meaningful for LUN-scoped functions. ctx ends when the
	// issuing session does.
	TaskManagement(ctx context.Context, nexus *Nexus, fn TMFunction, lun LUN) TMFResponse
	// HasLUN reports whether lun exists for the nexus (for task
	// management answers "LUN does not exist").
	HasLUN(nexus *Nexus, lun LUN) bool
	// Attach tells the handler that a normal session of this target
	// reached full feature phase; it is called before the session's first
	// command is handed to Execute. ctl acts on the nexus' tasks and is
	// valid until Detach returns. nexus stays the same pointer until
	// Detach.
	Attach(nexus *Nexus, ctl NexusControl)
	// Detach tells the handler that the nexus ended (logout, connection
	// loss, reinstatement, shutdown). It is called once per Attach, after
	// the nexus' tasks have all returned from Execute.
	Detach(nexus *Nexus)
}

// NexusControl is the engine's side of one attached nexus, given to
// [Handler.Attach].
type NexusControl interface {
	// AbortTasks aborts the nexus' tasks addressed to lun (every LUN if
	// all is true) as if an ABORT TASK SET had come for them, but sends
	// no task management response: aborted tasks get no response, tasks
	// still waiting for data or for their turn are dropped, running ones
	// have their context cancelled. It returns once every such running
	// task (also one aborted before and still running) has returned from
	// Execute. It holds no engine lock while it waits, so it may be
	// called from TaskManagement or from inside another nexus' Execute.
	// It must not be called from inside Execute for a task it would abort
	// (the caller's own), nor while holding anything an aborted task's
	// Execute may wait for: either would wait forever.
	AbortTasks(lun LUN, all bool)
}
