package emul

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// rwForms builds the READ or WRITE CDB of each size for lba and n blocks.
func rwForms(write bool, flags byte, lba uint64, n uint32) map[string][]byte {
	op10, op12, op16 := byte(0x28), byte(0xa8), byte(0x88)
	if write {
		op10, op12, op16 = 0x2a, 0xaa, 0x8a
	}
	return map[string][]byte{
		"10": cdb10(op10, flags, uint32(lba), uint16(n)),
		"12": cdb12(op12, flags, uint32(lba), n),
		"16": cdb16(op16, flags, lba, n),
	}
}

func TestReadWriteAllForms(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		d := newDisk(t, Config{SizeBytes: 4 << 20, BlockSize: bs})
		nb := d.Blocks()
		for name, cdb := range rwForms(true, 0, 7, 3) {
			data := bytes.Repeat([]byte(name), 3*bs/2)
			res := exec(t, d, cdb, data)
			good(t, res)
			if res.Resid != 0 || res.Wanted != 3*bs {
				t.Fatalf("WRITE(%s): resid %d wanted %d", name, res.Resid, res.Wanted)
			}
			for rname, rcdb := range rwForms(false, 0, 7, 3) {
				buf := make([]byte, 3*bs)
				res := exec(t, d, rcdb, buf)
				good(t, res)
				if !bytes.Equal(buf, data) || res.Wanted != 3*bs {
					t.Fatalf("READ(%s) after WRITE(%s): wrong data", rname, name)
				}
			}
		}
		// READ(6)/WRITE(6): transfer length 0 means 256 blocks.
		data := bytes.Repeat([]byte{0x5a}, 256*bs)
		good(t, exec(t, d, cdbWrite6(1, 0), data))
		buf := make([]byte, 256*bs)
		res := exec(t, d, cdbRead6(1, 0), buf)
		good(t, res)
		if res.Wanted != 256*bs || !bytes.Equal(buf, data) {
			t.Fatal("READ(6) of 256 blocks")
		}
		// The last blocks, with every form.
		for i := uint32(1); i <= 8; i++ {
			for name, cdb := range rwForms(false, 0, nb-uint64(i), i) {
				good(t, exec(t, d, cdb, make([]byte, int(i)*bs)))
				_ = name
			}
			good(t, exec(t, d, cdbRead6(uint32(nb)-i, byte(i)), make([]byte, int(i)*bs)))
		}
	}
}

func TestReadWriteBeyondEOL(t *testing.T) {
	d := memDisk(t)
	nb := d.Blocks()
	bs := d.BlockSize()
	buf := make([]byte, 256*bs)
	for _, write := range []bool{false, true} {
		for i := uint64(1); i <= 256; i++ {
			for _, lba := range []uint64{nb + 1 - i, 0x80000000, 0xffffffff} {
				for name, cdb := range rwForms(write, 0, lba, uint32(i)) {
					res := exec(t, d, cdb, buf[:i*uint64(bs)])
					if res.Status == 0 {
						t.Fatalf("write=%v %s lba %d n %d succeeded", write, name, lba, i)
					}
					lbaOOB(t, res)
					if res.Resid != int(i)*bs {
						t.Fatalf("resid %d after a failed command", res.Resid)
					}
				}
			}
			if i >= 2 {
				for _, cdb := range rwForms(write, 0, nb-1, uint32(i)) {
					lbaOOB(t, exec(t, d, cdb, buf[:i*uint64(bs)]))
				}
			}
		}
		// 16-byte forms with huge LBAs (libiscsi Read16.BeyondEol).
		for _, lba := range []uint64{1 << 63, 1 << (64 - 9), 1 << (63 - 9), ^uint64(0)} {
			op := byte(0x88)
			if write {
				op = 0x8a
			}
			lbaOOB(t, exec(t, d, cdb16(op, 0, lba, 2), buf[:2*bs]))
		}
	}
	// READ(6) beyond the end and at the 21-bit limit.
	for i := 1; i <= 255; i++ {
		lbaOOB(t, exec(t, d, cdbRead6(uint32(nb)+1-uint32(i), byte(i)), buf[:i*bs]))
		lbaOOB(t, exec(t, d, cdbRead6(0x1fffff, byte(i)), buf[:i*bs]))
	}
}

