package passthrough

// Persistent reservations (SPC-4 5.13, PERSISTENT RESERVE IN and
// PERSISTENT RESERVE OUT) for one logical unit, emulated here for every
// initiator port: the device behind the gateway sees a single initiator,
// so it can neither tell the hosts apart nor be trusted with their
// reservations.
//
// A PR keeps a cached copy of the logical unit's PRRecord for the checks
// every command makes (Conflict, Active). Every PERSISTENT RESERVE OUT
// loads the latest record from the PRStore, applies the service action to
// a copy and stores it with compare-and-swap, retrying when another writer
// got there first: nothing here assumes this PR is the store's only user.
//
// PERSISTENT RESERVE OUT parameter list (24 bytes, more with SPEC_I_PT):
//
//	 0-7   RESERVATION KEY
//	 8-15  SERVICE ACTION RESERVATION KEY
//	16-19  obsolete
//	20     SPEC_I_PT (bit 3)  ALL_TG_PT (bit 2)  APTPL (bit 0)
//	21-23  reserved, obsolete
//	24-27  TRANSPORTID PARAMETER DATA LENGTH (SPEC_I_PT only)
//	28-    TransportIDs
//
// REGISTER AND MOVE has its own:
//
//	 0-7   RESERVATION KEY
//	 8-15  SERVICE ACTION RESERVATION KEY
//	17     UNREG (bit 1)  APTPL (bit 0)
//	18-19  RELATIVE TARGET PORT IDENTIFIER
//	20-23  TRANSPORTID PARAMETER DATA LENGTH
//	24-    TransportID
//
// iSCSI TransportID (SPC-4 7.6.4.6), padded with zeros to a multiple of 4:
//
//	0      FORMAT CODE (bits 7-6: 00b name, 01b port)  PROTOCOL IDENTIFIER (bits 3-0: 5h)
//	2-3    ADDITIONAL LENGTH
//	4-     "iqn.name" NUL                  (format 00b: the initiator device)
//	4-     "iqn.name,i,0x123456789abc" NUL (format 01b: one initiator port)

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// PRType is the TYPE of a persistent reservation (SPC-4 5.13.1, table
// "Persistent reservation type codes").
type PRType uint8

// Persistent reservation types.
const (
	PRWriteExclusive                 PRType = 0x1
	PRExclusiveAccess                PRType = 0x3
	PRWriteExclusiveRegistrantsOnly  PRType = 0x5
	PRExclusiveAccessRegistrantsOnly PRType = 0x6
	PRWriteExclusiveAllRegistrants   PRType = 0x7
	PRExclusiveAccessAllRegistrants  PRType = 0x8
)

// String returns the type's name as SPC-4 spells it.
func (t PRType) String() string {
	switch t {
	case PRWriteExclusive:
		return "Write Exclusive"
	case PRExclusiveAccess:
		return "Exclusive Access"
	case PRWriteExclusiveRegistrantsOnly:
		return "Write Exclusive - Registrants Only"
	case PRExclusiveAccessRegistrantsOnly:
		return "Exclusive Access - Registrants Only"
	case PRWriteExclusiveAllRegistrants:
		return "Write Exclusive - All Registrants"
	case PRExclusiveAccessAllRegistrants:
		return "Exclusive Access - All Registrants"
	}
	return fmt.Sprintf("PRType(0x%x)", uint8(t))
}

// Valid reports whether t is one of the six types SPC-4 defines.
func (t PRType) Valid() bool {
	switch t {
	case PRWriteExclusive, PRExclusiveAccess, PRWriteExclusiveRegistrantsOnly,
		PRExclusiveAccessRegistrantsOnly, PRWriteExclusiveAllRegistrants, PRExclusiveAccessAllRegistrants:
		return true
	}
	return false
}

// AllRegistrants reports whether every registered I_T nexus holds a
// reservation of type t (SPC-4 5.13.10).
func (t PRType) AllRegistrants() bool {
	return t == PRWriteExclusiveAllRegistrants || t == PRExclusiveAccessAllRegistrants
}

// registrantsOnly reports whether t is a registrants only type.
func (t PRType) registrantsOnly() bool {
	return t == PRWriteExclusiveRegistrantsOnly || t == PRExclusiveAccessRegistrantsOnly
}

// writeExclusive reports whether t lets I_T nexuses without access read.
func (t PRType) writeExclusive() bool {
	return t == PRWriteExclusive || t == PRWriteExclusiveRegistrantsOnly || t == PRWriteExclusiveAllRegistrants
}

// PRNexus is one I_T nexus as PR sees it. In what PR hands to [PRHooks],
// an empty ISID stands for every initiator port of InitiatorName through
// TargetPort (a registration made with a name-only TransportID); see
// [PRNexus.Covers].
type PRNexus struct {
	// InitiatorName is the iSCSI initiator name, as in the TransportID.
	// It is compared without regard to case.
	InitiatorName string
	// ISID is the initiator session identifier in 12 hex digits: the
	// initiator port is InitiatorName + ",i,0x" + ISID.
	ISID string
	// TargetPort names the target port, "targetname,t,0x0001".
	TargetPort string
	// RelTargetPortID is the target port's relative target port
	// identifier (>= 1), unique among [PRHooks.Ports].
	RelTargetPortID uint16
}

// Covers reports whether m is one of the I_T nexuses n stands for: the
// same initiator name and target port, and the same ISID unless n's is
// empty.
func (n PRNexus) Covers(m PRNexus) bool {
	return strings.EqualFold(n.InitiatorName, m.InitiatorName) &&
		strings.EqualFold(n.TargetPort, m.TargetPort) &&
		(n.ISID == "" || strings.EqualFold(n.ISID, m.ISID))
}

// String returns the initiator port and target port, for logs.
func (n PRNexus) String() string {
	if n.ISID == "" {
		return n.InitiatorName + " via " + n.TargetPort
	}
	return n.InitiatorName + ",i,0x" + n.ISID + " via " + n.TargetPort
}

// PRTargetPort is a target port through which the logical unit is
// reachable.
type PRTargetPort struct {
	// Name is the target port's name, "targetname,t,0x0001", as in
	// [PRNexus.TargetPort].
	Name string
	// RelTargetPortID is its relative target port identifier.
	RelTargetPortID uint16
}

