package passthrough

// Asymmetric logical unit access (SPC-4 5.15) and logical units shared
// by several gateways. A shared logical unit is one SCSI logical unit
// reached through the target ports of every gateway of a cluster: each
// gateway's ports form one target port group, and the reservations,
// unit attentions and access states are the cluster's, kept and carried
// by a [Shared] (bridge/cluster implements it over etcd).
//
// REPORT TARGET PORT GROUPS (MAINTENANCE IN, service action 0Ah)
// parameter data, one descriptor per target port group:
//
//	0-3   RETURN DATA LENGTH (n - 3)
//	      extended header (PARAMETER DATA FORMAT 001b) adds:
//	4     FORMAT TYPE (001b, bits 6-4)
//	5     IMPLICIT TRANSITION TIME (seconds)
//	6-7   reserved
//
//	descriptor:
//	0     PREF (bit 7)  ASYMMETRIC ACCESS STATE (bits 3-0)
//	1     T_SUP O_SUP rsvd LBD_SUP U_SUP S_SUP AN_SUP AO_SUP (bits 7-0)
//	2-3   TARGET PORT GROUP
//	5     STATUS CODE
//	7     TARGET PORT COUNT
//	8-    per port: 2-3 RELATIVE TARGET PORT IDENTIFIER (4 bytes each)
//
// SET TARGET PORT GROUPS (MAINTENANCE OUT, service action 0Ah) parameter
// list: 4 reserved bytes, then descriptors of 4 bytes: ASYMMETRIC ACCESS
// STATE (byte 0, bits 3-0), TARGET PORT GROUP (bytes 2-3).

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// AccessState is an asymmetric access state of a target port group
// (SPC-4 5.15.2.4).
type AccessState uint8

// Asymmetric access states.
const (
	AccessActiveOptimized    AccessState = 0x0
	AccessActiveNonOptimized AccessState = 0x1
	AccessStandby            AccessState = 0x2
	AccessUnavailable        AccessState = 0x3
	AccessOffline            AccessState = 0xe
	AccessTransitioning      AccessState = 0xf
)

// String returns the state's name as SPC-4 spells it.
func (s AccessState) String() string {
	switch s {
	case AccessActiveOptimized:
		return "active/optimized"
	case AccessActiveNonOptimized:
		return "active/non-optimized"
	case AccessStandby:
		return "standby"
	case AccessUnavailable:
		return "unavailable"
	case AccessOffline:
		return "offline"
	case AccessTransitioning:
		return "transitioning"
	}
	return fmt.Sprintf("AccessState(0x%x)", uint8(s))
}

// Active reports whether every command may run through a port in state
// s.
func (s AccessState) Active() bool {
	return s == AccessActiveOptimized || s == AccessActiveNonOptimized
}

// PortGroupStatus is a target port group descriptor's STATUS CODE.
type PortGroupStatus uint8

// Target port group status codes (SPC-4 6.36).
const (
	PortGroupStatusNone     PortGroupStatus = 0x0
	PortGroupStatusSet      PortGroupStatus = 0x1 // altered by SET TARGET PORT GROUPS
	PortGroupStatusImplicit PortGroupStatus = 0x2 // altered by implicit asymmetric access behavior
)

// String names the status code.
func (s PortGroupStatus) String() string {
	switch s {
	case PortGroupStatusNone:
		return "none"
	case PortGroupStatusSet:
		return "set by SET TARGET PORT GROUPS"
	case PortGroupStatusImplicit:
		return "changed implicitly"
	}
	return fmt.Sprintf("PortGroupStatus(0x%x)", uint8(s))
}

// PortGroup is one target port group as REPORT TARGET PORT GROUPS
// describes it: on a cluster, the ports of one gateway.
type PortGroup struct {
	// ID is the TARGET PORT GROUP identifier, unique in the cluster.
	ID uint16
	// State is the group's asymmetric access state.
	State AccessState
	// Preferred sets the PREF bit.
	Preferred bool
	// Status is the STATUS CODE.
	Status PortGroupStatus
	// Ports are the relative target port identifiers of its ports.
	Ports []uint16
}

// ALUAMode is the TPGS field of the standard INQUIRY data: whether the
// access states change implicitly, explicitly (SET TARGET PORT GROUPS),
// or both.
type ALUAMode uint8

// TPGS values (SPC-4 6.6.2).
const (
	ALUANone     ALUAMode = 0x0
	ALUAImplicit ALUAMode = 0x1
	ALUAExplicit ALUAMode = 0x2
	ALUABoth     ALUAMode = 0x3
)

