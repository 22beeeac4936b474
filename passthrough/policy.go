package passthrough

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// The device-type policy: for every operation code, what the gateway does
// with it on a logical unit of a given peripheral device type, as data.
// An operation code means different commands in different command sets
// (04h is FORMAT UNIT on a disk and FORMAT MEDIUM on a tape, A1h is ATA
// PASS-THROUGH(12) on a disk and BLANK on a CD), so each type has its own
// table, filled from SBC-4, SSC-4, SMC-3 and MMC-6 and then overridden by
// the logical unit's configuration (allow_opcodes, deny_opcodes,
// timeouts). The pipeline reads one entry per command.

// opRule is the policy of one operation code on one logical unit.
type opRule struct {
	// refuse answers the command ILLEGAL REQUEST, INVALID COMMAND
	// OPERATION CODE instead of passing it: commands that destroy data
	// or the device's firmware wholesale (FORMAT UNIT, SANITIZE, WRITE
	// BUFFER, SECURITY PROTOCOL OUT, ATA PASS-THROUGH) and the
	// vendor-specific ones, unless the configuration allows them.
	refuse bool
	// write marks a command that changes the medium: a read-only mapping
	// refuses it with DATA PROTECT, WRITE PROTECTED. Service-action
	// commands are decided by writeClass.
	write bool
	// long marks a command that may run for hours (tape positioning and
	// erasure, changer moves and inventories, formatting): it gets the
	// long timeout.
	long bool
	// once marks a command that must not be sent twice: executing it
	// again does something else (a tape READ, WRITE or SPACE moves the
	// medium on; COMPARE AND WRITE compares against what it wrote; a
	// changer MOVE MEDIUM finds the source empty). The gateway never
	// retries it, whatever the transport says.
	once bool
}

// Default timeouts by device type. A disk command gets the backend's
// default; tapes and changers get what their drivers give them (Linux st
// uses 900 s for ordinary commands and 14000 s for long ones).
const (
	DefaultTapeTimeout        = 15 * time.Minute
	DefaultTapeLongTimeout    = 4 * time.Hour
	DefaultChangerTimeout     = 5 * time.Minute
	DefaultChangerLongTimeout = 2 * time.Hour
	DefaultLongTimeout        = time.Hour // disks, CD/DVD and the rest
)

// PolicyConfig is what the configuration changes in a logical unit's
// device-type policy.
type PolicyConfig struct {
	// Allow lists operation codes that pass to the device although the
	// device type refuses them by default (FORMAT UNIT, SANITIZE, WRITE
	// BUFFER, SECURITY PROTOCOL OUT, ATA PASS-THROUGH, vendor-specific).
	Allow []byte
	// Deny lists operation codes refused with ILLEGAL REQUEST, INVALID
	// COMMAND OPERATION CODE. Deny wins over Allow.
	Deny []byte
	// Timeout bounds ordinary commands; zero keeps the type's default
	// (the backend's own for disks).
	Timeout time.Duration
	// LongTimeout bounds the long-running commands of the type (tape
	// REWIND, ERASE, SPACE, LOCATE, LOAD, FORMAT MEDIUM; changer MOVE
	// MEDIUM, INITIALIZE ELEMENT STATUS; FORMAT UNIT, SANITIZE); zero
	// keeps the type's default.
	LongTimeout time.Duration
	// OpcodeTimeouts sets the timeout of single operation codes, over
	// the two above.
	OpcodeTimeouts map[byte]time.Duration
}

// policy is a logical unit's command policy: one rule and one timeout
// per operation code.
type policy struct {
	dt      scsi.DeviceType
	rules   [256]opRule
	timeout [256]time.Duration // 0: the backend's default
}