// PRHooks connect a PR to the rest of its logical unit. Every field may be
// nil. PR calls them after a PERSISTENT RESERVE OUT took effect, on the
// goroutine that called [PR.Out] and with no lock of its own held, so
// they may call back into the PR.
type PRHooks struct {
	// UA establishes a unit attention condition with asc for every I_T
	// nexus that n covers ([PRNexus.Covers]) on this logical unit.
	UA func(n PRNexus, asc scsi.ASC)
	// Abort aborts the tasks of every I_T nexus that n covers on this
	// logical unit (PREEMPT AND ABORT), and returns once they can no longer
	// touch the medium. ctx is the one given to [PR.Out]: n may cover the
	// I_T nexus that sent the PREEMPT AND ABORT (when it preempted its own
	// key), and the task running Out must not be aborted or waited for.
	Abort func(ctx context.Context, n PRNexus)
	// Ports lists the target ports through which the logical unit is
	// reachable (ALL_TG_PT, REGISTER AND MOVE). Nil means only the port of
	// the I_T nexus at hand.
	Ports func() []PRTargetPort
}

// Limits and fixed capabilities.
const (
	// prMaxCASTries bounds the load-apply-swap rounds of one PERSISTENT
	// RESERVE OUT before it gives up with ABORTED COMMAND.
	prMaxCASTries = 32
	// prMaxRegistrations bounds the registrations of one logical unit
	// (INSUFFICIENT REGISTRATION RESOURCES past it).
	prMaxRegistrations = 1024
	// prAllowCommands is REPORT CAPABILITIES' ALLOW COMMANDS field, 011b:
	// TEST UNIT READY is allowed through Write Exclusive and Exclusive
	// Access reservations, MODE SENSE, READ ATTRIBUTE, READ BUFFER,
	// RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC RESULTS, REPORT SUPPORTED
	// OPERATION CODES, REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS and READ
	// DEFECT DATA through Write Exclusive ones, as [PR.Conflict] does.
	prAllowCommands = 0x3
)

// PR is the persistent reservation state of one logical unit and its
// commands. It is safe for concurrent use.
type PR struct {
	store PRStore
	key   string
	hooks PRHooks

	// out serializes this PR's PERSISTENT RESERVE OUT commands, so they do
	// not make each other retry; other writers of the store still may.
	out sync.Mutex

	mu  sync.RWMutex
	rec PRRecord // latest record seen, read by Conflict and Active
	ver uint64   // its version
	// active mirrors len(rec.Registrations) > 0, so that commands to a
	// logical unit nobody registered with take no lock.
	active atomic.Bool
}

// NewPR returns the persistent reservations of the logical unit whose
// record is key in store (its device identity), restoring what the store
// holds (with a [FileStore], what was saved with APTPL set). A nil store
// is a new [MemStore].
func NewPR(ctx context.Context, store PRStore, key string, hooks PRHooks) (*PR, error) {
	if store == nil {
		store = &MemStore{}
	}
	rec, ver, err := store.Load(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("passthrough: persistent reservations of %q: %w", key, err)
	}
	if err := rec.Validate(); err != nil {
		return nil, fmt.Errorf("passthrough: persistent reservations of %q: %w", key, err)
	}
	p := &PR{store: store, key: key, hooks: hooks, rec: rec, ver: ver}
	p.active.Store(len(rec.Registrations) > 0)
	return p, nil
}

// Snapshot returns a copy of the latest record this PR has seen.
func (p *PR) Snapshot() PRRecord {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.rec.clone()
}

// Refresh loads the latest record from the store, so that Conflict and
// Active see what other writers of a shared store did.
func (p *PR) Refresh(ctx context.Context) error {
	_, err := p.load(ctx)
	return err
}

// load reads the latest record, checks it and makes it the cached one.
func (p *PR) load(ctx context.Context) (PRRecord, error) {
	rec, ver, err := p.store.Load(ctx, p.key)
	if err == nil {
		err = rec.Validate()
	}
	if err != nil {
		return PRRecord{}, fmt.Errorf("passthrough: persistent reservations of %q: %w", p.key, err)
	}
	p.cache(rec, ver)
	return rec, nil
}

// cache makes rec at version ver the cached record unless a newer one is.
func (p *PR) cache(rec PRRecord, ver uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ver >= p.ver {
		p.rec, p.ver = rec.clone(), ver
		p.active.Store(len(rec.Registrations) > 0)
	}
}

// Active reports whether any registration exists (a reservation needs
// one). While it does, SPC-2 RESERVE and RELEASE conflict (SPC-4 5.13.3:
// PR reports CRH 0).
func (p *PR) Active() bool { return p.active.Load() }

// Conflict reports whether cdb from n conflicts with the persistent
// reservation state and must end with RESERVATION CONFLICT: the SPC-4
// table of commands allowed in the presence of various reservations
// (5.13.1) and SBC-3's (4.17), by reservation type and by whether n holds
// the reservation or is registered, plus SPC-2 RESERVE and RELEASE, which
// conflict while any registration exists (5.13.3). PERSISTENT RESERVE IN
// and OUT never conflict here; [PR.Out] sorts out its service actions.
// Commands neither table names conflict for I_T nexuses without access.
func (p *PR) Conflict(n PRNexus, cdb []byte) bool {
	if len(cdb) == 0 || !p.active.Load() {
		return false // without registrations nothing conflicts
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	rec := &p.rec
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpReserve6, scsi.OpRelease6, scsi.OpReserve10, scsi.OpRelease10:
		return len(rec.Registrations) > 0
	}
	if rec.Type == 0 {
		return false
	}
	if i := rec.find(n); i >= 0 && (rec.holds(i) || !rec.exclusiveToHolder()) {
		return false
	}
	switch prAccessOf(cdb) {
	case prAccessAny:
		return false
	case prAccessRead:
		return !rec.Type.writeExclusive()
	}
	return true
}

// prAccess is how a command fares against a reservation it does not hold.
type prAccess uint8

// Command classes of the allowed-commands tables.
const (
	// prAccessAny: allowed whatever the type.
	prAccessAny prAccess = iota
	// prAccessRead: allowed through the Write Exclusive types, conflicts
	// with the Exclusive Access types.
	prAccessRead
	// prAccessWrite: conflicts with every type.
	prAccessWrite
)

// String names the class.
func (a prAccess) String() string {
	switch a {
	case prAccessAny:
		return "any"
	case prAccessRead:
		return "read"
	case prAccessWrite:
		return "write"
	}
	return fmt.Sprintf("prAccess(%d)", uint8(a))
}

// Operation codes and service actions the tables name that sgio/scsi does
// not.
const (
	opAccessControlIn   scsi.Opcode = 0x86
	opAccessControlOut  scsi.Opcode = 0x87
	opReadAttribute     scsi.Opcode = 0x8c
	opReadBuffer16      scsi.Opcode = 0x9b
	opServiceActionIn12 scsi.Opcode = 0xab

	saReportReferrals      scsi.ServiceAction = 0x13 // SERVICE ACTION IN(16)
	saManagementProtocolIn scsi.ServiceAction = 0x10 // MAINTENANCE IN
	saReadMediaSerial      scsi.ServiceAction = 0x01 // SERVICE ACTION IN(12)
)