func TestZeroBlocks(t *testing.T) {
	d := memDisk(t)
	nb := d.Blocks()
	for _, write := range []bool{false, true} {
		for _, cdb := range rwForms(write, 0, 0, 0) {
			res := exec(t, d, cdb, nil)
			good(t, res)
			if res.Wanted != 0 {
				t.Fatalf("wanted %d for zero blocks", res.Wanted)
			}
		}
		for _, cdb := range rwForms(write, 0, nb, 0) {
			good(t, exec(t, d, cdb, nil)) // LBA == capacity, no blocks: in range
		}
		for _, lba := range []uint64{nb + 1, 0x80000000, 0xffffffff} {
			for _, cdb := range rwForms(write, 0, lba, 0) {
				lbaOOB(t, exec(t, d, cdb, nil))
			}
		}
	}
}

func TestProtectAndFlags(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	for p := byte(1); p < 8; p++ {
		for _, write := range []bool{false, true} {
			for _, cdb := range rwForms(write, p<<5, 0, 1) {
				invalidField(t, exec(t, d, cdb, make([]byte, bs)), 1, 7)
			}
		}
		for _, op := range []byte{0x2f, 0x2e} {
			invalidField(t, exec(t, d, cdb10(op, p<<5|0x02, 0, 1), make([]byte, bs)), 1, 7)
		}
	}
	// DPO, FUA, FUA_NV and RARC are accepted (libiscsi Read10.DpoFua,
	// Write10.Flags).
	for _, f := range []byte{0x10, 0x08, 0x18, 0x02} {
		for _, write := range []bool{false, true} {
			for _, cdb := range rwForms(write, f, 0, 1) {
				good(t, exec(t, d, cdb, make([]byte, bs)))
			}
		}
	}
	good(t, exec(t, d, cdb10(0x28, 0x04, 0, 1), make([]byte, bs))) // RARC
	// The obsolete bit 0 and the reserved bit 2 of WRITE are refused.
	invalidField(t, exec(t, d, cdb10(0x2a, 0x01, 0, 1), make([]byte, bs)), 1, 0)
	invalidField(t, exec(t, d, cdb10(0x2a, 0x04, 0, 1), make([]byte, bs)), 1, 2)
	// Group numbers are accepted.
	c := cdb10(0x28, 0, 0, 1)
	c[6] = 0x1f
	good(t, exec(t, d, c, make([]byte, bs)))
	c[6] = 0x20
	invalidField(t, exec(t, d, c, make([]byte, bs)), 6, 5)
}

func TestMaxTransferLength(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 16 << 20, MaxTransferBytes: 64 << 10})
	if l := d.Limits(); l.MaxTransferBytes != 64<<10 || l.QueueDepth != DefaultQueueDepth {
		t.Fatalf("limits %+v", l)
	}
	good(t, exec(t, d, cdb10(0x28, 0, 0, 128), make([]byte, 64<<10)))
	invalidField(t, exec(t, d, cdb10(0x28, 0, 0, 129), make([]byte, 65<<10)), 7, -1)
	invalidField(t, exec(t, d, cdb16(0x8a, 0, 0, 129), make([]byte, 65<<10)), 10, -1)
	invalidField(t, exec(t, d, cdb12(0xa8, 0, 0, 129), make([]byte, 65<<10)), 6, -1)
	invalidField(t, exec(t, d, cdb10(0x2f, 0, 0, 129), nil), 7, -1)
}

