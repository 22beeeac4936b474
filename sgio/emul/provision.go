package emul

import (
	"encoding/binary"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// writeSame implements WRITE SAME (10) and (16) (SBC-3 5.42, 5.43): the
// single block of the data-out buffer (zeros with NDOB) is written to every
// block of the range. A NUMBER OF LOGICAL BLOCKS of zero means through the
// last LBA (WSNZ=0), within MAXIMUM WRITE SAME LENGTH. With UNMAP the range
// is deallocated instead, whatever the data (SBC-3 4.7.3.4 lets the device
// server unmap every LBA of the range; LBPRZ=1 then reads zeros), as LIO
// and tgt do and libiscsi's WriteSame10.UnmapUntilEnd expects.
func (d *Disk) writeSame(x *exchange) {
	r, err := scsi.DecodeRW(x.cdb)
	if err != nil {
		x.invalidField(0, -1)
		return
	}
	if r.Protect != 0 {
		x.invalidField(1, 7)
		return
	}
	if r.Anchor {
		// ANC_SUP=0 in the Logical Block Provisioning VPD page.
		x.invalidField(1, 4)
		return
	}
	if r.LBA > d.blocks {
		x.lbaOutOfRange()
		return
	}
	n := uint64(r.Blocks)
	if n == 0 {
		n = d.blocks - r.LBA
	}
	if n > MaxWriteSameBlocks {
		x.invalidField(transferLengthOffset(r.Op), -1)
		return
	}
	if !d.inRange(r.LBA, n) {
		x.lbaOutOfRange()
		return
	}
	if d.readOnly {
		x.writeProtected()
		return
	}
	var block []byte
	if !r.NDOB {
		x.res.Wanted = d.bs
		if len(x.out) != d.bs {
			// The data-out buffer must hold exactly one logical block.
			x.fail(scsi.NewSense(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInIU))
			return
		}
		block = x.out
		x.n = d.bs
	}
	if n == 0 {
		return
	}
	off, length := int64(r.LBA)<<d.shift, int64(n)<<d.shift
	if r.Unmap {
		if err := d.st.Deallocate(off, length); err != nil {
			x.ioError("unmap", r.LBA, n, err)
		}
		return
	}
	if block == nil {
		block = make([]byte, d.bs)
	}
	pat := make([]byte, min(length, 1<<20))
	for i := 0; i < len(pat); i += d.bs {
		copy(pat[i:], block)
	}
	for done := int64(0); done < length; {
		c := min(length-done, int64(len(pat)))
		if err := d.st.WriteAt(pat[:c], off+done); err != nil {
			x.ioError("write", r.LBA, n, err)
			return
		}
		done += c
	}
}

// unmap implements UNMAP (SBC-3 5.28). The parameter list is checked as a
// whole (descriptor count, then every range) before anything is released.
func (d *Disk) unmap(x *exchange) {
	if x.cdb[1]&0x01 != 0 {
		x.invalidField(1, 0) // ANCHOR, but ANC_SUP=0
		return
	}
	pll := int(binary.BigEndian.Uint16(x.cdb[7:9]))
	x.res.Wanted = pll
	if d.readOnly {
		x.writeProtected()
		return
	}
	if pll == 0 {
		return // no parameter list: nothing to do
	}
	p := x.out[:min(pll, len(x.out))]
	x.n = len(p)
	if len(p) < 8 {
		x.failKey(scsi.SenseIllegalRequest, scsi.ASCParameterListLengthError)
		return
	}
	// An incomplete last descriptor is ignored (SBC-3 5.28.2).
	count := min(int(binary.BigEndian.Uint16(p[2:4])), len(p)-8) / 16
	if count > MaxUnmapDescriptors {
		x.invalidParam(2, -1)
		return
	}
	for i := 0; i < count; i++ {
		desc := p[8+16*i:]
		lba := binary.BigEndian.Uint64(desc[0:8])
		n := uint64(binary.BigEndian.Uint32(desc[8:12]))
		if !d.inRange(lba, n) {
			x.lbaOutOfRange()
			return
		}
	}
	for i := 0; i < count; i++ {
		desc := p[8+16*i:]
		lba := binary.BigEndian.Uint64(desc[0:8])
		n := uint64(binary.BigEndian.Uint32(desc[8:12]))
		if n == 0 {
			continue
		}
		if err := d.st.Deallocate(int64(lba)<<d.shift, int64(n)<<d.shift); err != nil {
			x.ioError("unmap", lba, n, err)
			return
		}
	}
}

// Provisioning status of an LBA status descriptor (SBC-3 6.4.2).
const (
	lbaMapped      = 0
	lbaDeallocated = 1
)

// maxLBAStatusDescriptors bounds the LBA status descriptors of one GET LBA
// STATUS response (the allocation length bounds it too).
const maxLBAStatusDescriptors = 64

// getLBAStatus implements GET LBA STATUS (SBC-3 5.6): extents of mapped
// and deallocated blocks from the starting LBA, as many as the allocation
// length holds (at least one, at most maxLBAStatusDescriptors).
func (d *Disk) getLBAStatus(x *exchange) {
	lba := binary.BigEndian.Uint64(x.cdb[2:10])
	alloc := int(binary.BigEndian.Uint32(x.cdb[10:14]))
	if lba >= d.blocks {
		x.lbaOutOfRange()
		return
	}
	nd := min(max(1, (alloc-8)/16), maxLBAStatusDescriptors)
	b := make([]byte, 8, 8+16*nd)
	for pos := lba; len(b) < 8+16*nd && pos < d.blocks; {
		left := min(d.blocks-pos, 0xffffffff)
		mapped, run, err := d.st.Mapped(int64(pos)<<d.shift, int64(left)<<d.shift)
		if err != nil {
			x.ioError("read", pos, left, err)
			return
		}
		var blocks uint64
		if mapped {
			blocks = (uint64(run) + uint64(d.bs) - 1) >> d.shift // partly mapped is mapped
		} else {
			blocks = uint64(run) >> d.shift
			if blocks == 0 {
				mapped, blocks = true, 1
			}
		}
		blocks = min(max(blocks, 1), left)
		status := byte(lbaDeallocated)
		if mapped {
			status = lbaMapped
		}
		b = binary.BigEndian.AppendUint64(b, pos)
		b = binary.BigEndian.AppendUint32(b, uint32(blocks))
		b = append(b, status, 0, 0, 0)
		pos += blocks
	}
	binary.BigEndian.PutUint32(b[0:], uint32(len(b)-4))
	x.sendIn(b[:min(alloc, len(b))])
}