// prAccessOf classifies cdb by the SPC-4 and SBC-3 tables of commands
// allowed in the presence of persistent reservations.
func prAccessOf(cdb []byte) prAccess {
	op := scsi.Opcode(cdb[0])
	sa, _ := scsi.HasServiceAction(cdb)
	switch op {
	case scsi.OpTestUnitReady, scsi.OpInquiry, scsi.OpRequestSense, scsi.OpReportLUNs,
		scsi.OpLogSense, scsi.OpReadCapacity10, scsi.OpPersistentReserveIn,
		scsi.OpPersistentReserveOut, opAccessControlIn, opAccessControlOut:
		return prAccessAny
	case scsi.OpRead6, scsi.OpRead10, scsi.OpRead12, scsi.OpRead16,
		scsi.OpVerify10, scsi.OpVerify12, scsi.OpVerify16,
		scsi.OpPreFetch10, scsi.OpPreFetch16,
		scsi.OpModeSense6, scsi.OpModeSense10, scsi.OpReadBuffer, opReadBuffer16,
		opReadAttribute, scsi.OpReceiveCopyResults, scsi.OpReceiveDiagnosticResults,
		scsi.OpReadDefectData10, scsi.OpReadDefectData12, scsi.OpSecurityProtocolIn:
		return prAccessRead
	case scsi.OpPreventAllowMediumRemoval:
		// PREVENT 00b (allow removal) is allowed; preventing it is not.
		if len(cdb) > 4 && cdb[4]&0x03 == 0 {
			return prAccessAny
		}
	case scsi.OpStartStopUnit:
		// START 1 with POWER CONDITION 0h is allowed; stopping is not.
		if len(cdb) > 4 && cdb[4]&0x01 != 0 && cdb[4]>>4 == 0 {
			return prAccessAny
		}
	case scsi.OpServiceActionIn16:
		switch sa {
		case scsi.SAReadCapacity16:
			return prAccessAny
		case scsi.SAGetLBAStatus, saReportReferrals:
			return prAccessRead
		}
	case scsi.OpMaintenanceIn:
		switch sa {
		case scsi.SAReportIdentifyingInfo, scsi.SAReportTargetPortGroups, scsi.SAReportAliases,
			scsi.SAReportPriority, scsi.SAReportTimestamp:
			return prAccessAny
		case scsi.SAReportSupportedOpcodes, scsi.SAReportSupportedTMFs, saManagementProtocolIn:
			return prAccessRead
		}
	case opServiceActionIn12:
		if len(cdb) > 1 && scsi.ServiceAction(cdb[1]&0x1f) == saReadMediaSerial {
			return prAccessRead
		}
	case scsi.OpVariableLength:
		if sa == scsi.SARead32 || sa == scsi.SAVerify32 {
			return prAccessRead
		}
	}
	return prAccessWrite
}

// prInAction is a PERSISTENT RESERVE IN service action.
type prInAction uint8

// PERSISTENT RESERVE IN service actions.
const (
	prinReadKeys           prInAction = 0x0
	prinReadReservation    prInAction = 0x1
	prinReportCapabilities prInAction = 0x2
	prinReadFullStatus     prInAction = 0x3
)

// String returns the service action's name.
func (a prInAction) String() string {
	switch a {
	case prinReadKeys:
		return "READ KEYS"
	case prinReadReservation:
		return "READ RESERVATION"
	case prinReportCapabilities:
		return "REPORT CAPABILITIES"
	case prinReadFullStatus:
		return "READ FULL STATUS"
	}
	return fmt.Sprintf("prInAction(0x%02x)", uint8(a))
}

// In executes PERSISTENT RESERVE IN (10-byte cdb) for n on the latest
// record and writes the parameter data into out. wanted is the length of
// the parameter data cut to the CDB's ALLOCATION LENGTH, which is not an
// error; written = min(wanted, len(out)). A failure reading the store is
// a CHECK CONDITION.
func (p *PR) In(ctx context.Context, n PRNexus, cdb []byte, out []byte) (written, wanted int, st scsi.Status, sense []byte) {
	if len(cdb) < 10 {
		return 0, 0, scsi.CheckCondition, scsi.InvalidFieldInCDB(0, -1)
	}
	sa := prInAction(cdb[1] & 0x1f)
	if sa > prinReadFullStatus {
		return 0, 0, scsi.CheckCondition, scsi.InvalidFieldInCDB(1, 4)
	}
	alloc := int(binary.BigEndian.Uint16(cdb[7:9]))
	rec, err := p.load(ctx)
	if err != nil {
		st, sense := prStoreFailure(err)
		return 0, 0, st, sense
	}
	var data []byte
	switch sa {
	case prinReadKeys:
		data = rec.readKeys()
	case prinReadReservation:
		data = rec.readReservation()
	case prinReportCapabilities:
		data = rec.reportCapabilities(p.store.Durable())
	case prinReadFullStatus:
		data = rec.readFullStatus()
	}
	wanted = min(len(data), alloc)
	written = copy(out, data[:wanted])
	return written, wanted, scsi.Good, nil
}

// readKeys returns READ KEYS parameter data: PRGENERATION, ADDITIONAL
// LENGTH and a key per registration, whatever the allocation length.
func (rec *PRRecord) readKeys() []byte {
	b := make([]byte, 8, 8+8*len(rec.Registrations))
	binary.BigEndian.PutUint32(b[0:], rec.Generation)
	binary.BigEndian.PutUint32(b[4:], uint32(8*len(rec.Registrations)))
	for i := range rec.Registrations {
		b = binary.BigEndian.AppendUint64(b, rec.Registrations[i].Key)
	}
	return b
}

// readReservation returns READ RESERVATION parameter data: the header,
// then, when a reservation exists, its key (0 for the all registrants
// types), SCOPE and TYPE.
func (rec *PRRecord) readReservation() []byte {
	b := make([]byte, 8, 24)
	binary.BigEndian.PutUint32(b[0:], rec.Generation)
	if rec.Type == 0 {
		return b
	}
	b = b[:24]
	binary.BigEndian.PutUint32(b[4:], 16)
	if !rec.Type.AllRegistrants() {
		binary.BigEndian.PutUint64(b[8:], rec.Registrations[rec.holder()].Key)
	}
	b[21] = byte(rec.Type) // SCOPE 0h: LU_SCOPE
	return b
}

// reportCapabilities returns REPORT CAPABILITIES parameter data: CRH 0,
// SIP_C and ATP_C 1, PTPL_C as the store can, TMV 1, ALLOW COMMANDS 011b,
// PTPL_A as the record says, and the six types.
func (rec *PRRecord) reportCapabilities(durable bool) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], 8)
	b[2] = 0x08 | 0x04 // SIP_C, ATP_C
	if durable {
		b[2] |= 0x01 // PTPL_C
	}
	b[3] = 0x80 | prAllowCommands<<4 // TMV
	if rec.APTPL {
		b[3] |= 0x01 // PTPL_A
	}
	b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02 // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
	b[5] = 0x01                             // EX_AC_AR
	return b
}