// TestReadResiduals mirrors libiscsi iSCSIResiduals.Read10Residuals at
// the device level: the buffer is the initiator's expected length.
func TestReadResiduals(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	writeBlocks(t, d, 0, 2, 'r')
	tests := []struct {
		blocks uint16
		buflen int
		resid  int
	}{
		{1, 0, 0},
		{1, 10000, 10000 - bs},
		{1, 200, 0},
		{2, bs, 0},
	}
	for _, tc := range tests {
		buf := make([]byte, tc.buflen)
		res := exec(t, d, cdb10(0x28, 0, 0, tc.blocks), buf)
		good(t, res)
		if res.Resid != tc.resid || res.Wanted != int(tc.blocks)*bs {
			t.Errorf("%d blocks into %d bytes: resid %d wanted %d", tc.blocks, tc.buflen, res.Resid, res.Wanted)
		}
		if n := res.Transferred(len(buf)); !bytes.Equal(buf[:n], bytes.Repeat([]byte{'r'}, n)) {
			t.Errorf("%d blocks into %d bytes: wrong data", tc.blocks, tc.buflen)
		}
	}
}

// TestWriteResiduals mirrors libiscsi Write10Residuals: only whole blocks
// of the buffer are written, the rest of the range is untouched.
func TestWriteResiduals(t *testing.T) {
	for _, op := range []byte{0x2a, 0x2e} {
		d := memDisk(t)
		bs := d.BlockSize()
		flags := byte(0)
		if op == 0x2e {
			flags = 0x02 // BYTCHK
		}
		tests := []struct {
			blocks uint16
			buflen int
			resid  int
		}{
			{1, 0, 0},
			{1, 10000, 10000 - bs},
			{1, 200, 200},
			{2, bs, 0},
		}
		for _, tc := range tests {
			res := exec(t, d, cdb10(op, flags, 0, tc.blocks), bytes.Repeat([]byte{0xa6}, tc.buflen))
			good(t, res)
			if res.Resid != tc.resid || res.Wanted != int(tc.blocks)*bs {
				t.Errorf("op %02x %d blocks from %d bytes: resid %d wanted %d", op, tc.blocks, tc.buflen, res.Resid, res.Wanted)
			}
		}
		// One block from two blocks' worth: the second block is not written.
		writeBlocks(t, d, 0, 2, 'a')
		good(t, exec(t, d, cdb10(op, flags, 0, 1), bytes.Repeat([]byte{'b'}, 2*bs)))
		got := readBlocks(t, d, 0, 2)
		if !bytes.Equal(got[:bs], bytes.Repeat([]byte{'b'}, bs)) || !bytes.Equal(got[bs:], bytes.Repeat([]byte{'a'}, bs)) {
			t.Fatalf("op %02x: 1 block from 2 blocks of data", op)
		}
		// Two blocks from one block's worth: the second block is not written.
		writeBlocks(t, d, 0, 2, 'a')
		res := exec(t, d, cdb10(op, flags, 0, 2), bytes.Repeat([]byte{'b'}, bs))
		good(t, res)
		if res.Resid != 0 || res.Wanted != 2*bs {
			t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
		}
		got = readBlocks(t, d, 0, 2)
		if !bytes.Equal(got[:bs], bytes.Repeat([]byte{'b'}, bs)) || !bytes.Equal(got[bs:], bytes.Repeat([]byte{'a'}, bs)) {
			t.Fatalf("op %02x: 2 blocks from 1 block of data", op)
		}
	}
}

