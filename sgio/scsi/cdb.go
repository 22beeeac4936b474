package scsi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxCDBLen is the longest CDB SPC-4 allows: a variable-length CDB of 8
// bytes of header and 252 of additional CDB (SPC-4 4.2.3).
const MaxCDBLen = 260

// Errors of the CDB decoders, for errors.Is.
var (
	// ErrShortCDB: the CDB is shorter than its operation code requires.
	ErrShortCDB = errors.New("scsi: CDB too short for its operation code")
	// ErrNotRW: the operation code is not a read/write-family command.
	ErrNotRW = errors.New("scsi: not a block read/write command")
	// ErrCDBLength: the operation code's CDB length is not standardized
	// (reserved or vendor-specific group) or the variable-length CDB's
	// ADDITIONAL CDB LENGTH is invalid.
	ErrCDBLength = errors.New("scsi: unknown CDB length")
)

// CDBLen returns the length of the CDB at the start of cdb: by group code
// for fixed-length operation codes, and 8 + ADDITIONAL CDB LENGTH (byte 7,
// a multiple of 4) for the variable-length code 7Fh (SPC-4 4.2.3). It
// fails for reserved and vendor-specific groups, and when cdb is shorter
// than the length it announces.
func CDBLen(cdb []byte) (int, error) {
	if len(cdb) == 0 {
		return 0, ErrShortCDB
	}
	op := Opcode(cdb[0])
	n := op.CDBLength()
	if op == OpVariableLength {
		if len(cdb) < 8 {
			return 0, fmt.Errorf("%w: variable-length CDB of %d bytes", ErrShortCDB, len(cdb))
		}
		add := int(cdb[7])
		if add%4 != 0 || add < 4 || add > MaxCDBLen-8 {
			return 0, fmt.Errorf("%w: additional CDB length %d", ErrCDBLength, add)
		}
		n = 8 + add
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %v", ErrCDBLength, op)
	}
	if len(cdb) < n {
		return 0, fmt.Errorf("%w: %v needs %d bytes, got %d", ErrShortCDB, op, n, len(cdb))
	}
	return n, nil
}

// RWKind says what a block command does with data.
type RWKind uint8

// Block command kinds.
const (
	KindRead            RWKind = iota + 1 // READ: data-in, Blocks blocks
	KindWrite                             // WRITE: data-out, Blocks blocks
	KindWriteAndVerify                    // WRITE AND VERIFY: data-out, Blocks blocks
	KindVerify                            // VERIFY: data-out per BytChk
	KindWriteSame                         // WRITE SAME: one block of data-out (none with NDOB)
	KindPreFetch                          // PRE-FETCH: no data
	KindSyncCache                         // SYNCHRONIZE CACHE: no data
	KindCompareAndWrite                   // COMPARE AND WRITE: 2*Blocks blocks of data-out
	KindORWrite                           // ORWRITE: data-out, Blocks blocks
	KindWriteAtomic                       // WRITE ATOMIC: data-out, Blocks blocks
)

// String names the kind.
func (k RWKind) String() string {
	switch k {
	case KindRead:
		return "read"
	case KindWrite:
		return "write"
	case KindWriteAndVerify:
		return "write-and-verify"
	case KindVerify:
		return "verify"
	case KindWriteSame:
		return "write-same"
	case KindPreFetch:
		return "pre-fetch"
	case KindSyncCache:
		return "synchronize-cache"
	case KindCompareAndWrite:
		return "compare-and-write"
	case KindORWrite:
		return "orwrite"
	case KindWriteAtomic:
		return "write-atomic"
	}
	return fmt.Sprintf("RWKind(%d)", uint8(k))
}

// RW is a decoded block read/write-family CDB (SBC-3 5).
type RW struct {
	// Op is the operation code; SA the service action of 32-byte CDBs.
	Op Opcode
	SA ServiceAction
	// Kind is what the command does.
	Kind RWKind
	// CDBLen is the CDB's length in bytes.
	CDBLen int
	// LBA is the first logical block.
	LBA uint64
	// Blocks is the TRANSFER LENGTH or NUMBER OF LOGICAL BLOCKS, with the
	// READ(6)/WRITE(6) rule applied (0 means 256). For WRITE SAME, 0 means
	// "to the last LBA" (SBC-3 5.42); for PRE-FETCH and SYNCHRONIZE CACHE,
	// 0 means "to the last LBA" too.
	Blocks uint32
	// Protect is RDPROTECT, WRPROTECT, VRPROTECT or ORPROTECT (0-7).
	Protect uint8
	// DPO and FUA are the cache control bits (FUA_NV is ignored).
	DPO, FUA bool
	// BytChk is the BYTCHK field of VERIFY and WRITE AND VERIFY (0-3).
	BytChk uint8
	// Immed is the IMMED bit of PRE-FETCH and SYNCHRONIZE CACHE.
	Immed bool
	// Anchor, Unmap and NDOB are the WRITE SAME bits.
	Anchor, Unmap, NDOB bool
	// Group is the GROUP NUMBER field.
	Group uint8
}