// readFullStatus returns READ FULL STATUS parameter data: the header and
// a full status descriptor per registration, whose TransportID has format
// 01b (initiator port) or, for a name-only registration, 00b.
//
//	 0-7   RESERVATION KEY
//	12     ALL_TG_PT (bit 1)  R_HOLDER (bit 0)
//	13     SCOPE  TYPE (when R_HOLDER)
//	18-19  RELATIVE TARGET PORT IDENTIFIER
//	20-23  ADDITIONAL DESCRIPTOR LENGTH
//	24-    TransportID
func (rec *PRRecord) readFullStatus() []byte {
	b := make([]byte, 8, 8+64*len(rec.Registrations))
	binary.BigEndian.PutUint32(b[0:], rec.Generation)
	for i := range rec.Registrations {
		r := &rec.Registrations[i]
		var d [24]byte
		binary.BigEndian.PutUint64(d[0:], r.Key)
		if r.AllTgPt {
			d[12] |= 0x02
		}
		if rec.holds(i) {
			d[12] |= 0x01
			d[13] = byte(rec.Type)
		}
		binary.BigEndian.PutUint16(d[18:], r.RelTargetPortID)
		tid := appendTransportID(nil, r.InitiatorName, r.ISID)
		binary.BigEndian.PutUint32(d[20:], uint32(len(tid)))
		b = append(append(b, d[:]...), tid...)
	}
	binary.BigEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// iSCSI TransportID constants (SPC-4 7.6.4.6).
const (
	tidProtocolISCSI byte = 0x5
	tidFormatName    byte = 0x00 // 00b: iSCSI name
	tidFormatPort    byte = 0x40 // 01b: iSCSI name, ",i,0x", ISID
	tidPortSeparator      = ",i,0x"
	tidMinAdditional      = 20 // the least ADDITIONAL LENGTH
	maxISCSINameLen       = 223
)

// appendTransportID appends the iSCSI TransportID of the initiator port
// name,i,0xisid (format 01b), or of initiator device name when isid is
// empty (format 00b), NUL-terminated and padded to a multiple of 4.
func appendTransportID(dst []byte, name, isid string) []byte {
	s, format := name, tidFormatName
	if isid != "" {
		s, format = name+tidPortSeparator+isid, tidFormatPort
	}
	n := max((len(s)+1+3)&^3, tidMinAdditional) // ADDITIONAL LENGTH
	dst = append(dst, format|tidProtocolISCSI, 0, byte(n>>8), byte(n))
	dst = append(dst, s...)
	return append(dst, make([]byte, n-len(s))...)
}

// prTID is a TransportID from a PERSISTENT RESERVE OUT parameter list.
type prTID struct {
	name string // lower case
	isid string // 12 lower-case hex digits, "" for format 00b
	off  int    // offset in the parameter list, for field pointers
}

// errTIDLength marks a TransportID that runs past the data holding it.
var errTIDLength = errors.New("passthrough: TransportID truncated")

// tidFieldError is a TransportID field PR refuses, at byte Off (bit Bit,
// -1 for none) of the TransportID.
type tidFieldError struct{ Off, Bit int }

func (e *tidFieldError) Error() string {
	return fmt.Sprintf("passthrough: invalid TransportID field at byte %d", e.Off)
}

// parseTransportID decodes the iSCSI TransportID at the start of b and
// returns it with its length. It fails with errTIDLength when b is too
// short, and with a *tidFieldError for a protocol other than iSCSI, a
// reserved format, or a malformed name or ISID.
func parseTransportID(b []byte) (prTID, int, error) {
	if len(b) < 4 {
		return prTID{}, 0, errTIDLength
	}
	if b[0]&0x0f != tidProtocolISCSI {
		return prTID{}, 0, &tidFieldError{Off: 0, Bit: 3}
	}
	format := b[0] & 0xc0
	if format != tidFormatName && format != tidFormatPort {
		return prTID{}, 0, &tidFieldError{Off: 0, Bit: 7}
	}
	n := 4 + int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b) {
		return prTID{}, 0, errTIDLength
	}
	s := string(b[4:n])
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	var t prTID
	if format == tidFormatPort {
		i := strings.Index(asciiLower(s), tidPortSeparator)
		if i < 0 || !validISID(s[i+len(tidPortSeparator):]) {
			return prTID{}, 0, &tidFieldError{Off: 4, Bit: -1}
		}
		s, t.isid = s[:i], strings.ToLower(s[i+len(tidPortSeparator):])
	}
	if !validInitiatorName(s) {
		return prTID{}, 0, &tidFieldError{Off: 4, Bit: -1}
	}
	t.name = strings.ToLower(s)
	return t, n, nil
}

// asciiLower returns s with ASCII upper-case letters in lower case and
// every other byte as it is (strings.ToLower may change the length of
// invalid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// validInitiatorName reports whether s can be an iSCSI name: 1 to 223
// printable ASCII bytes without spaces or commas (RFC 7143 4.2.7.1 limits
// names further; PR only needs them to compare and print).
func validInitiatorName(s string) bool {
	if s == "" || len(s) > maxISCSINameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == ',' {
			return false
		}
	}
	return true
}

// validISID reports whether s is an ISID in 12 hex digits.
func validISID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// prOutAction is a PERSISTENT RESERVE OUT service action.
type prOutAction uint8

// PERSISTENT RESERVE OUT service actions.
const (
	proutRegister          prOutAction = 0x0
	proutReserve           prOutAction = 0x1
	proutRelease           prOutAction = 0x2
	proutClear             prOutAction = 0x3
	proutPreempt           prOutAction = 0x4
	proutPreemptAndAbort   prOutAction = 0x5
	proutRegisterAndIgnore prOutAction = 0x6
	proutRegisterAndMove   prOutAction = 0x7
)

// String returns the service action's name.
func (a prOutAction) String() string {
	switch a {
	case proutRegister:
		return "REGISTER"
	case proutReserve:
		return "RESERVE"
	case proutRelease:
		return "RELEASE"
	case proutClear:
		return "CLEAR"
	case proutPreempt:
		return "PREEMPT"
	case proutPreemptAndAbort:
		return "PREEMPT AND ABORT"
	case proutRegisterAndIgnore:
		return "REGISTER AND IGNORE EXISTING KEY"
	case proutRegisterAndMove:
		return "REGISTER AND MOVE"
	}
	return fmt.Sprintf("prOutAction(0x%02x)", uint8(a))
}

// prOut is a decoded PERSISTENT RESERVE OUT: CDB and parameter list.
type prOut struct {
	sa      prOutAction
	scope   byte
	typ     PRType
	key     uint64 // RESERVATION KEY
	sark    uint64 // SERVICE ACTION RESERVATION KEY
	specIPT bool
	allTgPt bool
	aptpl   bool
	unreg   bool
	rtpi    uint16
	tids    []prTID
}