// String names the mode.
func (m ALUAMode) String() string {
	switch m {
	case ALUANone:
		return "none"
	case ALUAImplicit:
		return "implicit"
	case ALUAExplicit:
		return "explicit"
	case ALUABoth:
		return "implicit and explicit"
	}
	return fmt.Sprintf("ALUAMode(%d)", uint8(m))
}

// Shared connects a logical unit that several gateways serve to the
// others. Every method is safe for concurrent use; Access is called on
// every command and must be one atomic load or so.
type Shared interface {
	// Access returns the asymmetric access state of this gateway's
	// ports for the logical unit. Anything but an active state means
	// this gateway cannot vouch for the cluster's state (it lost its
	// lease or is catching up) or was told to stand by: commands that
	// need the logical unit's state are refused with NOT READY, which
	// initiators retry, never answered from stale state.
	Access() AccessState
	// Mode is the INQUIRY TPGS value.
	Mode() ALUAMode
	// PortGroups returns every gateway's target port group for the
	// logical unit, this one's included, ordered by ID.
	PortGroups() []PortGroup
	// SetPortGroups applies SET TARGET PORT GROUPS (explicit mode only):
	// the requested state of each named group. A scsi.Status other than
	// Good, with its sense, refuses it.
	SetPortGroups(ctx context.Context, states map[uint16]AccessState) (scsi.Status, []byte)
	// UA tells the other gateways to establish unit attention asc for
	// the I_T nexuses n covers ([PRNexus.Covers]) on the logical unit.
	UA(n PRNexus, asc scsi.ASC)
	// Abort tells the other gateways to abort the tasks of the I_T
	// nexuses n covers on the logical unit (PREEMPT AND ABORT).
	Abort(ctx context.Context, n PRNexus)
	// Ports returns the other gateways' target ports of the logical
	// unit (ALL_TG_PT, REGISTER AND MOVE).
	Ports() []PRTargetPort
	// Settle returns once every other gateway has applied what this one
	// changed and published for the logical unit so far (reservation
	// records, unit attentions, aborts), or cannot admit commands for it
	// anymore; an error when that could not be established.
	Settle(ctx context.Context) error
}

// ASCs of asymmetric access (SPC-4 5.15.2.4, 5.15.2.5).
const (
	ascAccessTransition   scsi.ASC = 0x040a // LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION
	ascPortStandby        scsi.ASC = 0x040b // LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE
	ascPortUnavailable    scsi.ASC = 0x040c // LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE
	ascAccessStateChanged scsi.ASC = 0x2a06 // ASYMMETRIC ACCESS STATE CHANGED
	ascImplicitTransition scsi.ASC = 0x2a07 // IMPLICIT ASYMMETRIC ACCESS STATE TRANSITION FAILED
)

// saSetTargetPortGroups is MAINTENANCE OUT's SET TARGET PORT GROUPS.
const saSetTargetPortGroups scsi.ServiceAction = 0x0a

// rtpgSupported is byte 1 of every descriptor: the states this gateway
// may report (T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP).
const rtpgSupported = 0x80 | 0x08 | 0x04 | 0x02 | 0x01

// rtpgTransitionTime is the IMPLICIT TRANSITION TIME reported in the
// extended header, in seconds: how long an initiator should expect a
// transitioning state to last.
const rtpgTransitionTime = 30

// SetShared makes lu a logical unit shared with other gateways through
// s: its persistent reservation hooks reach the other gateways too, and
// its commands pass the asymmetric access stage. Call it before the
// logical unit serves any command.
func (lu *LU) SetShared(s Shared) {
	lu.shared = s
	h := &lu.pr.hooks
	h.UA = func(n PRNexus, asc scsi.ASC) {
		lu.prUA(n, asc)
		s.UA(n, asc)
	}
	h.Abort = func(ctx context.Context, n PRNexus) {
		lu.prAbort(ctx, n)
		s.Abort(ctx, n)
	}
	h.Ports = func() []PRTargetPort { return append(lu.prPorts(), s.Ports()...) }
}

// Shared returns what SetShared set, or nil.
func (lu *LU) Shared() Shared { return lu.shared }

// TPGS returns the TPGS field of the logical unit's standard INQUIRY
// data: 00b unless it is shared.
func (lu *LU) TPGS() ALUAMode {
	if lu.shared == nil {
		return ALUANone
	}
	return lu.shared.Mode()
}

// TargetPortGroup returns the target port group of the port with
// relative target port identifier rel (VPD page 83h's target port group
// designator); false when the logical unit is not shared.
func (lu *LU) TargetPortGroup(rel uint16) (uint16, bool) {
	if lu.shared == nil {
		return 0, false
	}
	for _, g := range lu.shared.PortGroups() {
		for _, p := range g.Ports {
			if p == rel {
				return g.ID, true
			}
		}
	}
	return 0, false
}