// DataBlocks returns how many logical blocks of data the command moves
// through its data buffer (not how many it affects): Blocks for reads and
// writes, one for WRITE SAME without NDOB, 2*Blocks for COMPARE AND WRITE,
// Blocks or one for VERIFY with BYTCHK 01b or 11b, and 0 otherwise.
func (r *RW) DataBlocks() uint64 {
	switch r.Kind {
	case KindRead, KindWrite, KindWriteAndVerify, KindORWrite, KindWriteAtomic:
		return uint64(r.Blocks)
	case KindCompareAndWrite:
		return 2 * uint64(r.Blocks)
	case KindWriteSame:
		if r.NDOB {
			return 0
		}
		return 1
	case KindVerify:
		switch r.BytChk {
		case 1:
			return uint64(r.Blocks)
		case 3:
			if r.Blocks == 0 {
				return 0
			}
			return 1
		}
	}
	return 0
}

// DataIn reports whether the command's data moves from the device.
func (r *RW) DataIn() bool { return r.Kind == KindRead }

// rwByte1 decodes the common byte-1 flags of 10/12/16-byte block CDBs.
func (r *RW) rwByte1(b byte) {
	r.Protect = b >> 5
	r.DPO = b&0x10 != 0
	r.FUA = b&0x08 != 0
}

// DecodeRW decodes the block read/write-family CDB at the start of cdb:
// READ, WRITE, WRITE AND VERIFY, VERIFY, WRITE SAME, PRE-FETCH,
// SYNCHRONIZE CACHE, COMPARE AND WRITE, ORWRITE and WRITE ATOMIC in all
// their 6/10/12/16/32-byte forms. It errs with [ErrNotRW] for other
// commands and [ErrShortCDB] when cdb is too short. It never panics.
func DecodeRW(cdb []byte) (RW, error) {
	var r RW
	n, err := CDBLen(cdb)
	if err != nil {
		if len(cdb) > 0 && !isRWOpcode(Opcode(cdb[0])) {
			return r, ErrNotRW
		}
		return r, err
	}
	r.Op = Opcode(cdb[0])
	r.CDBLen = n
	c := cdb[:n]
	be := binary.BigEndian
	switch r.Op {
	case OpRead6, OpWrite6:
		r.Kind = KindRead
		if r.Op == OpWrite6 {
			r.Kind = KindWrite
		}
		r.LBA = uint64(c[1]&0x1f)<<16 | uint64(be.Uint16(c[2:4]))
		r.Blocks = uint32(c[4])
		if r.Blocks == 0 {
			r.Blocks = 256
		}
		return r, nil
	case OpRead10, OpWrite10, OpWriteAndVerify10, OpVerify10, OpWriteSame10, OpPreFetch10, OpSynchronizeCache10:
		r.LBA = uint64(be.Uint32(c[2:6]))
		r.Blocks = uint32(be.Uint16(c[7:9]))
		r.Group = c[6] & 0x1f
	case OpRead12, OpWrite12, OpWriteAndVerify12, OpVerify12:
		r.LBA = uint64(be.Uint32(c[2:6]))
		r.Blocks = be.Uint32(c[6:10])
		r.Group = c[10] & 0x1f
	case OpRead16, OpWrite16, OpWriteAndVerify16, OpVerify16, OpWriteSame16, OpPreFetch16,
		OpSynchronizeCache16, OpORWrite16:
		r.LBA = be.Uint64(c[2:10])
		r.Blocks = be.Uint32(c[10:14])
		r.Group = c[14] & 0x1f
	case OpCompareAndWrite:
		r.LBA = be.Uint64(c[2:10])
		r.Blocks = uint32(c[13])
		r.Group = c[14] & 0x1f
	case OpWriteAtomic16:
		r.LBA = be.Uint64(c[2:10])
		r.Blocks = uint32(be.Uint16(c[12:14]))
		r.Group = c[14] & 0x1f
	case OpVariableLength:
		return decodeRW32(r, c)
	default:
		return RW{}, ErrNotRW
	}
	switch r.Op {
	case OpRead10, OpRead12, OpRead16:
		r.Kind = KindRead
		r.rwByte1(c[1])
	case OpWrite10, OpWrite12, OpWrite16:
		r.Kind = KindWrite
		r.rwByte1(c[1])
	case OpORWrite16:
		r.Kind = KindORWrite
		r.rwByte1(c[1])
	case OpWriteAtomic16:
		r.Kind = KindWriteAtomic
		r.rwByte1(c[1])
	case OpCompareAndWrite:
		r.Kind = KindCompareAndWrite
		r.rwByte1(c[1])
	case OpWriteAndVerify10, OpWriteAndVerify12, OpWriteAndVerify16:
		r.Kind = KindWriteAndVerify
		r.Protect = c[1] >> 5
		r.DPO = c[1]&0x10 != 0
		r.BytChk = (c[1] >> 1) & 0x03
	case OpVerify10, OpVerify12, OpVerify16:
		r.Kind = KindVerify
		r.Protect = c[1] >> 5
		r.DPO = c[1]&0x10 != 0
		r.BytChk = (c[1] >> 1) & 0x03
	case OpWriteSame10, OpWriteSame16:
		r.Kind = KindWriteSame
		r.Protect = c[1] >> 5
		r.Anchor = c[1]&0x10 != 0
		r.Unmap = c[1]&0x08 != 0
		r.NDOB = r.Op == OpWriteSame16 && c[1]&0x01 != 0
	case OpPreFetch10, OpPreFetch16:
		r.Kind = KindPreFetch
		r.Immed = c[1]&0x02 != 0
	case OpSynchronizeCache10, OpSynchronizeCache16:
		r.Kind = KindSyncCache
		r.Immed = c[1]&0x02 != 0
	}
	return r, nil
}

