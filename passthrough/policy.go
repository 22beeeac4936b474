package passthrough

import (
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// writeOps marks the operation codes that change the medium, which write
// protection covers (SBC-3 4.11 and the write-protect checks of each
// command): WRITE, WRITE AND VERIFY, WRITE SAME, WRITE LONG, WRITE
// STREAM, WRITE ATOMIC, ORWRITE, COMPARE AND WRITE, UNMAP, FORMAT UNIT,
// SANITIZE, XDWRITE, XPWRITE, XDWRITEREAD and EXTENDED COPY. Opcodes
// whose service action decides are in writeClass.
var writeOps = func() (t [256]bool) {
	for _, op := range []byte{
		0x04,                   // FORMAT UNIT
		0x0a, 0x2a, 0xaa, 0x8a, // WRITE (6) (10) (12) (16)
		0x2e, 0xae, 0x8e, // WRITE AND VERIFY (10) (12) (16)
		0x3f,       // WRITE LONG (10)
		0x41, 0x93, // WRITE SAME (10) (16)
		0x42,       // UNMAP
		0x48,       // SANITIZE
		0x50, 0x51, // XDWRITE (10), XPWRITE (10)
		0x53, // XDWRITEREAD (10)
		0x83, // EXTENDED COPY
		0x89, // COMPARE AND WRITE
		0x8b, // ORWRITE (16)
		0x9a, // WRITE STREAM (16)
		0x9c, // WRITE ATOMIC (16)
	} {
		t[op] = true
	}
	return t
}()

// writeClass reports whether cdb would change the medium, so that a
// read-only mapping refuses it with DATA PROTECT, WRITE PROTECTED.
// SYNCHRONIZE CACHE, MODE SELECT and the reservation commands are not
// write-class.
func writeClass(cdb []byte) bool {
	if writeOps[cdb[0]] {
		return true
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

// setWP sets the WP bit of the device-specific parameter in the mode
// parameter header of a MODE SENSE answer (SBC-3 6.4.3): byte 2 for
// MODE SENSE(6), byte 3 for MODE SENSE(10).
func setWP(cmd *iscsi.Command, r *iscsi.Response) {
	off := 2
	if scsi.Opcode(cmd.CDB[0]) == scsi.OpModeSense10 {
		off = 3
	}
	data := cmd.ReadBuf
	if r.ReadData != nil {
		data = r.ReadData
	}
	if r.ReadLen > off && len(data) > off {
		data[off] |= 0x80
	}
}