// RefreshReservations reloads the persistent reservation record from
// the store, so that conflict checks see what another gateway wrote.
func (lu *LU) RefreshReservations(ctx context.Context) error { return lu.pr.Refresh(ctx) }

// ApplyUA establishes unit attention asc for the I_T nexuses of this
// gateway that n covers, on another gateway's behalf.
func (lu *LU) ApplyUA(n PRNexus, asc scsi.ASC) { lu.prUA(n, asc) }

// ApplyAbort aborts the tasks on the logical unit of this gateway's I_T
// nexuses that n covers, on another gateway's behalf (PREEMPT AND
// ABORT), and returns once they can no longer touch the medium.
func (lu *LU) ApplyAbort(n PRNexus) {
	lu.abortTasks(func(x *nexus) bool { return n.Covers(x.pr) })
}

// SharedReset is implemented by a [Shared] that carries task management
// to the other gateways.
type SharedReset interface {
	// Reset tells the other gateways that the logical unit's task set
	// was cleared (CLEAR TASK SET; asc COMMANDS CLEARED BY ANOTHER
	// INITIATOR) or the logical unit was reset (LOGICAL UNIT RESET,
	// TARGET RESET; asc BUS DEVICE RESET FUNCTION OCCURRED): they abort
	// every task of their I_T nexuses on it and establish asc for them
	// ([LU.ApplyReset]). It returns once every other gateway applied it
	// or cannot admit commands anymore.
	Reset(ctx context.Context, asc scsi.ASC)
}

// publishReset hands a task set clear or reset of the logical unit to
// the other gateways, when it is shared with any.
func (lu *LU) publishReset(ctx context.Context, asc scsi.ASC) {
	if sr, ok := lu.shared.(SharedReset); ok {
		sr.Reset(ctx, asc)
	}
}

// ApplyReset applies another gateway's CLEAR TASK SET or reset of the
// logical unit: every task of this gateway's I_T nexuses on it is
// aborted, and asc established for them. The device was reset, and the
// SPC-2 reservation ended, by the gateway that received the function.
func (lu *LU) ApplyReset(asc scsi.ASC) {
	lu.abortTasks(func(*nexus) bool { return true })
	lu.raiseUA(asc, nil)
}

// AccessChanged establishes ASYMMETRIC ACCESS STATE CHANGED for every
// I_T nexus of the logical unit (SPC-4 5.15.2.5): some target port
// group's state changed.
func (lu *LU) AccessChanged() { lu.raiseUA(ascAccessStateChanged, nil) }

// sharedStage runs for every command to a shared logical unit after the
// unit attention stage: it refuses what the local access state forbids
// (before any reservation check: a gateway that is not active may hold
// stale reservations), answers REPORT and SET TARGET PORT GROUPS, and
// runs PERSISTENT RESERVE OUT, and RESERVE and RELEASE when the SPC-2
// reservation is shared (reserve.go), to completion on every gateway.
func (lu *LU) sharedStage(ctx context.Context, n *nexus, cmd *iscsi.Command) (iscsi.Response, bool) {
	s := lu.shared
	cdb := cmd.CDB
	if st := s.Access(); !st.Active() && !aluaAllowed(st, cdb) {
		asc := ascAccessTransition
		switch st {
		case AccessStandby:
			asc = ascPortStandby
		case AccessUnavailable, AccessOffline:
			asc = ascPortUnavailable
		}
		return checkCondition(scsi.SenseNotReady, asc), true
	}
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpMaintenanceIn:
		if sa, _ := scsi.HasServiceAction(cdb); sa == scsi.SAReportTargetPortGroups {
			return reportTargetPortGroups(s.PortGroups(), cmd), true
		}
	case scsi.OpMaintenanceOut:
		if sa, _ := scsi.HasServiceAction(cdb); sa == saSetTargetPortGroups {
			if conflicts(n, lu, cdb) {
				return iscsi.Response{Status: scsi.ReservationConflict}, true
			}
			return setTargetPortGroups(ctx, s, cmd), true
		}
	case scsi.OpReserve6, scsi.OpReserve10, scsi.OpRelease6, scsi.OpRelease10:
		sr, ok := s.(SharedReserve)
		if !ok {
			break
		}
		r, changed := lu.sharedReserve(ctx, sr, n, cdb)
		if changed {
			if err := s.Settle(ctx); err != nil {
				lu.log.Warn().Err(err).Str("lu", lu.name).Msg("SPC-2 reservation change not confirmed by every gateway")
			}
		}
		return r, true
	case scsi.OpPersistentReserveOut:
		r := lu.persistentReserveOut(ctx, n, cmd)
		if r.Status == scsi.Good {
			if err := s.Settle(ctx); err != nil {
				lu.log.Warn().Err(err).Str("lu", lu.name).Msg("persistent reservation change not confirmed by every gateway")
			}
		}
		return r, true
	}
	return iscsi.Response{}, false
}