// prOutcome is what applying a PERSISTENT RESERVE OUT to a record gave:
// the status and sense to answer, whether the record changed and must be
// stored, and what to tell the rest of the logical unit once it is.
type prOutcome struct {
	st     scsi.Status
	sense  []byte
	write  bool
	uas    []prUA
	aborts []PRNexus
}

// prUA is a unit attention to establish.
type prUA struct {
	n   PRNexus
	asc scsi.ASC
}

// prConflict is RESERVATION CONFLICT.
func prConflict() prOutcome { return prOutcome{st: scsi.ReservationConflict} }

// prCheck is CHECK CONDITION with sense.
func prCheck(sense []byte) prOutcome { return prOutcome{st: scsi.CheckCondition, sense: sense} }

// prDone is GOOD; write says the record changed.
func prDone(write bool) prOutcome { return prOutcome{st: scsi.Good, write: write} }

// prIllegal returns ILLEGAL REQUEST sense data with asc.
func prIllegal(asc scsi.ASC) []byte { return scsi.FixedSense(scsi.SenseIllegalRequest, asc) }

// prStoreFailure is the answer when the store fails: INSUFFICIENT
// REGISTRATION RESOURCES when it ran out of space; NOT READY, LOGICAL
// UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION (retried by
// initiators) when it is unreachable for now ([ErrPRUnavailable]);
// INTERNAL TARGET FAILURE otherwise.
func prStoreFailure(err error) (scsi.Status, []byte) {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return scsi.CheckCondition, prIllegal(scsi.ASCInsufficientRegResources)
	}
	if errors.Is(err, ErrPRUnavailable) {
		return scsi.CheckCondition, scsi.FixedSense(scsi.SenseNotReady, ascAccessTransition)
	}
	return scsi.CheckCondition, scsi.FixedSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
}

// Out executes PERSISTENT RESERVE OUT (10-byte cdb) for n with its
// parameter list: param holds the data-out buffer, of which the first
// PARAMETER LIST LENGTH bytes are read (fewer when param is shorter).
//
// The CDB and the parameter list are checked first; then the latest
// record is loaded, the service action applied and the result stored with
// compare-and-swap, again from the load when another writer came first
// (ABORTED COMMAND after prMaxCASTries rounds). A store failure is a CHECK
// CONDITION and changes nothing. Once the new record is stored, the unit
// attentions and aborts it calls for go through [PRHooks].
func (p *PR) Out(ctx context.Context, n PRNexus, cdb, param []byte) (scsi.Status, []byte) {
	if !validInitiatorName(n.InitiatorName) || !validISID(n.ISID) || n.TargetPort == "" {
		// The caller's mistake: an I_T nexus always has all three.
		return scsi.CheckCondition, scsi.FixedSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
	}
	o, bad := decodePROut(cdb, param, p.store.Durable())
	if bad != nil {
		return bad.st, bad.sense
	}
	var ports []PRTargetPort
	if p.hooks.Ports != nil && (o.allTgPt || o.sa == proutRegisterAndMove) {
		ports = p.hooks.Ports()
	}
	res, err := p.commit(ctx, func(rec *PRRecord) prOutcome { return applyPROut(rec, n, &o, ports) })
	if err != nil {
		if errors.Is(err, ErrPRConflict) {
			return scsi.CheckCondition, scsi.FixedSense(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
		}
		return prStoreFailure(err)
	}
	if res.st == scsi.Good {
		p.notify(ctx, &res)
	}
	return res.st, res.sense
}

// commit runs apply on a copy of the latest record and stores the result
// when apply says so, retrying from the load when another writer stored
// first. It fails with the store's error, or one wrapping ErrPRConflict
// when every round lost.
func (p *PR) commit(ctx context.Context, apply func(*PRRecord) prOutcome) (prOutcome, error) {
	p.out.Lock()
	defer p.out.Unlock()
	var err error
	for range prMaxCASTries {
		var rec PRRecord
		var ver uint64
		rec, ver, err = p.store.Load(ctx, p.key)
		if err == nil {
			err = rec.Validate()
		}
		if err != nil {
			return prOutcome{}, fmt.Errorf("passthrough: persistent reservations of %q: %w", p.key, err)
		}
		p.cache(rec, ver)
		work := rec.clone()
		res := apply(&work)
		if res.st != scsi.Good || !res.write {
			return res, nil
		}
		if err := work.Validate(); err != nil {
			// A bug here, not a reason to store a record no load accepts.
			return prOutcome{}, fmt.Errorf("passthrough: persistent reservations of %q: %w", p.key, err)
		}
		ver, err = p.store.CompareAndSwap(ctx, p.key, ver, work)
		if errors.Is(err, ErrPRConflict) {
			continue
		}
		if err != nil {
			return prOutcome{}, fmt.Errorf("passthrough: persistent reservations of %q: %w", p.key, err)
		}
		p.cache(work, ver)
		return res, nil
	}
	return prOutcome{}, err
}

// notify hands res' unit attentions and aborts to the hooks.
func (p *PR) notify(ctx context.Context, res *prOutcome) {
	if p.hooks.UA != nil {
		for _, u := range res.uas {
			p.hooks.UA(u.n, u.asc)
		}
	}
	if p.hooks.Abort != nil {
		for _, a := range res.aborts {
			p.hooks.Abort(ctx, a)
		}
	}
}

// decodePROut decodes and checks what needs no state: the CDB's service
// action, SCOPE and TYPE, the parameter list's length, its flags and its
// TransportIDs. durable says whether APTPL may be set.
func decodePROut(cdb, param []byte, durable bool) (prOut, *prOutcome) {
	var o prOut
	fail := func(r prOutcome) (prOut, *prOutcome) { return o, &r }
	if len(cdb) < 10 {
		return fail(prCheck(scsi.InvalidFieldInCDB(0, -1)))
	}
	o.sa = prOutAction(cdb[1] & 0x1f)
	if o.sa > proutRegisterAndMove {
		return fail(prCheck(scsi.InvalidFieldInCDB(1, 4)))
	}
	o.scope, o.typ = cdb[2]>>4, PRType(cdb[2]&0x0f)
	switch o.sa {
	case proutReserve, proutPreempt, proutPreemptAndAbort:
		if !o.typ.Valid() {
			return fail(prCheck(scsi.InvalidFieldInCDB(2, 3)))
		}
		if o.scope != 0 {
			return fail(prCheck(scsi.InvalidFieldInCDB(2, 7)))
		}
	}
	if plen := binary.BigEndian.Uint32(cdb[5:9]); uint64(len(param)) > uint64(plen) {
		param = param[:plen]
	}
	lenErr := prCheck(prIllegal(scsi.ASCParameterListLengthError))
	if len(param) < 24 {
		return fail(lenErr)
	}
	be := binary.BigEndian
	o.key, o.sark = be.Uint64(param[0:]), be.Uint64(param[8:])
	if o.sa == proutRegisterAndMove {
		o.unreg, o.aptpl = param[17]&0x02 != 0, param[17]&0x01 != 0
		o.rtpi = be.Uint16(param[18:])
		if o.aptpl && !durable {
			return fail(prCheck(scsi.InvalidFieldInParamList(17, 0)))
		}
		if o.sark == 0 {
			return fail(prCheck(scsi.InvalidFieldInParamList(8, -1)))
		}
		tpdl := uint64(be.Uint32(param[20:]))
		if 24+tpdl > uint64(len(param)) {
			return fail(lenErr)
		}
		t, _, err := parseTransportID(param[24 : 24+tpdl])
		if r := tidOutcome(err, 24); r != nil {
			return fail(*r)
		}
		t.off = 24
		o.tids = []prTID{t}
		return o, nil
	}
	o.specIPT, o.allTgPt, o.aptpl = param[20]&0x08 != 0, param[20]&0x04 != 0, param[20]&0x01 != 0
	if o.specIPT && o.sa != proutRegister {
		return fail(prCheck(scsi.InvalidFieldInParamList(20, 3)))
	}
	if o.sa != proutRegister && o.sa != proutRegisterAndIgnore {
		o.allTgPt, o.aptpl = false, false // valid only for the REGISTER service actions
	}
	if o.aptpl && !durable {
		return fail(prCheck(scsi.InvalidFieldInParamList(20, 0)))
	}
	if !o.specIPT {
		if len(param) != 24 {
			return fail(lenErr)
		}
		return o, nil
	}
	if len(param) < 28 {
		return fail(lenErr)
	}
	tpdl := uint64(be.Uint32(param[24:]))
	if 28+tpdl > uint64(len(param)) {
		return fail(lenErr)
	}
	for off := 28; off < 28+int(tpdl); {
		t, n, err := parseTransportID(param[off : 28+int(tpdl)])
		if r := tidOutcome(err, off); r != nil {
			return fail(*r)
		}
		t.off = off
		o.tids = append(o.tids, t)
		off += n
	}
	return o, nil
}

// tidOutcome turns a parseTransportID error for the TransportID at byte
// off of the parameter list into the answer: PARAMETER LIST LENGTH ERROR
// when it is truncated, INVALID FIELD IN PARAMETER LIST pointing at the
// field otherwise.
func tidOutcome(err error, off int) *prOutcome {
	var fe *tidFieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		r := prCheck(scsi.InvalidFieldInParamList(off+fe.Off, fe.Bit))
		return &r
	}
	r := prCheck(prIllegal(scsi.ASCParameterListLengthError))
	return &r
}