// decodeRW32 decodes the 32-byte variable-length block CDBs (SBC-3 5.17,
// 5.35, 5.39, 5.45, 5.48): service action in bytes 8-9, flags in byte
// 10, LBA in 12-19, transfer length in 28-31.
func decodeRW32(r RW, c []byte) (RW, error) {
	if len(c) < 32 {
		return RW{}, ErrNotRW
	}
	be := binary.BigEndian
	r.SA = ServiceAction(be.Uint16(c[8:10]))
	r.Group = c[6] & 0x1f
	r.LBA = be.Uint64(c[12:20])
	r.Blocks = be.Uint32(c[28:32])
	switch r.SA {
	case SARead32:
		r.Kind = KindRead
		r.rwByte1(c[10])
	case SAWrite32:
		r.Kind = KindWrite
		r.rwByte1(c[10])
	case SAORWrite32:
		r.Kind = KindORWrite
		r.rwByte1(c[10])
	case SAVerify32, SAWriteAndVerify32:
		r.Kind = KindVerify
		if r.SA == SAWriteAndVerify32 {
			r.Kind = KindWriteAndVerify
		}
		r.Protect = c[10] >> 5
		r.DPO = c[10]&0x10 != 0
		r.BytChk = (c[10] >> 1) & 0x03
	case SAWriteSame32:
		r.Kind = KindWriteSame
		r.Protect = c[10] >> 5
		r.Anchor = c[10]&0x10 != 0
		r.Unmap = c[10]&0x08 != 0
		r.NDOB = c[10]&0x01 != 0
	default:
		return RW{}, ErrNotRW
	}
	return r, nil
}

// isRWOpcode reports whether op can begin a block command DecodeRW knows
// (7Fh counts: its service action decides).
func isRWOpcode(op Opcode) bool {
	switch op {
	case OpRead6, OpWrite6, OpRead10, OpWrite10, OpWriteAndVerify10, OpVerify10, OpWriteSame10,
		OpPreFetch10, OpSynchronizeCache10, OpRead12, OpWrite12, OpWriteAndVerify12, OpVerify12,
		OpRead16, OpWrite16, OpWriteAndVerify16, OpVerify16, OpWriteSame16, OpPreFetch16,
		OpSynchronizeCache16, OpORWrite16, OpCompareAndWrite, OpWriteAtomic16, OpVariableLength:
		return true
	}
	return false
}

// TransferInfo returns the first LBA and the number of logical blocks a
// block read/write-family CDB addresses (see [RW.Blocks] for the meaning
// of 0), or ok=false when cdb is not such a command or is too short.
func TransferInfo(cdb []byte) (lba uint64, blocks uint32, ok bool) {
	r, err := DecodeRW(cdb)
	if err != nil {
		return 0, 0, false
	}
	return r.LBA, r.Blocks, true
}

// InquiryCDB builds an INQUIRY CDB (SPC-4 6.6): the standard data, or with
// evpd the vital product data page page; alloc is the allocation length.
func InquiryCDB(evpd bool, page byte, alloc uint16) []byte {
	c := []byte{byte(OpInquiry), 0, page, byte(alloc >> 8), byte(alloc), 0}
	if evpd {
		c[1] = 0x01
	}
	return c
}

// ReadCapacity16CDB builds a READ CAPACITY(16) CDB (SBC-3 5.16) with
// allocation length alloc.
func ReadCapacity16CDB(alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = byte(OpServiceActionIn16), byte(SAReadCapacity16)
	binary.BigEndian.PutUint32(c[10:], alloc)
	return c
}