func TestVerify(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	nb := d.Blocks()
	for i := 0; i < 16; i++ {
		writeBlocks(t, d, uint64(i), 1, byte(i))
	}
	data := readBlocks(t, d, 0, 16)
	forms := func(flags byte, lba uint64, n uint32) [][]byte {
		return [][]byte{cdb10(0x2f, flags, uint32(lba), uint16(n)), cdb12(0xaf, flags, uint32(lba), n), cdb16(0x8f, flags, lba, n)}
	}
	for _, cdb := range forms(0x02, 0, 16) {
		res := exec(t, d, cdb, data)
		good(t, res)
		if res.Wanted != 16*bs || res.Resid != 0 {
			t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
		}
	}
	// A flipped byte: MISCOMPARE with its offset in INFORMATION.
	bad := bytes.Clone(data)
	bad[3*bs+17] ^= 'X'
	for _, cdb := range forms(0x02, 0, 16) {
		s := checkSense(t, exec(t, d, cdb, bad), scsi.SenseMiscompare, scsi.ASCMiscompareDuringVerify)
		if !s.InfoValid || s.Info != uint64(3*bs+17) {
			t.Fatalf("miscompare info %v %d", s.InfoValid, s.Info)
		}
	}
	// BYTCHK=0: no comparison, no data.
	for _, cdb := range forms(0x00, 0, 16) {
		res := exec(t, d, cdb, nil)
		good(t, res)
		if res.Wanted != 0 {
			t.Fatalf("BYTCHK=0 wanted %d", res.Wanted)
		}
	}
	// DPO accepted.
	for _, cdb := range forms(0x12, 0, 1) {
		good(t, exec(t, d, cdb, data[:bs]))
	}
	// BYTCHK=11b: one block compared against every block of the range.
	writeBlocks(t, d, 100, 4, 0x77)
	good(t, exec(t, d, cdb16(0x8f, 0x06, 100, 4), bytes.Repeat([]byte{0x77}, bs)))
	s := checkSense(t, exec(t, d, cdb16(0x8f, 0x06, 99, 4), bytes.Repeat([]byte{0x77}, bs)), scsi.SenseMiscompare, scsi.ASCMiscompareDuringVerify)
	if s.Info != 0 {
		t.Fatalf("info %d", s.Info)
	}
	// BYTCHK=10b is reserved.
	invalidField(t, exec(t, d, cdb10(0x2f, 0x04, 0, 1), data[:bs]), 1, 2)
	// Ranges.
	for _, cdb := range forms(0x02, nb-1, 2) {
		lbaOOB(t, exec(t, d, cdb, make([]byte, 2*bs)))
	}
	for _, cdb := range forms(0x02, nb+1, 0) {
		lbaOOB(t, exec(t, d, cdb, nil))
	}
	lbaOOB(t, exec(t, d, cdb16(0x8f, 0x02, 1<<63, 0), nil))
}

func TestWriteAndVerify(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	for _, cdb := range [][]byte{cdb10(0x2e, 0x02, 3, 2), cdb12(0xae, 0x02, 3, 2), cdb16(0x8e, 0x12, 3, 2), cdb10(0x2e, 0, 3, 2)} {
		data := bytes.Repeat([]byte{cdb[0]}, 2*bs)
		good(t, exec(t, d, cdb, data))
		if !bytes.Equal(readBlocks(t, d, 3, 2), data) {
			t.Fatalf("WRITE AND VERIFY %02x did not write", cdb[0])
		}
	}
	invalidField(t, exec(t, d, cdb10(0x2e, 0x06, 0, 1), make([]byte, bs)), 1, 2)
	lbaOOB(t, exec(t, d, cdb16(0x8e, 0x02, d.Blocks(), 1), make([]byte, bs)))
}

func TestPreFetchSyncCache(t *testing.T) {
	d := memDisk(t)
	nb := d.Blocks()
	for _, op := range []byte{0x34, 0x35} {
		good(t, exec(t, d, cdb10(op, 0, 0, 0), nil))
		good(t, exec(t, d, cdb10(op, 0x02, uint32(nb)-256, 256), nil))
		lbaOOB(t, exec(t, d, cdb10(op, 0, uint32(nb)-1, 2), nil))
		lbaOOB(t, exec(t, d, cdb10(op, 0, uint32(nb)+1, 0), nil))
		c := cdb10(op, 0x02, 0, 1)
		c[6] = 3 // group
		good(t, exec(t, d, c, nil))
	}
	for _, op := range []byte{0x90, 0x91} {
		good(t, exec(t, d, cdb16(op, 0, 0, 0), nil))
		lbaOOB(t, exec(t, d, cdb16(op, 0, ^uint64(0), 1), nil))
		lbaOOB(t, exec(t, d, cdb16(op, 0, 1<<63, 0), nil))
	}
}

func cdbCAW(flags byte, lba uint64, n byte) []byte {
	c := cdb16(0x89, flags, lba, 0)
	c[13] = n
	return c
}