// applyPROut applies the decoded PERSISTENT RESERVE OUT o from n to rec.
// ports are the logical unit's target ports (ALL_TG_PT, REGISTER AND MOVE).
func applyPROut(rec *PRRecord, n PRNexus, o *prOut, ports []PRTargetPort) prOutcome {
	switch o.sa {
	case proutRegister, proutRegisterAndIgnore:
		return rec.register(n, o, ports)
	case proutReserve:
		return rec.reserve(n, o)
	case proutRelease:
		return rec.release(n, o)
	case proutClear:
		return rec.clearAll(n, o)
	case proutPreempt, proutPreemptAndAbort:
		return rec.preempt(n, o)
	case proutRegisterAndMove:
		return rec.registerAndMove(n, o, ports)
	}
	return prCheck(scsi.InvalidFieldInCDB(1, 4))
}

// registrant returns the index of n's registration when it exists and
// has key, or the answer: RESERVATION CONFLICT for an unregistered I_T
// nexus or another key.
func (rec *PRRecord) registrant(n PRNexus, key uint64) (int, *prOutcome) {
	i := rec.find(n)
	if i < 0 || rec.Registrations[i].Key != key {
		r := prConflict()
		return -1, &r
	}
	return i, nil
}

// register executes REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4
// 5.13.7): registers an unregistered I_T nexus (and with SPEC_I_PT those
// its TransportIDs name, with ALL_TG_PT through every target port),
// changes the key of a registered one, or unregisters it with a zero
// SERVICE ACTION RESERVATION KEY. PRGENERATION moves on every success.
func (rec *PRRecord) register(n PRNexus, o *prOut, ports []PRTargetPort) prOutcome {
	ignore := o.sa == proutRegisterAndIgnore
	res := prDone(true)
	i := rec.find(n)
	switch {
	case i < 0:
		if !ignore && o.key != 0 {
			return prConflict()
		}
		if o.sark != 0 {
			if r := rec.registerNew(n, o, ports); r != nil {
				return *r
			}
		}
	case !ignore && o.key != rec.Registrations[i].Key:
		return prConflict()
	case o.specIPT:
		return prCheck(scsi.InvalidFieldInParamList(20, 3))
	case o.sark == 0:
		res.uas = rec.unregister(rec.group(i))
	default:
		for _, j := range rec.group(i) {
			rec.Registrations[j].Key = o.sark
		}
	}
	rec.APTPL = o.aptpl
	rec.Generation++
	return res
}

// registerNew adds the registrations of an unregistered n and of the I_T
// nexuses o's TransportIDs name, on n's target port or, with ALL_TG_PT, on
// every target port. A name-only TransportID registers every initiator
// port of that name (n's too, when the name is n's). A TransportID naming
// an I_T nexus already registered is INVALID FIELD IN PARAMETER LIST;
// ALL_TG_PT leaves n's registrations through other ports as they are.
func (rec *PRRecord) registerNew(n PRNexus, o *prOut, ports []PRTargetPort) *prOutcome {
	type cand struct {
		r   PRRegistration
		tid int // index in o.tids; -1 for n itself
	}
	var cands []cand
	for _, t := range targetPorts(n, o.allTgPt, ports) {
		mk := func(name, isid string, tid int) cand {
			return cand{PRRegistration{Key: o.sark, InitiatorName: strings.ToLower(name), ISID: strings.ToLower(isid),
				TargetPort: t.Name, RelTargetPortID: t.RelTargetPortID, AllTgPt: o.allTgPt}, tid}
		}
		cands = append(cands, mk(n.InitiatorName, n.ISID, -1))
		for k, tid := range o.tids {
			cands = append(cands, mk(tid.name, tid.isid, k))
		}
	}
	absorbed := func(c *cand) bool { // by a name-only candidate of its name and port
		for j := range cands {
			if cands[j].r.ISID == "" && c.r.ISID != "" && overlaps(&cands[j].r, &c.r) {
				return true
			}
		}
		return false
	}
	var add []PRRegistration
next:
	for k := range cands {
		c := &cands[k]
		if absorbed(c) {
			continue
		}
		for j := range add {
			if overlaps(&add[j], &c.r) {
				continue next // named twice
			}
		}
		for j := range rec.Registrations {
			if !overlaps(&rec.Registrations[j], &c.r) {
				continue
			}
			if c.tid < 0 {
				continue next
			}
			r := prCheck(scsi.InvalidFieldInParamList(o.tids[c.tid].off, -1))
			return &r
		}
		add = append(add, c.r)
	}
	if len(rec.Registrations)+len(add) > prMaxRegistrations {
		r := prCheck(prIllegal(scsi.ASCInsufficientRegResources))
		return &r
	}
	rec.Registrations = append(rec.Registrations, add...)
	return nil
}