// newPolicy builds the policy of a logical unit of type dt with the
// configuration c.
func newPolicy(dt scsi.DeviceType, c PolicyConfig) (*policy, error) {
	p := &policy{dt: dt, rules: *typeRules(dt)}
	short, long := time.Duration(0), DefaultLongTimeout
	switch dt {
	case scsi.TypeTape:
		short, long = DefaultTapeTimeout, DefaultTapeLongTimeout
	case scsi.TypeChanger:
		short, long = DefaultChangerTimeout, DefaultChangerLongTimeout
	}
	if c.Timeout < 0 || c.LongTimeout < 0 {
		return nil, fmt.Errorf("passthrough: negative timeout")
	}
	if c.Timeout > 0 {
		short = c.Timeout
	}
	if c.LongTimeout > 0 {
		long = c.LongTimeout
	}
	for op := range p.rules {
		if p.rules[op].long {
			p.timeout[op] = long
		} else {
			p.timeout[op] = short
		}
	}
	for op, d := range c.OpcodeTimeouts {
		if d <= 0 {
			return nil, fmt.Errorf("passthrough: timeout of opcode %02xh is %v", op, d)
		}
		p.timeout[op] = d
	}
	for _, op := range c.Allow {
		p.rules[op].refuse = false
	}
	for _, op := range c.Deny {
		p.rules[op].refuse = true
	}
	return p, nil
}

// rule returns the rule of cdb's operation code.
func (p *policy) rule(op byte) opRule { return p.rules[op] }

// typeRules returns the default rules of device type dt.
func typeRules(dt scsi.DeviceType) *[256]opRule {
	switch dt {
	case scsi.TypeDisk, scsi.TypeRBC, scsi.TypeZBC, scsi.TypeWORM, scsi.TypeOptical:
		return &diskRules
	case scsi.TypeTape:
		return &tapeRules
	case scsi.TypeChanger:
		return &changerRules
	case scsi.TypeCDROM:
		return &cdRules
	}
	return &otherRules
}

// commonRules are the rules of every type: WRITE BUFFER (a firmware
// download) and SECURITY PROTOCOL OUT (locking and erasing
// self-encrypting drives, setting tape encryption keys) are refused,
// and so is every vendor-specific operation code (C0h-FFh), whose
// effect nobody can tell.
func commonRules() (t [256]opRule) {
	t[scsi.OpWriteBuffer] = opRule{refuse: true, long: true, once: true}
	t[scsi.OpSecurityProtocolOut] = opRule{refuse: true, once: true}
	for op := 0xc0; op <= 0xff; op++ {
		t[op] = opRule{refuse: true, once: true}
	}
	t[scsi.OpSendDiagnostic] = opRule{long: true} // a foreground self-test takes minutes
	return t
}

// diskRules: SBC-4 (and RBC, ZBC, optical memory, write-once).
var diskRules = func() [256]opRule {
	t := commonRules()
	for _, op := range []scsi.Opcode{
		scsi.OpWrite6, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16,
		scsi.OpWriteAndVerify10, scsi.OpWriteAndVerify12, scsi.OpWriteAndVerify16,
		scsi.OpWriteLong10, scsi.OpWriteSame10, scsi.OpWriteSame16, scsi.OpUnmap,
		0x9a, // WRITE STREAM(16)
		scsi.OpZBCOut,
	} {
		t[op].write = true
	}
	for _, op := range []scsi.Opcode{
		scsi.OpCompareAndWrite, // compares against what it wrote the first time
		scsi.OpORWrite16,       // ORs again
		0x50, 0x51, 0x53,       // XDWRITE, XPWRITE, XDWRITEREAD (XOR)
		scsi.OpWriteAtomic16,
		scsi.OpExtendedCopy,
	} {
		t[op].write, t[op].once = true, true
	}
	// Whole-medium destruction: refused unless allowed; hours when allowed.
	t[scsi.OpFormatUnit] = opRule{refuse: true, write: true, long: true, once: true}
	t[scsi.OpSanitize] = opRule{refuse: true, write: true, long: true, once: true}
	// ATA PASS-THROUGH reaches the ATA command set behind a SAT layer:
	// SECURITY ERASE UNIT and DOWNLOAD MICROCODE as well as SMART.
	t[scsi.OpATAPassThrough12] = opRule{refuse: true, once: true}
	t[scsi.OpATAPassThrough16] = opRule{refuse: true, once: true}
	return t
}()

