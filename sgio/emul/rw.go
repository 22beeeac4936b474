package emul

import (
	"bytes"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// transferLengthOffset returns the byte of op's CDB that holds the
// TRANSFER LENGTH (or NUMBER OF LOGICAL BLOCKS) field.
func transferLengthOffset(op scsi.Opcode) int {
	switch op.CDBLength() {
	case 6:
		return 4
	case 10:
		return 7
	case 12:
		return 6
	}
	return 10
}

// rw implements the commands that address a range of blocks with one
// data transfer (SBC-3 5): READ and WRITE (6/10/12/16), WRITE AND VERIFY
// and VERIFY (10/12/16), PRE-FETCH and SYNCHRONIZE CACHE (10/16).
func (d *Disk) rw(x *exchange) {
	r, err := scsi.DecodeRW(x.cdb)
	if err != nil {
		// The command table only routes block commands here.
		x.invalidField(0, -1)
		return
	}
	if r.Protect != 0 {
		// No protection information (PROTECT=0 in the standard INQUIRY
		// data): RDPROTECT, WRPROTECT and VRPROTECT must be zero.
		x.invalidField(1, 7)
		return
	}
	if (r.Kind == scsi.KindVerify || r.Kind == scsi.KindWriteAndVerify) && r.BytChk == 2 {
		x.invalidField(1, 2) // BYTCHK 10b is reserved
		return
	}
	if r.Kind == scsi.KindWriteAndVerify && r.BytChk == 3 {
		x.invalidField(1, 2) // only VERIFY compares one block against many
		return
	}
	n := uint64(r.Blocks)
	if (r.Kind == scsi.KindPreFetch || r.Kind == scsi.KindSyncCache) && n == 0 && r.LBA <= d.blocks {
		n = d.blocks - r.LBA // zero blocks: through the last LBA
	}
	if !d.inRange(r.LBA, n) {
		x.lbaOutOfRange()
		return
	}
	switch r.Kind {
	case scsi.KindRead, scsi.KindWrite, scsi.KindWriteAndVerify:
		if r.Blocks > d.maxXfer {
			// SBC-3 4.2: beyond the Block Limits MAXIMUM TRANSFER LENGTH.
			x.invalidField(transferLengthOffset(r.Op), -1)
			return
		}
	case scsi.KindVerify:
		if r.Blocks > d.maxXfer {
			x.invalidField(transferLengthOffset(r.Op), -1)
			return
		}
	}
	off := int64(r.LBA) << d.shift
	switch r.Kind {
	case scsi.KindRead:
		want := int(n) << d.shift
		m := min(want, len(x.in))
		x.dataIn = true
		x.res.Wanted = want
		if err := d.st.ReadAt(x.in[:m], off); err != nil {
			x.ioError("read", r.LBA, n, err)
			return
		}
		x.n = m
	case scsi.KindWrite, scsi.KindWriteAndVerify:
		if d.readOnly {
			x.writeProtected()
			return
		}
		want := int(n) << d.shift
		x.res.Wanted = want
		// Only whole blocks that arrived are written.
		m := min(want, len(x.out)>>d.shift<<d.shift)
		if err := d.st.WriteAt(x.out[:m], off); err != nil {
			x.ioError("write", r.LBA, n, err)
			return
		}
		x.n = m
		if r.FUA && d.wce {
			if err := d.st.Sync(); err != nil {
				x.ioError("write", r.LBA, n, err)
				return
			}
		}
		if r.Kind == scsi.KindWriteAndVerify && r.BytChk == 1 {
			d.compare(x, r.LBA, x.out[:m])
		}
	case scsi.KindVerify:
		d.verify(x, r, n)
	case scsi.KindPreFetch:
		// No cache to fill: GOOD is the answer when the cache cannot hold
		// the blocks (SBC-3 5.11).
	case scsi.KindSyncCache:
		if d.wce && !d.readOnly {
			if err := d.st.Sync(); err != nil {
				x.ioError("sync", r.LBA, n, err)
			}
		}
	}
}

// verify implements VERIFY (SBC-3 5.33): BYTCHK 00b checks the blocks can
// be read, 01b compares them with the data-out buffer, 11b compares each
// with the single block in the data-out buffer.
func (d *Disk) verify(x *exchange, r scsi.RW, n uint64) {
	switch r.BytChk {
	case 0:
		if _, ok := d.st.(*memStore); ok {
			return // memory cannot fail to read
		}
		buf := make([]byte, min(int(n)<<d.shift, 1<<20))
		for lba, left := r.LBA, n; left > 0; {
			c := min(left, uint64(len(buf))>>d.shift)
			if err := d.st.ReadAt(buf[:c<<d.shift], int64(lba)<<d.shift); err != nil {
				x.ioError("read", lba, c, err)
				return
			}
			lba += c
			left -= c
		}
	case 1:
		want := int(n) << d.shift
		x.res.Wanted = want
		m := min(want, len(x.out)>>d.shift<<d.shift)
		x.n = m
		d.compare(x, r.LBA, x.out[:m])
	case 3:
		if n == 0 {
			return
		}
		x.res.Wanted = d.bs
		if len(x.out) < d.bs {
			x.fail(scsi.NewSense(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInIU))
			return
		}
		x.n = d.bs
		d.compareSame(x, r.LBA, n, x.out[:d.bs])
	}
}

// compare checks that the medium from lba holds data, failing with
// MISCOMPARE DURING VERIFY OPERATION and the offset of the first differing
// byte in the INFORMATION field (SBC-3 5.33.1).
func (d *Disk) compare(x *exchange, lba uint64, data []byte) {
	buf := make([]byte, min(len(data), 1<<20))
	for done := 0; done < len(data); {
		c := min(len(buf), len(data)-done)
		if err := d.st.ReadAt(buf[:c], int64(lba)<<d.shift+int64(done)); err != nil {
			x.ioError("read", lba+uint64(done>>d.shift), uint64(c>>d.shift), err)
			return
		}
		if i := firstDiff(buf[:c], data[done:done+c]); i >= 0 {
			x.miscompare(done + i)
			return
		}
		done += c
	}
}

// compareSame checks that n blocks from lba each equal block.
func (d *Disk) compareSame(x *exchange, lba, n uint64, block []byte) {
	buf := make([]byte, d.bs)
	for i := uint64(0); i < n; i++ {
		if err := d.st.ReadAt(buf, int64(lba+i)<<d.shift); err != nil {
			x.ioError("read", lba+i, 1, err)
			return
		}
		if j := firstDiff(buf, block); j >= 0 {
			x.miscompare(int(i)<<d.shift + j)
			return
		}
	}
}

// firstDiff returns the index of the first byte where a and b differ, or
// -1; len(a) == len(b).
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// miscompare ends the command with MISCOMPARE, MISCOMPARE DURING VERIFY
// OPERATION and the offset of the first differing byte.
func (x *exchange) miscompare(off int) {
	s := scsi.NewSense(scsi.SenseMiscompare, scsi.ASCMiscompareDuringVerify)
	s.InfoValid, s.Info = true, uint64(off)
	x.fail(s)
}

// compareAndWrite implements COMPARE AND WRITE (SBC-3 5.2): the data-out
// buffer holds the verify data then the write data, NUMBER OF LOGICAL
// BLOCKS each. The blocks are written only if they equal the verify data;
// otherwise MISCOMPARE with the offset of the first differing byte. The
// whole command runs with every other command excluded (see Execute).
func (d *Disk) compareAndWrite(x *exchange) {
	r, err := scsi.DecodeRW(x.cdb)
	if err != nil {
		x.invalidField(0, -1)
		return
	}
	if r.Protect != 0 {
		x.invalidField(1, 7)
		return
	}
	n := uint64(r.Blocks)
	want := 2 * int(n) << d.shift
	x.res.Wanted = want
	if len(x.out) != want || 2*n > uint64(d.maxXfer) {
		// The data-out buffer must hold exactly the verify and write data.
		x.invalidField(13, -1)
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
	if n == 0 {
		return
	}
	x.n = want
	half := want / 2
	cur := make([]byte, half)
	off := int64(r.LBA) << d.shift
	if err := d.st.ReadAt(cur, off); err != nil {
		x.ioError("read", r.LBA, n, err)
		return
	}
	if i := firstDiff(cur, x.out[:half]); i >= 0 {
		x.miscompare(i)
		return
	}
	if err := d.st.WriteAt(x.out[half:], off); err != nil {
		x.ioError("write", r.LBA, n, err)
		return
	}
	if r.FUA && d.wce {
		if err := d.st.Sync(); err != nil {
			x.ioError("write", r.LBA, n, err)
		}
	}
}