// targetPorts returns n's target port and, with all, every other port.
func targetPorts(n PRNexus, all bool, ports []PRTargetPort) []PRTargetPort {
	out := []PRTargetPort{{Name: n.TargetPort, RelTargetPortID: n.RelTargetPortID}}
	if !all {
		return out
	}
outer:
	for _, p := range ports {
		for _, q := range out {
			if strings.EqualFold(p.Name, q.Name) {
				continue outer
			}
		}
		out = append(out, p)
	}
	return out
}

// reserve executes RESERVE (SPC-4 5.13.9): a registered I_T nexus with its
// key creates the reservation, or finds it already holds the same one;
// anything else is RESERVATION CONFLICT. PRGENERATION does not move.
func (rec *PRRecord) reserve(n PRNexus, o *prOut) prOutcome {
	i, bad := rec.registrant(n, o.key)
	switch {
	case bad != nil:
		return *bad
	case rec.Type == 0:
		rec.Type = o.typ
		rec.Registrations[i].Holder = !o.typ.AllRegistrants()
		return prDone(true)
	case rec.holds(i) && rec.Type == o.typ:
		return prDone(false)
	}
	return prConflict()
}

// release executes RELEASE (SPC-4 5.13.11, releasing): the holder (any
// registrant for the all registrants types) ends the reservation if SCOPE
// and TYPE match it (INVALID RELEASE OF PERSISTENT RESERVATION otherwise);
// from a registered I_T nexus that holds nothing it does nothing. Ending a
// registrants only or all registrants reservation raises RESERVATIONS
// RELEASED for the other registrants. PRGENERATION does not move.
func (rec *PRRecord) release(n PRNexus, o *prOut) prOutcome {
	i, bad := rec.registrant(n, o.key)
	switch {
	case bad != nil:
		return *bad
	case rec.Type == 0 || !rec.holds(i):
		return prDone(false)
	case o.scope != 0 || o.typ != rec.Type:
		return prCheck(prIllegal(scsi.ASCInvalidReleaseOfPR))
	}
	typ := rec.Type
	rec.dropReservation()
	res := prDone(true)
	if typ.registrantsOnly() || typ.AllRegistrants() {
		res.uas = rec.uaAllBut(n, scsi.ASCReservationsReleased)
	}
	return res
}

// clearAll executes CLEAR (SPC-4 5.13.11, clearing): a registrant with
// its key removes the reservation and every registration; the other
// registrants get RESERVATIONS PREEMPTED.
func (rec *PRRecord) clearAll(n PRNexus, o *prOut) prOutcome {
	if _, bad := rec.registrant(n, o.key); bad != nil {
		return *bad
	}
	res := prDone(true)
	res.uas = rec.uaAllBut(n, scsi.ASCReservationsPreempted)
	rec.Registrations = nil
	rec.Type = 0
	rec.Generation++
	return res
}

// preempt executes PREEMPT and PREEMPT AND ABORT (SPC-4 5.13.11,
// preempting):
//   - all registrants reservation, SERVICE ACTION RESERVATION KEY 0: every
//     other registration goes and n holds a new reservation of the CDB's
//     TYPE;
//   - the key names the holder of a reservation that is not all
//     registrants: the registrations with that key go (n's stays), n holds
//     a new reservation of the CDB's TYPE, and if the type changed the
//     remaining registrants get RESERVATIONS RELEASED;
//   - otherwise the registrations with that key go (n's too if it has
//     it), the reservation stays; no registration with the key is
//     RESERVATION CONFLICT, key 0 is INVALID FIELD IN PARAMETER LIST.
//
// Those that lost a registration, other than n, get REGISTRATIONS
// PREEMPTED. PREEMPT AND ABORT also aborts the tasks of every I_T nexus
// registered with the key (every registrant in the first case), n's
// included.
func (rec *PRRecord) preempt(n PRNexus, o *prOut) prOutcome {
	me, bad := rec.registrant(n, o.key)
	if bad != nil {
		return *bad
	}
	abort := o.sa == proutPreemptAndAbort
	self := rec.Registrations[me]
	res := prDone(true)
	var gone []int
	switch h := rec.holder(); {
	case rec.Type.AllRegistrants() && o.sark == 0:
		for j := range rec.Registrations {
			if j != me {
				gone = append(gone, j)
			}
		}
		if abort {
			res.aborts = append(res.aborts, self.nexus())
		}
		res.uas, res.aborts = rec.preempted(gone, n, res.aborts, abort)
		rec.remove(gone)
		rec.reserveFor(n, o.typ)
	case o.sark == 0:
		return prCheck(scsi.InvalidFieldInParamList(8, -1))
	case h < 0 || rec.Registrations[h].Key != o.sark:
		for j := range rec.Registrations {
			if rec.Registrations[j].Key == o.sark {
				gone = append(gone, j)
			}
		}
		if len(gone) == 0 {
			return prConflict()
		}
		res.uas, res.aborts = rec.preempted(gone, n, nil, abort)
		rec.remove(gone)
		if len(rec.Registrations) == 0 {
			rec.Type = 0
		}
	default:
		for j := range rec.Registrations {
			if j != me && rec.Registrations[j].Key == o.sark {
				gone = append(gone, j)
			}
		}
		if abort && self.Key == o.sark {
			res.aborts = append(res.aborts, self.nexus())
		}
		res.uas, res.aborts = rec.preempted(gone, n, res.aborts, abort)
		old := rec.Type
		rec.remove(gone)
		rec.reserveFor(n, o.typ)
		if old != o.typ {
			res.uas = append(res.uas, rec.uaAllBut(n, scsi.ASCReservationsReleased)...)
		}
	}
	rec.Generation++
	return res
}