// aluaAllowed reports whether cdb may run through a port in state st
// (SPC-4 5.15.2.4.3-5.15.2.4.5): INQUIRY, REPORT LUNS, REPORT TARGET PORT
// GROUPS, REQUEST SENSE and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
// always; SET TARGET PORT GROUPS except while transitioning; the mode,
// log, persistent reservation and diagnostic commands in standby too.
func aluaAllowed(st AccessState, cdb []byte) bool {
	op := scsi.Opcode(cdb[0])
	sa, _ := scsi.HasServiceAction(cdb)
	switch op {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return true
	case scsi.OpMaintenanceIn:
		if sa == scsi.SAReportTargetPortGroups || sa == scsi.SAReportSupportedTMFs {
			return true
		}
		return st == AccessStandby && sa == scsi.SAReportSupportedOpcodes
	case scsi.OpMaintenanceOut:
		return sa == saSetTargetPortGroups && st != AccessTransitioning
	}
	if st != AccessStandby {
		return false
	}
	switch op {
	case scsi.OpModeSense6, scsi.OpModeSense10, scsi.OpModeSelect6, scsi.OpModeSelect10,
		scsi.OpLogSense, scsi.OpPersistentReserveIn, scsi.OpPersistentReserveOut,
		scsi.OpReceiveDiagnosticResults, scsi.OpReadBuffer:
		return true
	}
	return false
}

// reportTargetPortGroups answers REPORT TARGET PORT GROUPS with groups.
func reportTargetPortGroups(groups []PortGroup, cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	if len(cdb) < 12 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(0, -1)}
	}
	extended := false
	switch cdb[1] >> 5 {
	case 0:
	case 1:
		extended = true
	default:
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(1, 7)}
	}
	data := appendTargetPortGroups(nil, groups, extended)
	alloc := int(binary.BigEndian.Uint32(cdb[6:10]))
	wanted := min(len(data), alloc)
	return iscsi.Response{ReadLen: copy(cmd.ReadBuf, data[:wanted]), Wanted: wanted}
}

// appendTargetPortGroups appends REPORT TARGET PORT GROUPS parameter
// data for groups, with the extended header when extended is set.
func appendTargetPortGroups(b []byte, groups []PortGroup, extended bool) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	if extended {
		b = append(b, 0x10, rtpgTransitionTime, 0, 0)
	}
	for _, g := range groups {
		st := byte(g.State) & 0x0f
		if g.Preferred {
			st |= 0x80
		}
		b = append(b, st, rtpgSupported, byte(g.ID>>8), byte(g.ID), 0, byte(g.Status), 0, byte(min(len(g.Ports), 255)))
		for _, p := range g.Ports[:min(len(g.Ports), 255)] {
			b = append(b, 0, 0, byte(p>>8), byte(p))
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// setTargetPortGroups executes SET TARGET PORT GROUPS: refused unless
// the mode is explicit, each descriptor checked (a known group, a state
// one may request, no group twice), then handed to the Shared.
func setTargetPortGroups(ctx context.Context, s Shared, cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	if s.Mode()&ALUAExplicit == 0 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(1, 4)}
	}
	if len(cdb) < 12 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(0, -1)}
	}
	param := cmd.WriteData
	if plen := int(binary.BigEndian.Uint32(cdb[6:10])); len(param) > plen {
		param = param[:plen]
	}
	if len(param) < 4 || (len(param)-4)%4 != 0 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.FixedSense(scsi.SenseIllegalRequest, scsi.ASCParameterListLengthError)}
	}
	known := map[uint16]bool{}
	for _, g := range s.PortGroups() {
		known[g.ID] = true
	}
	states := map[uint16]AccessState{}
	for off := 4; off < len(param); off += 4 {
		st := AccessState(param[off] & 0x0f)
		switch st {
		case AccessActiveOptimized, AccessActiveNonOptimized, AccessStandby, AccessUnavailable:
		default:
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInParamList(off, 3)}
		}
		id := binary.BigEndian.Uint16(param[off+2:])
		if _, dup := states[id]; dup || !known[id] {
			return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInParamList(off+2, 7)}
		}
		states[id] = st
	}
	if len(states) == 0 {
		return iscsi.Response{}
	}
	st, sense := s.SetPortGroups(ctx, states)
	return iscsi.Response{Status: st, Sense: sense}
}