// tapeRules: SSC-4. Nearly everything moves the medium, so nearly
// nothing may be sent twice.
var tapeRules = func() [256]opRule {
	t := commonRules()
	for op := range t {
		t[op].once = true
	}
	for _, op := range []scsi.Opcode{
		scsi.OpTestUnitReady, scsi.OpRequestSense, scsi.OpInquiry, scsi.OpModeSense6, scsi.OpModeSense10,
		scsi.OpModeSelect6, scsi.OpModeSelect10, scsi.OpLogSense, scsi.OpReadBlockLimits, scsi.OpReadPosition,
		scsi.OpReportDensity, scsi.OpReadAttribute, scsi.OpMaintenanceIn, scsi.OpReportLUNs,
		scsi.OpReceiveDiagnosticResults, scsi.OpPreventAllowMediumRemoval, scsi.OpRewind,
	} {
		t[op].once = false
	}
	for _, op := range []scsi.Opcode{
		scsi.OpWrite6, scsi.OpWrite16, scsi.OpWriteFilemarks6, scsi.OpWriteFilemarks16,
		scsi.OpErase6, scsi.OpErase16, scsi.OpFormatMedium, scsi.OpSetCapacity, scsi.OpWriteAttribute,
	} {
		t[op].write = true
	}
	for _, op := range []scsi.Opcode{
		scsi.OpRewind, scsi.OpFormatMedium, scsi.OpStartStopUnit, // LOAD UNLOAD
		scsi.OpErase6, scsi.OpErase16, scsi.OpSpace6, scsi.OpSpace16, scsi.OpLocate10, scsi.OpLocate16,
		scsi.OpWriteFilemarks6, scsi.OpWriteFilemarks16, scsi.OpVerify6, scsi.OpSetCapacity,
		scsi.OpRead6, scsi.OpRead16, scsi.OpWrite6, scsi.OpWrite16, scsi.OpReadReverse6,
	} {
		// A read or write that has to reposition first, and a write
		// that flushes the drive's buffer, take minutes to hours too.
		t[op].long = true
	}
	return t
}()

// changerRules: SMC-3. B5h is REQUEST VOLUME ELEMENT ADDRESS here, not
// SECURITY PROTOCOL OUT.
var changerRules = func() [256]opRule {
	t := commonRules()
	t[scsi.OpSecurityProtocolOut] = opRule{}
	for _, op := range []scsi.Opcode{scsi.OpMoveMedium, scsi.OpExchangeMedium} {
		t[op] = opRule{long: true, once: true}
	}
	for _, op := range []scsi.Opcode{
		scsi.OpInitializeElementStatus, scsi.OpInitializeElementStatusWithRange,
		scsi.OpPositionToElement, scsi.OpReadElementStatus, scsi.OpSendVolumeTag,
	} {
		t[op].long = true
	}
	return t
}()

// cdRules: MMC-6. FORMAT UNIT (DVD-RAM, BD-RE) is refused like a disk's.
var cdRules = func() [256]opRule {
	t := commonRules()
	for _, op := range []scsi.Opcode{
		scsi.OpWrite10, scsi.OpWrite12, scsi.OpWriteAndVerify10,
		0xa1, // BLANK
		0x53, // RESERVE TRACK
		0x5b, // CLOSE TRACK/SESSION
		0x5d, // SEND CUE SHEET
	} {
		t[op].write, t[op].once = true, true
	}
	t[scsi.OpFormatUnit] = opRule{refuse: true, write: true, long: true, once: true}
	for _, op := range []scsi.Opcode{0xa1, 0x5b, scsi.OpStartStopUnit, scsi.OpSynchronizeCache10} {
		t[op].long = true // blanking, closing a session, loading, finalizing
	}
	return t
}()

// otherRules: enclosures, processors and the types without a table.
var otherRules = commonRules()

// writeClass reports whether cdb would change the medium under p, so
// that a read-only mapping refuses it with DATA PROTECT, WRITE
// PROTECTED: the rule's write mark, and for disks the service actions of
// SERVICE ACTION OUT(16) and the 32-byte CDBs that write. SYNCHRONIZE
// CACHE, MODE SELECT and the reservation commands are not write-class.
func (p *policy) writeClass(cdb []byte) bool {
	if p.rules[cdb[0]].write {
		return true
	}
	if t := typeRules(p.dt); t != &diskRules {
		return false
	}
	sa, ok := scsi.HasServiceAction(cdb)
	if !ok {
		return false
	}
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpServiceActionOut16:
		return sa == 0x11 || sa == 0x12 // WRITE LONG (16), WRITE SCATTERED (16)
	case scsi.OpVariableLength:
		switch sa {
		case scsi.SAWrite32, scsi.SAWriteAndVerify32, scsi.SAWriteSame32, scsi.SAORWrite32,
			0x0004, 0x0006, 0x0007, // XDWRITE (32), XPWRITE (32), XDWRITEREAD (32)
			0x000f, 0x0010, 0x0011: // WRITE ATOMIC (32), WRITE STREAM (32), WRITE SCATTERED (32)
			return true
		}
	}
	return false
}

