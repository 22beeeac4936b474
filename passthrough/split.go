package passthrough

import (
	"context"
	"encoding/binary"
	"slices"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// blockIO runs an SBC data command whose transfer does not fit the
// initiator's buffer (EDTL smaller than the CDB's transfer) or the path
// (more than the device's transfer limit): as the same command on the
// blocks the buffer holds, split into commands of at most the path's
// size, executed one after the other and completed as one. The first
// command that does not end GOOD ends it, with its status and sense (a
// miscompare's INFORMATION, an offset into the data, made relative to
// the whole command; LBAs are absolute already) and the data moved
// before it; RECOVERED ERROR does not stop it and is reported at the end.
// Commands that must be atomic (COMPARE AND WRITE, ORWRITE, WRITE
// ATOMIC) and those with one block of data (WRITE SAME, VERIFY with
// BYTCHK 11b) are never split.
func (lu *LU) blockIO(ctx context.Context, cmd *iscsi.Command, p *plan, buf []byte, in bool) iscsi.Response {
	total := p.x.Out
	if in {
		total = p.x.In
	}
	r, err := scsi.DecodeRW(p.cdb)
	g := lu.Geometry()
	bs := uint64(g.BlockSize)
	if err != nil || bs == 0 || !splittable(&r, lu.pol.dt) {
		if total > uint64(len(buf)) && !in {
			return lu.shortData(int(total))
		}
		return lu.tooLarge(p)
	}
	if total > MaxSplitTransfer {
		return lu.tooLarge(p)
	}
	n := uint64(len(buf)) / bs
	if in {
		n = (uint64(len(buf)) + bs - 1) / bs
	}
	n = min(n, uint64(r.Blocks))
	maxBlocks := uint64(MaxSplitTransfer) / bs
	if lu.maxXfer > 0 {
		maxBlocks = uint64(lu.maxXfer) / bs
	}
	if r.CDBLen <= 10 {
		maxBlocks = min(maxBlocks, 0xffff)
	}
	maxBlocks = max(maxBlocks, 1)
	cp := *p
	var recovered []byte
	moved := 0
	for off := uint64(0); off < n || off == 0; {
		c := min(maxBlocks, n-off)
		cp.cdb = chunkCDB(p.cdb, &r, r.LBA+off, uint32(c))
		lo, hi := int(off*bs), int((off+c)*bs)
		var resp iscsi.Response
		got := 0
		switch {
		case !in:
			resp = lu.single(ctx, &cp, sgio.DirToDevice, buf[lo:hi], nil, hi-lo, false)
			got = hi - lo
		case hi <= len(buf):
			resp = lu.single(ctx, &cp, sgio.DirFromDevice, buf[lo:hi], nil, 0, false)
			got = resp.ReadLen
		default:
			// The last block only partly fits: it is read whole into a
			// buffer of its own, and what fits goes out.
			bounce := make([]byte, hi-lo)
			resp = lu.single(ctx, &cp, sgio.DirFromDevice, bounce, nil, 0, false)
			got = copy(buf[lo:], bounce[:resp.ReadLen])
		}
		if resp.Status == scsi.CheckCondition && recoveredError(resp.Sense) {
			if recovered == nil {
				recovered = resp.Sense
			}
			resp.Status, resp.Sense = scsi.Good, nil
		}
		if resp.Status != scsi.Good {
			resp.Sense = offsetMiscompare(resp.Sense, uint64(lo))
			resp.Wanted = int(total)
			resp.ReadLen = 0
			if in {
				resp.ReadLen = moved + got
			}
			return resp
		}
		moved += got
		if in && got < hi-lo {
			break // the device sent less than asked: an underflow
		}
		off += c
		if c == 0 {
			break
		}
		if ctx.Err() != nil {
			return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
		}
	}
	resp := iscsi.Response{Wanted: int(total)}
	if in {
		resp.ReadLen = moved
	}
	if recovered != nil {
		resp.Status, resp.Sense = scsi.CheckCondition, recovered
	}
	return resp
}

// splittable reports whether a block command may be split into several
// and its transfer cut to the initiator's buffer: READ (also on CD/DVD),
// and on disks WRITE, WRITE AND VERIFY and VERIFY with one data block per
// block verified (BYTCHK 01b).
func splittable(r *scsi.RW, dt scsi.DeviceType) bool {
	switch r.Kind {
	case scsi.KindRead:
		return true
	case scsi.KindWrite, scsi.KindWriteAndVerify:
		return blockLimited(dt)
	case scsi.KindVerify:
		return blockLimited(dt) && r.BytChk == 1
	}
	return false
}

// chunkCDB returns the CDB of orig for n blocks from lba: the same
// command with its LBA and TRANSFER LENGTH fields replaced; a 6-byte
// READ or WRITE becomes its 10-byte form (whose 0 means no blocks, not
// 256).
func chunkCDB(orig []byte, r *scsi.RW, lba uint64, n uint32) []byte {
	be := binary.BigEndian
	if r.CDBLen == 6 {
		c := make([]byte, 10)
		c[0] = byte(scsi.OpRead10)
		if r.Kind == scsi.KindWrite {
			c[0] = byte(scsi.OpWrite10)
		}
		be.PutUint32(c[2:6], uint32(lba))
		be.PutUint16(c[7:9], uint16(n))
		c[9] = orig[5]
		return c
	}
	c := slices.Clone(orig[:r.CDBLen])
	switch r.CDBLen {
	case 10:
		be.PutUint32(c[2:6], uint32(lba))
		be.PutUint16(c[7:9], uint16(n))
	case 12:
		be.PutUint32(c[2:6], uint32(lba))
		be.PutUint32(c[6:10], n)
	case 16:
		be.PutUint64(c[2:10], lba)
		be.PutUint32(c[10:14], n)
	case 32:
		be.PutUint64(c[12:20], lba)
		be.PutUint32(c[28:32], n)
	}
	return c
}

// recoveredError reports whether sense is RECOVERED ERROR: the command
// completed, with a hint.
func recoveredError(sense []byte) bool {
	s, err := scsi.ParseSense(sense)
	return err == nil && s.Key == scsi.SenseRecoveredError
}

// offsetMiscompare adds off to the INFORMATION field of a MISCOMPARE
// sense (the offset of the first miscompared byte in the command's
// data-out, SBC-4 5.30) of a part of a split command; other sense data is
// returned as is.
func offsetMiscompare(sense []byte, off uint64) []byte {
	s, err := scsi.ParseSense(sense)
	if err != nil || s.Key != scsi.SenseMiscompare || !s.InfoValid || off == 0 {
		return sense
	}
	s.Info += off
	return s.Bytes()
}

// splitsFor reports whether the gateway splits the block commands of
// device type dt that are larger than the path: the SBC types, and
// CD/DVD reads.
func splitsFor(dt scsi.DeviceType) bool { return blockLimited(dt) || dt == scsi.TypeCDROM }

// transferLimit is the most data cdb may move through the gateway in a
// direction, which bounds its buffers before the engine allocates them
// (admit.go): MaxSplitTransfer for the block commands the gateway splits
// for the path, the path's own limit (g.MaxTransfer) for the rest.
func transferLimit(cdb []byte, g *Geometry) uint32 {
	if !splitsFor(g.Type) || protected(cdb) {
		return g.MaxTransfer
	}
	if r, err := scsi.DecodeRW(cdb); err == nil && splittable(&r, g.Type) {
		return max(g.MaxTransfer, MaxSplitTransfer)
	}
	return g.MaxTransfer
}
