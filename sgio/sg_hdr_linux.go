//go:build linux

package sgio

import (
	"encoding/binary"
	"unsafe"
)

// sgIOHdr mirrors struct sg_io_hdr from <scsi/sg.h> (the sg v3
// interface). It is defined once; size and offsets are pinned by
// TestSGIOHdrLayout (88 bytes on 64-bit, 64 on 32-bit). The pointer
// fields are unsafe.Pointer, never uintptr, so the garbage collector
// keeps what they point to alive while the kernel holds the addresses.
//
// Only memory that lives on the Go heap may be handed to the kernel for
// an asynchronous command (the heap does not move; stacks do): every
// such pointer points into a *sgSlot.
type sgIOHdr struct {
	interfaceID    int32          // 'S'
	dxferDirection int32          // SG_DXFER_*
	cmdLen         uint8          // CDB length
	mxSbLen        uint8          // sense buffer capacity
	iovecCount     uint16         // 0: dxferp is a flat buffer
	dxferLen       uint32         // data length
	dxferp         unsafe.Pointer // data buffer
	cmdp           unsafe.Pointer // CDB
	sbp            unsafe.Pointer // sense buffer
	timeout        uint32         // milliseconds
	flags          uint32         // SG_FLAG_*
	packID         int32          // echoed back: matches completions to slots
	usrPtr         unsafe.Pointer // echoed back; unused (nil)
	status         uint8          // SCSI status
	maskedStatus   uint8          // (status & 0x3e) >> 1
	msgStatus      uint8          // unused by Linux
	sbLenWr        uint8          // sense bytes written
	hostStatus     uint16         // DID_*
	driverStatus   uint16         // DRIVER_*
	resid          int32          // residual
	duration       uint32         // milliseconds
	info           uint32         // SG_INFO_*
}

// sgIOHdrSize is sizeof(struct sg_io_hdr) on this platform.
const sgIOHdrSize = int(unsafe.Sizeof(sgIOHdr{}))

// Offsets of the output fields, for decoding a completion that the
// kernel wrote into a pointer-free byte buffer (see sgReaper).
const (
	offDxferDirection = int(unsafe.Offsetof(sgIOHdr{}.dxferDirection))
	offPackID         = int(unsafe.Offsetof(sgIOHdr{}.packID))
	offStatus         = int(unsafe.Offsetof(sgIOHdr{}.status))
	offMaskedStatus   = int(unsafe.Offsetof(sgIOHdr{}.maskedStatus))
	offMsgStatus      = int(unsafe.Offsetof(sgIOHdr{}.msgStatus))
	offSbLenWr        = int(unsafe.Offsetof(sgIOHdr{}.sbLenWr))
	offHostStatus     = int(unsafe.Offsetof(sgIOHdr{}.hostStatus))
	offDriverStatus   = int(unsafe.Offsetof(sgIOHdr{}.driverStatus))
	offResid          = int(unsafe.Offsetof(sgIOHdr{}.resid))
	offDuration       = int(unsafe.Offsetof(sgIOHdr{}.duration))
	offInfo           = int(unsafe.Offsetof(sgIOHdr{}.info))
)

// sgOutput is the output half of a completed sg_io_hdr.
type sgOutput struct {
	packID       int32
	status       uint8
	maskedStatus uint8
	msgStatus    uint8
	sbLenWr      uint8
	hostStatus   uint16
	driverStatus uint16
	resid        int32
	duration     uint32
	info         uint32
}

// decodeSGOutput reads the output fields of an sg_io_hdr image.
func decodeSGOutput(b *[sgIOHdrSize]byte) sgOutput {
	ne := binary.NativeEndian
	return sgOutput{
		packID:       int32(ne.Uint32(b[offPackID:])),
		status:       b[offStatus],
		maskedStatus: b[offMaskedStatus],
		msgStatus:    b[offMsgStatus],
		sbLenWr:      b[offSbLenWr],
		hostStatus:   ne.Uint16(b[offHostStatus:]),
		driverStatus: ne.Uint16(b[offDriverStatus:]),
		resid:        int32(ne.Uint32(b[offResid:])),
		duration:     ne.Uint32(b[offDuration:]),
		info:         ne.Uint32(b[offInfo:]),
	}
}

// output returns the output fields of a header filled in by the SG_IO ioctl.
func (h *sgIOHdr) output() sgOutput {
	return sgOutput{
		packID:       h.packID,
		status:       h.status,
		maskedStatus: h.maskedStatus,
		msgStatus:    h.msgStatus,
		sbLenWr:      h.sbLenWr,
		hostStatus:   h.hostStatus,
		driverStatus: h.driverStatus,
		resid:        h.resid,
		duration:     h.duration,
		info:         h.info,
	}
}

// sgScsiID mirrors struct sg_scsi_id (SG_GET_SCSI_ID), 32 bytes.
type sgScsiID struct {
	hostNo      int32
	channel     int32
	scsiID      int32
	lun         int32
	scsiType    int32
	hCmdPerLun  int16
	dQueueDepth int16
	unused      [2]int32
}

// ioctl requests and constants of <scsi/sg.h>; x/sys/unix has none of them.
const (
	sgIO               = 0x2285 // SG_IO
	sgGetVersionNum    = 0x2282 // SG_GET_VERSION_NUM
	sgGetScsiID        = 0x2276 // SG_GET_SCSI_ID
	sgGetReservedSize  = 0x2272 // SG_GET_RESERVED_SIZE
	sgGetSGTablesize   = 0x227f // SG_GET_SG_TABLESIZE
	sgSetForcePackID   = 0x227b // SG_SET_FORCE_PACK_ID
	sgSetReservedSize  = 0x2275 // SG_SET_RESERVED_SIZE
	blkSectGet         = 0x1267 // BLKSECTGET, answered by sg with bytes
	sgInterfaceID      = 'S'
	sgDxferNone        = -1    // SG_DXFER_NONE
	sgDxferToDev       = -2    // SG_DXFER_TO_DEV
	sgDxferFromDev     = -3    // SG_DXFER_FROM_DEV
	sgFlagQAtTail      = 0x10  // SG_FLAG_Q_AT_TAIL: queue behind earlier commands
	sgFlagMmapIO       = 0x4   // SG_FLAG_MMAP_IO: data-in stays in the mapped reserved buffer
	sgInfoOKMask       = 0x1   // SG_INFO_OK_MASK
	sgMaxCDB           = 252   // SG_MAX_CDB_SIZE
	senseBufferLen     = 252   // SPC-4 maximum sense length (the kernel copies at most 96)
	sgMinVersion       = 30000 // the v3 interface
	scsiGenericMajor   = 21    // SCSI_GENERIC_MAJOR
	sgPackIDIndexBits  = 8     // pack_id = generation<<8 | slot index
	sgPackIDIndexMask  = 1<<sgPackIDIndexBits - 1
	sgPackIDGenMask    = 1<<(31-sgPackIDIndexBits) - 1
	maxTimeoutMillisec = 1<<32 - 2 // 0xffffffff would mean "no timeout"
)
