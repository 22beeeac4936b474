package emul

import (
	"slices"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// handler selects a command's implementation (a switch rather than
// function values, so that the exchange stays on the stack).
type handler uint8

const (
	hTestUnitReady handler = iota + 1
	hRequestSense
	hInquiry
	hModeSense
	hStartStop
	hPreventAllow
	hReadCapacity10
	hReadCapacity16
	hRW
	hWriteSame
	hUnmap
	hGetLBAStatus
	hReportLUNs
	hReportOpcodes
	hCompareAndWrite
)

// command is one supported command (operation code, and service action
// for the opcodes that have them).
type command struct {
	op    scsi.Opcode
	sa    scsi.ServiceAction
	hasSA bool
	h     handler
	// usage is the CDB USAGE DATA reported by REPORT SUPPORTED OPERATION
	// CODES (SPC-4 6.35.3): the opcode, then per byte a mask of the bits
	// the disk evaluates (the service action itself in byte 1 of commands
	// that have one). Its length is the CDB length.
	usage []byte
	// mask is usage with byte 1 of service-action commands set to the
	// SERVICE ACTION field: the bits a CDB may set without INVALID FIELD
	// IN CDB.
	mask []byte
	// medium marks commands that need the medium: NOT READY while the
	// unit is stopped.
	medium bool
	// timeout is the recommended command timeout in seconds (RCTD).
	timeout uint32
	// saTable, on a placeholder for 9Eh or A3h, holds the commands by
	// service action; such a placeholder is not itself a command.
	saTable *[32]*command
}

// Control byte usage: NACA is the CONTROL field the disk evaluates (and
// rejects, see dispatch).
const ctl = 0x04

// addCommand registers a command with its usage data.
func (d *Disk) addCommand(h handler, medium bool, timeout uint32, usage ...byte) {
	c := &command{op: scsi.Opcode(usage[0]), h: h, usage: usage, mask: usage, medium: medium, timeout: timeout}
	d.cmds[usage[0]] = c
	d.ordered = append(d.ordered, c)
}

// addSACommand registers a command that has a service action, usage[1].
func (d *Disk) addSACommand(table *[32]*command, h handler, medium bool, timeout uint32, usage ...byte) {
	mask := slices.Clone(usage)
	mask[1] = 0x1f
	c := &command{op: scsi.Opcode(usage[0]), sa: scsi.ServiceAction(usage[1]), hasSA: true, h: h,
		usage: usage, mask: mask, medium: medium, timeout: timeout}
	table[usage[1]&0x1f] = c
	if d.cmds[usage[0]] == nil {
		d.cmds[usage[0]] = &command{op: c.op, saTable: table}
	}
	d.ordered = append(d.ordered, c)
}

// buildCommands fills the command table. The usage data follow SPC-4 and
// SBC-3; a bit is set exactly when the disk reads the field (or rejects
// non-zero values in it, like RDPROTECT without protection information).
func (d *Disk) buildCommands() {
	const ff = 0xff
	// READ: RDPROTECT DPO FUA RARC FUA_NV; WRITE: WRPROTECT DPO FUA FUA_NV;
	// VERIFY and WRITE AND VERIFY: xxPROTECT DPO BYTCHK(2 bits).
	const rdFlags, wrFlags, vrFlags = 0xfe, 0xfa, 0xf6
	const group = 0x1f

	d.addCommand(hTestUnitReady, true, 10, 0x00, 0, 0, 0, 0, ctl)
	d.addCommand(hRequestSense, false, 10, 0x03, 0x01, 0, 0, ff, ctl)
	d.addCommand(hRW, true, 30, 0x08, 0x1f, ff, ff, ff, ctl)
	d.addCommand(hInquiry, false, 10, 0x12, 0x01, ff, ff, ff, ctl)
	d.addCommand(hModeSense, false, 10, 0x1a, 0x08, ff, ff, ff, ctl)
	d.addCommand(hStartStop, false, 30, 0x1b, 0x01, 0, 0, 0x07, ctl)
	d.addCommand(hPreventAllow, false, 10, 0x1e, 0, 0, 0, 0x03, ctl)
	d.addCommand(hReadCapacity10, false, 10, 0x25, 0, ff, ff, ff, ff, 0, 0, 0x01, ctl)
	d.addCommand(hRW, true, 30, 0x28, rdFlags, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hRW, true, 30, 0x2e, vrFlags, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hRW, true, 30, 0x2f, vrFlags, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hRW, true, 30, 0x34, 0x02, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hRW, true, 60, 0x35, 0x06, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hModeSense, false, 10, 0x5a, 0x18, ff, ff, 0, 0, 0, ff, ff, ctl)
	d.addCommand(hRW, true, 30, 0x88, rdFlags, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0x8f, vrFlags, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0x90, 0x02, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 60, 0x91, 0x06, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addSACommand(&d.saIn, hReadCapacity16, false, 10,
		0x9e, byte(scsi.SAReadCapacity16), ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, 0x01, ctl)
	d.addCommand(hReportLUNs, false, 10, 0xa0, 0, ff, 0, 0, 0, ff, ff, ff, ff, 0, ctl)
	d.addSACommand(&d.maintIn, hReportOpcodes, false, 10,
		0xa3, byte(scsi.SAReportSupportedOpcodes), 0x87, ff, ff, ff, ff, ff, ff, ff, 0, ctl)
	d.addCommand(hRW, true, 30, 0xa8, rdFlags, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0xaf, vrFlags, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	// Writes exist on a read-only disk too and fail with DATA PROTECT, as
	// on a write-protected drive.
	d.addCommand(hRW, true, 30, 0x0a, 0x1f, ff, ff, ff, ctl)
	d.addCommand(hRW, true, 30, 0x2a, wrFlags, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hWriteSame, true, 60, 0x41, 0xf8, ff, ff, ff, ff, group, ff, ff, ctl)
	d.addCommand(hCompareAndWrite, true, 30, 0x89, wrFlags, ff, ff, ff, ff, ff, ff, ff, ff, 0, 0, 0, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0x8a, wrFlags, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0x8e, vrFlags, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hWriteSame, true, 60, 0x93, 0xf9, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0xaa, wrFlags, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	d.addCommand(hRW, true, 30, 0xae, vrFlags, ff, ff, ff, ff, ff, ff, ff, ff, group, ctl)
	if d.thin {
		// UNMAP: ANCHOR is evaluated (and refused: ANC_SUP=0).
		d.addCommand(hUnmap, true, 60, 0x42, 0x01, 0, 0, 0, 0, group, ff, ff, ctl)
		d.addSACommand(&d.saIn, hGetLBAStatus, true, 10,
			0x9e, byte(scsi.SAGetLBAStatus), ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, 0, ctl)
	} else {
		// Without thin provisioning WRITE SAME has no UNMAP or ANCHOR bit.
		d.cmds[0x41].usage[1], d.cmds[0x93].usage[1] = 0xe0, 0xe1
	}
	slices.SortFunc(d.ordered, func(a, b *command) int {
		if a.op != b.op {
			return int(a.op) - int(b.op)
		}
		return int(a.sa) - int(b.sa)
	})
}