// TestCompareAndWrite mirrors libiscsi CompareAndWrite.Simple, Miscompare,
// Unwritten and DpoFua.
func TestCompareAndWrite(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	nb := d.Blocks()
	for _, lba := range []uint64{0, nb - 255} {
		for i := 1; i <= 255; i += 17 {
			writeBlocks(t, d, lba, i, 'A')
			data := append(bytes.Repeat([]byte{'A'}, i*bs), bytes.Repeat([]byte{'B'}, i*bs)...)
			// A one-byte miscompare in the last block: nothing written.
			data[i*bs-27] = 'C'
			s := checkSense(t, exec(t, d, cdbCAW(0, lba, byte(i)), data), scsi.SenseMiscompare, scsi.ASCMiscompareDuringVerify)
			if !s.InfoValid || s.Info != uint64(i*bs-27) {
				t.Fatalf("miscompare info %d", s.Info)
			}
			if got := readBlocks(t, d, lba, i); !bytes.Equal(got, bytes.Repeat([]byte{'A'}, i*bs)) {
				t.Fatal("written despite a miscompare")
			}
			data[i*bs-27] = 'A'
			res := exec(t, d, cdbCAW(0, lba, byte(i)), data)
			good(t, res)
			if res.Wanted != 2*i*bs || res.Resid != 0 {
				t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
			}
			if got := readBlocks(t, d, lba, i); !bytes.Equal(got, bytes.Repeat([]byte{'B'}, i*bs)) {
				t.Fatal("not written")
			}
		}
	}
	// DPO and FUA are accepted; WRPROTECT is not.
	blk := make([]byte, 2*bs)
	writeBlocks(t, d, 0, 1, 0)
	good(t, exec(t, d, cdbCAW(0x18, 0, 1), blk))
	invalidField(t, exec(t, d, cdbCAW(0x20, 0, 1), blk), 1, 7)
	// The data-out buffer must be exactly twice NUMBER OF LOGICAL BLOCKS
	// (libiscsi's 256-block case arrives as 0 blocks with 512 of data).
	invalidField(t, exec(t, d, cdbCAW(0, 0, 0), make([]byte, 512*bs)), 13, -1)
	invalidField(t, exec(t, d, cdbCAW(0, 0, 1), make([]byte, 3*bs)), 13, -1)
	invalidField(t, exec(t, d, cdbCAW(0, 0, 3), make([]byte, 2*bs)), 13, -1)
	good(t, exec(t, d, cdbCAW(0, 0, 0), nil))
	lbaOOB(t, exec(t, d, cdbCAW(0, nb, 1), blk))
	ro := newDisk(t, Config{SizeBytes: 1 << 20, ReadOnly: true})
	checkSense(t, exec(t, ro, cdbCAW(0, 0, 1), blk), scsi.SenseDataProtect, scsi.ASCWriteProtected)
}

// TestCompareAndWriteAtomic runs compare-and-write increments of a
// counter block from several goroutines alongside plain writes of other
// blocks of the same chunk: no increment may be lost.
func TestCompareAndWriteAtomic(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cur := make([]byte, bs)
			data := make([]byte, 2*bs)
			for done := 0; done < rounds; {
				var res sgio.Result
				if err := d.Execute(context.Background(), &sgio.Request{CDB: cdb16(0x88, 0, 0, 1), Data: cur}, &res); err != nil || res.Status != 0 {
					t.Errorf("read: %v %+v", err, res)
					return
				}
				copy(data, cur)
				copy(data[bs:], cur)
				binary.BigEndian.PutUint64(data[bs:], binary.BigEndian.Uint64(cur)+1)
				if err := d.Execute(context.Background(), &sgio.Request{CDB: cdbCAW(0, 0, 1), Data: data}, &res); err != nil {
					t.Error(err)
					return
				}
				if res.Status == 0 {
					done++
				}
				// Unrelated traffic in the same chunk.
				if err := d.Execute(context.Background(), &sgio.Request{CDB: cdb16(0x8a, 0, uint64(1+w), 1), Data: cur}, &res); err != nil || res.Status != 0 {
					t.Errorf("write: %v %+v", err, res)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if got := binary.BigEndian.Uint64(readBlocks(t, d, 0, 1)); got != workers*rounds {
		t.Fatalf("counter %d, want %d", got, workers*rounds)
	}
}
