package passthrough

import (
	"encoding/binary"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Geometry is what the gateway knows of a logical unit's shape, which
// bounds the buffers of its commands before the engine allocates them
// (iscsi.Admitter): the device type (which command set the CDBs
// follow), the logical block size and capacity (zero when not known) and
// the largest transfer of one command.
type Geometry struct {
	Type      scsi.DeviceType
	BlockSize uint32
	// Blocks is the capacity in logical blocks; 0: not known (no range
	// check before the device's own).
	Blocks uint64
	// MaxTransfer is the most bytes one command moves in a direction:
	// the device's Limits().MaxTransferBytes (the limit advertised in
	// the Block Limits VPD page).
	MaxTransfer uint32
}

// DefaultMaxTransfer bounds the commands of a device that reports no
// transfer limit.
const DefaultMaxTransfer = 8 << 20

// Answers the gateway builds itself stay small: REPORT LUNS lists at
// most 16384 LUNs, and the answers to a LUN outside the view are a few
// dozen bytes.
const (
	reportLUNsMax = 8 + 8*16384
	noLUNMax      = 256
)

// Geometry returns the logical unit's geometry: what SetGeometry set,
// else what the device says of itself (an emulated disk its capacity, an
// SG device its type), refined by the device's own answers to READ
// CAPACITY and INQUIRY as they pass.
func (lu *LU) Geometry() Geometry {
	if g := lu.geom.Load(); g != nil {
		return *g
	}
	g := deviceGeometry(lu.dev)
	lu.geom.CompareAndSwap(nil, &g)
	return *lu.geom.Load()
}

// SetGeometry sets the logical unit's geometry (the bridge, from device
// discovery); a zero MaxTransfer keeps the device's limit.
func (lu *LU) SetGeometry(g Geometry) {
	if g.MaxTransfer == 0 {
		g.MaxTransfer = deviceGeometry(lu.dev).MaxTransfer
	}
	lu.geom.Store(&g)
}

// deviceGeometry is what a device tells of itself.
func deviceGeometry(dev sgio.Device) Geometry {
	g := Geometry{Type: scsi.TypeUnknown, MaxTransfer: DefaultMaxTransfer}
	if m := dev.Limits().MaxTransferBytes; m > 0 {
		g.MaxTransfer = uint32(min(m, 1<<31))
	}
	if d, ok := dev.(interface {
		Blocks() uint64
		BlockSize() int
	}); ok {
		// The emulated disk.
		g.Type, g.Blocks, g.BlockSize = scsi.TypeDisk, d.Blocks(), uint32(d.BlockSize())
	}
	if d, ok := dev.(interface{ Info() sgio.Info }); ok {
		g.Type = scsi.DeviceType(d.Info().PeripheralType & 0x1f)
	}
	return g
}

// admit bounds a command of the logical unit by its geometry.
func (lu *LU) admit(cdb []byte) iscsi.Admission {
	g := lu.Geometry()
	return iscsi.AdmitCDB(cdb, g.Type, g.BlockSize, g.Blocks, transferLimit(cdb, &g))
}

// observe learns the geometry from the device's successful answers: the
// block size and capacity from READ CAPACITY(10)/(16) (a device that
// grows says so with a unit attention, after which initiators read it
// again), the device type from standard INQUIRY data.
func (lu *LU) observe(cmd *iscsi.Command, r *iscsi.Response) {
	if r.Status != scsi.Good || len(cmd.CDB) == 0 {
		return
	}
	data := cmd.ReadBuf
	if r.ReadData != nil {
		data = r.ReadData
	}
	data = data[:min(max(r.ReadLen, 0), len(data))]
	be := binary.BigEndian
	var bs uint32
	var blocks uint64
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpReadCapacity10:
		if len(data) < 8 {
			return
		}
		bs = be.Uint32(data[4:8])
		if last := be.Uint32(data[0:4]); last != 0xffffffff {
			blocks = uint64(last) + 1
		}
	case scsi.OpServiceActionIn16:
		if len(cmd.CDB) < 2 || scsi.ServiceAction(cmd.CDB[1]&0x1f) != scsi.SAReadCapacity16 || len(data) < 12 {
			return
		}
		bs = be.Uint32(data[8:12])
		if last := be.Uint64(data[0:8]); last != ^uint64(0) {
			blocks = last + 1
		}
	case scsi.OpInquiry:
		if len(cmd.CDB) < 3 || cmd.CDB[1]&0x01 != 0 || len(data) < 1 || data[0]>>5 != 0 {
			return
		}
		g := lu.Geometry()
		if t := scsi.DeviceType(data[0] & 0x1f); t != g.Type {
			g.Type = t
			lu.geom.Store(&g)
		}
		return
	default:
		return
	}
	if bs == 0 {
		return
	}
	g := lu.Geometry()
	if g.BlockSize == bs && (blocks == 0 || g.Blocks == blocks) {
		return
	}
	g.BlockSize = bs
	if blocks != 0 {
		g.Blocks = blocks
	}
	lu.geom.Store(&g)
}

// Admit implements iscsi.Admitter: before the engine allocates anything
// for a command, its buffers are bounded by what its CDB moves on the
// logical unit the LUN maps for this nexus, and commands beyond the
// logical unit's transfer limit or capacity are answered at once (see
// iscsi.AdmitCDB). Commands the gateway answers itself (REPORT LUNS, a
// LUN outside the view) get buffers as large as those answers can be.
func (t *Target) Admit(in *iscsi.Nexus, l iscsi.LUN, cdb []byte, _, _ bool) iscsi.Admission {
	if len(cdb) > 0 && scsi.Opcode(cdb[0]) == scsi.OpReportLUNs {
		return smallAnswer(cdb, reportLUNsMax)
	}
	if v, ok := t.nexuses.Load(in); ok {
		if m, _, found := v.(*nexus).view.Load().lookup(l); found {
			return m.LU.admit(cdb)
		}
	}
	return smallAnswer(cdb, noLUNMax)
}

// smallAnswer bounds a command the gateway answers from at most limit
// bytes of its own: no write data is solicited.
func smallAnswer(cdb []byte, limit uint32) iscsi.Admission {
	x := scsi.DataTransfer(cdb, scsi.TypeUnknown, 0)
	if !x.Known {
		return iscsi.Admission{ReadLen: limit}
	}
	return iscsi.Admission{ReadLen: uint32(min(x.In, uint64(limit)))}
}