// reportsWP reports whether the mode parameter header of the type has a
// WP bit (SBC-4 6.5.1, SSC-4 8.3.1); MMC's is reserved.
func reportsWP(dt scsi.DeviceType) bool {
	return typeRules(dt) == &diskRules || dt == scsi.TypeTape
}

// setWP sets the WP bit of the device-specific parameter in the mode
// parameter header of a MODE SENSE answer (SBC-3 6.4.3): byte 2 for
// MODE SENSE(6), byte 3 for MODE SENSE(10).
func setWP(cmd *iscsi.Command, r *iscsi.Response) {
	off := 2
	if scsi.Opcode(cmd.CDB[0]) == scsi.OpModeSense10 {
		off = 3
	}
	data := responseData(cmd, r)
	if len(data) > off {
		data[off] |= 0x80
	}
}

// responseData returns the data-in a response holds: a prefix of ReadBuf
// or of the lent ReadData.
func responseData(cmd *iscsi.Command, r *iscsi.Response) []byte {
	data := cmd.ReadBuf
	if r.ReadData != nil {
		data = r.ReadData
	}
	return data[:min(max(r.ReadLen, 0), len(data))]
}

// fixSupportedOpcodes makes a REPORT SUPPORTED OPERATION CODES answer
// (SPC-4 6.35) agree with the policy: the commands the gateway refuses
// are not supported, whatever the device says. For the list of all
// commands (REPORTING OPTIONS 000b) their descriptors are removed and the
// COMMAND DATA LENGTH reduced; for one command (001b-011b) SUPPORT
// becomes 001b (not supported) and the CDB usage data goes.
func (lu *LU) fixSupportedOpcodes(cmd *iscsi.Command, r *iscsi.Response) {
	cdb := cmd.CDB
	if len(cdb) < 12 {
		return
	}
	data := responseData(cmd, r)
	refused := func(op byte, sa uint16, hasSA bool) bool {
		if lu.pol.rules[op].refuse {
			return true
		}
		// The device's own target port groups are not the initiator's
		// (pipeline.go), unless the gateway answers for a shared unit.
		return lu.shared == nil && hasSA && sa == uint16(scsi.SAReportTargetPortGroups) &&
			(op == byte(scsi.OpMaintenanceIn) || op == byte(scsi.OpMaintenanceOut))
	}
	switch cdb[2] & 0x07 {
	case 0:
		if len(data) < 4 {
			return
		}
		out, removed := 4, 0
		for p := 4; p+8 <= len(data); {
			n := 8
			if data[p+5]&0x02 != 0 { // CTDP: a command timeouts descriptor follows
				n += 12
			}
			if p+n > len(data) {
				n = len(data) - p // cut short by the allocation length
			}
			if refused(data[p], binary.BigEndian.Uint16(data[p+2:p+4]), data[p+5]&0x01 != 0) {
				removed += n
			} else {
				out += copy(data[out:], data[p:p+n])
			}
			p += n
		}
		if removed == 0 {
			return
		}
		binary.BigEndian.PutUint32(data[0:4], binary.BigEndian.Uint32(data[0:4])-uint32(removed))
		r.ReadLen -= removed
		r.Wanted = max(r.Wanted-removed, 0)
	case 1, 2, 3:
		if len(data) < 4 || !refused(cdb[3], binary.BigEndian.Uint16(cdb[4:6]), cdb[2]&0x07 != 1) {
			return
		}
		data[1] = data[1]&^0x07 | 0x01
		data[2], data[3] = 0, 0
		r.ReadLen, r.Wanted = 4, min(r.Wanted, 4)
	}
}