// preempted returns the REGISTRATIONS PREEMPTED unit attentions for the
// registrations at idxs other than n's, and, when abort, aborts extended
// with them all.
func (rec *PRRecord) preempted(idxs []int, n PRNexus, aborts []PRNexus, abort bool) ([]prUA, []PRNexus) {
	var uas []prUA
	for _, j := range idxs {
		r := &rec.Registrations[j]
		if abort {
			aborts = append(aborts, r.nexus())
		}
		if !r.nexus().Covers(n) {
			uas = append(uas, prUA{n: r.nexus(), asc: scsi.ASCRegistrationsPreempted})
		}
	}
	return uas, aborts
}

// reserveFor makes n's registration hold a new reservation of type typ.
func (rec *PRRecord) reserveFor(n PRNexus, typ PRType) {
	rec.dropReservation()
	rec.Type = typ
	if !typ.AllRegistrants() {
		rec.Registrations[rec.find(n)].Holder = true
	}
}

// registerAndMove executes REGISTER AND MOVE (SPC-4 5.13.8): the holder of
// a reservation that is not all registrants registers the I_T nexus its
// TransportID and RELATIVE TARGET PORT IDENTIFIER name with the SERVICE
// ACTION RESERVATION KEY (or gives it that key) and moves the reservation
// there, with the same TYPE; UNREG then unregisters n.
func (rec *PRRecord) registerAndMove(n PRNexus, o *prOut, ports []PRTargetPort) prOutcome {
	me, bad := rec.registrant(n, o.key)
	switch {
	case bad != nil:
		return *bad
	case rec.Type == 0:
		return prCheck(scsi.InvalidFieldInCDB(1, 4))
	case rec.Type.AllRegistrants() || !rec.Registrations[me].Holder:
		return prConflict()
	}
	tid := o.tids[0]
	port, ok := PRTargetPort{Name: n.TargetPort, RelTargetPortID: n.RelTargetPortID}, o.rtpi == n.RelTargetPortID
	for _, p := range ports {
		if !ok && p.RelTargetPortID == o.rtpi {
			port, ok = p, true
		}
	}
	if !ok {
		return prCheck(scsi.InvalidFieldInParamList(18, -1))
	}
	dest := PRRegistration{Key: o.sark, InitiatorName: tid.name, ISID: tid.isid, TargetPort: port.Name, RelTargetPortID: port.RelTargetPortID}
	if strings.EqualFold(tid.name, n.InitiatorName) && (tid.isid == "" || strings.EqualFold(tid.isid, n.ISID)) {
		return prCheck(scsi.InvalidFieldInParamList(tid.off, -1)) // n's own initiator port
	}
	d := -1
	for j := range rec.Registrations {
		r := &rec.Registrations[j]
		if !overlaps(r, &dest) {
			continue
		}
		if d >= 0 || j == me || (dest.ISID == "" && r.ISID != "") {
			// n's own registration, or a name that stands for several
			return prCheck(scsi.InvalidFieldInParamList(tid.off, -1))
		}
		d = j
	}
	if d < 0 {
		if len(rec.Registrations) >= prMaxRegistrations {
			return prCheck(prIllegal(scsi.ASCInsufficientRegResources))
		}
		rec.Registrations = append(rec.Registrations, dest)
		d = len(rec.Registrations) - 1
	}
	rec.Registrations[d].Key = o.sark
	rec.Registrations[me].Holder = false
	rec.Registrations[d].Holder = true
	if o.unreg {
		rec.remove([]int{me})
	}
	rec.APTPL = o.aptpl
	rec.Generation++
	return prDone(true)
}

// find returns the index of the registration covering n, or -1.
func (rec *PRRecord) find(n PRNexus) int {
	for i := range rec.Registrations {
		if rec.Registrations[i].nexus().Covers(n) {
			return i
		}
	}
	return -1
}

// holder returns the index of the marked holder, or -1 (no reservation,
// or an all registrants one).
func (rec *PRRecord) holder() int {
	for i := range rec.Registrations {
		if rec.Registrations[i].Holder {
			return i
		}
	}
	return -1
}

// holds reports whether registration i holds the reservation.
func (rec *PRRecord) holds(i int) bool {
	return rec.Type != 0 && (rec.Type.AllRegistrants() || rec.Registrations[i].Holder)
}

// exclusiveToHolder reports whether the reservation gives access to its
// holder only (Write Exclusive, Exclusive Access), not to every
// registrant.
func (rec *PRRecord) exclusiveToHolder() bool {
	return rec.Type == PRWriteExclusive || rec.Type == PRExclusiveAccess
}

// dropReservation ends the reservation, if any.
func (rec *PRRecord) dropReservation() {
	rec.Type = 0
	for i := range rec.Registrations {
		rec.Registrations[i].Holder = false
	}
}

// group returns registration i with the others made by the same ALL_TG_PT
// registration: same initiator port and key, ALL_TG_PT set.
func (rec *PRRecord) group(i int) []int {
	r := rec.Registrations[i]
	if !r.AllTgPt {
		return []int{i}
	}
	var g []int
	for j := range rec.Registrations {
		q := &rec.Registrations[j]
		if q.AllTgPt && q.Key == r.Key && strings.EqualFold(q.InitiatorName, r.InitiatorName) && strings.EqualFold(q.ISID, r.ISID) {
			g = append(g, j)
		}
	}
	return g
}

// remove deletes the registrations at idxs.
func (rec *PRRecord) remove(idxs []int) {
	if len(idxs) == 0 {
		return
	}
	drop := make(map[int]bool, len(idxs))
	for _, j := range idxs {
		drop[j] = true
	}
	kept := rec.Registrations[:0]
	for j, r := range rec.Registrations {
		if !drop[j] {
			kept = append(kept, r)
		}
	}
	clear(rec.Registrations[len(kept):])
	rec.Registrations = kept
}

// unregister removes the registrations at idxs (SPC-4 5.13.11,
// unregistering). Removing
// the holder of a reservation that is not all registrants ends it, with
// RESERVATIONS RELEASED for the remaining registrants when it was
// registrants only; an all registrants reservation ends with its last
// registration.
func (rec *PRRecord) unregister(idxs []int) []prUA {
	typ, holderGone := rec.Type, false
	for _, j := range idxs {
		holderGone = holderGone || rec.Registrations[j].Holder
	}
	rec.remove(idxs)
	switch {
	case typ.AllRegistrants():
		if len(rec.Registrations) == 0 {
			rec.Type = 0
		}
	case holderGone:
		rec.dropReservation()
		if typ.registrantsOnly() {
			return rec.uaAllBut(PRNexus{}, scsi.ASCReservationsReleased)
		}
	}
	return nil
}

// uaAllBut returns a unit attention with asc for every registration that
// does not cover n.
func (rec *PRRecord) uaAllBut(n PRNexus, asc scsi.ASC) []prUA {
	var uas []prUA
	for i := range rec.Registrations {
		if r := rec.Registrations[i].nexus(); !r.Covers(n) {
			uas = append(uas, prUA{n: r, asc: asc})
		}
	}
	return uas
}
