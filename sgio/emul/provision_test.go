package emul

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func cdbWS10(flags byte, lba uint32, n uint16) []byte { return cdb10(0x41, flags, lba, n) }
func cdbWS16(flags byte, lba uint64, n uint32) []byte { return cdb16(0x93, flags, lba, n) }

func TestWriteSame(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	nb := d.Blocks()
	// libiscsi WriteSame10.Check: every block gets the pattern.
	for i := 1; i <= 64; i++ {
		block := bytes.Repeat([]byte{byte(i)}, bs)
		for _, cdb := range [][]byte{cdbWS10(0, 0, uint16(i)), cdbWS16(0, nb-uint64(i), uint32(i))} {
			res := exec(t, d, cdb, block)
			good(t, res)
			if res.Wanted != bs || res.Resid != 0 {
				t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
			}
			lba := binary.BigEndian.Uint32(cdb[2:6])
			if cdb[0] == 0x93 {
				lba = uint32(nb) - uint32(i)
			}
			if got := readBlocks(t, d, uint64(lba), i); !bytes.Equal(got, bytes.Repeat(block, i)) {
				t.Fatalf("WRITE SAME %02x of %d blocks", cdb[0], i)
			}
		}
	}
	// Zero blocks: through the last LBA.
	writeBlocks(t, d, nb-3, 3, 0xee)
	good(t, exec(t, d, cdbWS16(0, nb-3, 0), make([]byte, bs)))
	if !allZero(readBlocks(t, d, nb-3, 3)) {
		t.Fatal("WRITE SAME to the end left data")
	}
	// Beyond the end (libiscsi WriteSame10.BeyondEol and ZeroBlocks).
	for i := uint64(1); i <= 256; i++ {
		lbaOOB(t, exec(t, d, cdbWS10(0, uint32(nb-i+1), uint16(i)), make([]byte, bs)))
		lbaOOB(t, exec(t, d, cdbWS10(0, 0x80000000, uint16(i)), make([]byte, bs)))
		lbaOOB(t, exec(t, d, cdbWS16(0, 1<<63, uint32(i)), make([]byte, bs)))
	}
	for _, lba := range []uint64{nb + 1, 0x80000000, 0xffffffff} {
		lbaOOB(t, exec(t, d, cdbWS10(0, uint32(lba), 0), make([]byte, bs)))
	}
	lbaOOB(t, exec(t, d, cdbWS16(0, ^uint64(0), 0), make([]byte, bs)))
	// WRPROTECT and ANCHOR (no ANC_SUP) are invalid; ANCHOR without UNMAP too.
	for p := byte(1); p < 8; p++ {
		invalidField(t, exec(t, d, cdbWS10(p<<5, 0, 1), make([]byte, bs)), 1, 7)
	}
	invalidField(t, exec(t, d, cdbWS10(0x10, 0, 1), make([]byte, bs)), 1, 4)
	invalidField(t, exec(t, d, cdbWS16(0x18, 0, 1), make([]byte, bs)), 1, 4)
	// The data-out buffer must be exactly one block.
	for _, n := range []int{0, bs / 2, 2 * bs} {
		checkSense(t, exec(t, d, cdbWS10(0x08, 0, 1), make([]byte, n)), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInIU)
	}
	// NDOB (WRITE SAME(16) only): zeros without a data-out buffer.
	writeBlocks(t, d, 10, 2, 0x99)
	res := exec(t, d, cdbWS16(0x01, 10, 2), nil)
	good(t, res)
	if res.Wanted != 0 || !allZero(readBlocks(t, d, 10, 2)) {
		t.Fatal("NDOB")
	}
	invalidField(t, exec(t, d, cdbWS10(0x01, 0, 1), make([]byte, bs)), 1, 0)
}

func TestWriteSameMaxLength(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 64 << 20}) // 131072 blocks > MAXIMUM WRITE SAME LENGTH
	bs := d.BlockSize()
	nb := d.Blocks()
	// libiscsi WriteSame16.ZeroBlocks with MAX_WS_LEN 65535.
	invalidField(t, exec(t, d, cdbWS16(0, 0, 0), make([]byte, bs)), 10, -1)
	invalidField(t, exec(t, d, cdbWS10(0, uint32(nb-MaxWriteSameBlocks-1), 0), make([]byte, bs)), 7, -1)
	good(t, exec(t, d, cdbWS16(0, nb-MaxWriteSameBlocks, 0), make([]byte, bs)))
	good(t, exec(t, d, cdbWS16(0, nb-MaxWriteSameBlocks+1, 0), make([]byte, bs)))
	invalidField(t, exec(t, d, cdbWS16(0x08, 0, 65536), make([]byte, bs)), 10, -1)
	good(t, exec(t, d, cdbWS16(0x08, 0, 65535), make([]byte, bs)))
}

func TestWriteSameUnmapDeallocates(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	per := chunkSize / bs
	writeBlocks(t, d, 0, 4*per, 0xff)
	if got := d.AllocatedBytes(); got != 4*chunkSize {
		t.Fatalf("allocated %d", got)
	}
	// libiscsi WriteSame10.Unmap: zeros with UNMAP read back as zeros.
	for i := 1; i <= 256; i++ {
		writeBlocks(t, d, 0, i, 0xff)
		good(t, exec(t, d, cdbWS10(0x08, 0, uint16(i)), make([]byte, bs)))
		if !allZero(readBlocks(t, d, 0, i)) {
			t.Fatalf("%d blocks not zero after WRITE SAME UNMAP", i)
		}
	}
	good(t, exec(t, d, cdbWS16(0x08, 0, uint32(4*per)), make([]byte, bs)))
	if got := d.AllocatedBytes(); got != 0 {
		t.Fatalf("allocated %d after unmapping everything", got)
	}
	// UNMAP with non-zero data deallocates too.
	writeBlocks(t, d, 5, 2, 0xff)
	good(t, exec(t, d, cdbWS10(0x08, 5, 2), bytes.Repeat([]byte{1}, bs)))
	if !allZero(readBlocks(t, d, 5, 2)) {
		t.Fatal("WRITE SAME UNMAP with data did not deallocate")
	}
	// Until the end (libiscsi WriteSame10.UnmapUntilEnd, which sends the
	// 0xff blocks it wrote as the WRITE SAME data).
	nb := d.Blocks()
	for i := uint64(1); i <= 256; i++ {
		writeBlocks(t, d, nb-i, int(i), 0xff)
		good(t, exec(t, d, cdbWS10(0x08, uint32(nb-i), 0), bytes.Repeat([]byte{0xff}, bs)))
		if !allZero(readBlocks(t, d, nb-i, int(i))) {
			t.Fatalf("%d blocks at the end not zero", i)
		}
	}
}

func TestUnmap(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	nb := d.Blocks()
	// libiscsi Unmap.Simple.
	writeBlocks(t, d, 0, 256, 'a')
	for i := uint64(1); i <= 256; i++ {
		p := unmapList([2]uint64{0, i})
		res := exec(t, d, cdbUnmap(false, uint16(len(p))), p)
		good(t, res)
		if res.Wanted != len(p) || res.Resid != 0 {
			t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
		}
		if !allZero(readBlocks(t, d, 0, int(i))) {
			t.Fatalf("UNMAP of %d blocks", i)
		}
	}
	writeBlocks(t, d, 0, 257, 'a')
	var descs [][2]uint64
	for i := uint64(0); i < 256; i++ {
		descs = append(descs, [2]uint64{i, 1})
		p := unmapList(descs...)
		good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
		got := readBlocks(t, d, 0, 257)
		if !allZero(got[:(i+1)*uint64(bs)]) || got[(i+1)*uint64(bs)] != 'a' {
			t.Fatalf("UNMAP of %d single-block descriptors", i+1)
		}
	}
	// libiscsi Unmap.ZeroBlocks.
	for _, l := range []uint64{0, 255, nb} {
		p := unmapList([2]uint64{l, 0})
		good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
	}
	p := unmapList()
	good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
	good(t, exec(t, d, cdbUnmap(false, 0), nil))
	// Ranges outside the capacity: nothing is unmapped.
	writeBlocks(t, d, 0, 1, 'z')
	for _, desc := range [][2]uint64{{nb, 1}, {nb - 1, 2}, {^uint64(0), 1}, {1 << 63, 0}} {
		p := unmapList([2]uint64{0, 1}, desc)
		lbaOOB(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
	}
	if readBlocks(t, d, 0, 1)[0] != 'z' {
		t.Fatal("a failed UNMAP unmapped")
	}
	// Parameter list errors.
	checkSense(t, exec(t, d, cdbUnmap(false, 4), make([]byte, 4)), scsi.SenseIllegalRequest, scsi.ASCParameterListLengthError)
	many := make([][2]uint64, MaxUnmapDescriptors+1)
	p = unmapList(many...)
	res := exec(t, d, cdbUnmap(false, uint16(len(p))), p)
	s := checkSense(t, res, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInParamList)
	if inCDB, off, _, ok := s.FieldPointer(); !ok || inCDB || off != 2 {
		t.Fatalf("field pointer %v", s)
	}
	invalidField(t, exec(t, d, cdbUnmap(true, 24), unmapList([2]uint64{0, 1})), 1, 0)
	// A descriptor cut short by the parameter list length is ignored.
	p = unmapList([2]uint64{0, 1}, [2]uint64{nb + 5, 1})
	good(t, exec(t, d, cdbUnmap(false, uint16(len(p)-1)), p))
}

func TestGetLBAStatus(t *testing.T) {
	d := memDisk(t)
	bs := d.BlockSize()
	per := uint64(chunkSize / bs)
	nb := d.Blocks()
	status := func(lba uint64, alloc uint32) (descs [][3]uint64) {
		t.Helper()
		buf := make([]byte, alloc)
		res := exec(t, d, cdbGetLBAStatus(lba, alloc), buf)
		good(t, res)
		b := buf[:len(buf)-res.Resid]
		if len(b) < 8 {
			t.Fatalf("%d bytes", len(b))
		}
		pdl := int(binary.BigEndian.Uint32(b))
		if pdl < 20 || (pdl-4)%16 != 0 {
			t.Fatalf("parameter data length %d", pdl)
		}
		for p := 8; p+16 <= len(b); p += 16 {
			descs = append(descs, [3]uint64{binary.BigEndian.Uint64(b[p:]), uint64(binary.BigEndian.Uint32(b[p+8:])), uint64(b[p+12] & 0x0f)})
		}
		return descs
	}
	if got := status(0, 24); len(got) != 1 || got[0] != [3]uint64{0, nb, lbaDeallocated} {
		t.Fatalf("fresh disk: %v", got)
	}
	writeBlocks(t, d, per, 1, 1) // maps the second chunk
	got := status(0, 8+16*4)
	want := [][3]uint64{{0, per, lbaDeallocated}, {per, per, lbaMapped}, {2 * per, nb - 2*per, lbaDeallocated}}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := status(per+3, 24); got[0] != [3]uint64{per + 3, per - 3, lbaMapped} {
		t.Fatalf("mid-chunk: %v", got)
	}
	for i := uint64(1); i <= 256; i++ {
		status(nb-i, 24)
		status(i, 24)
	}
	// libiscsi GetLBAStatus.UnmapSingle: unmapped blocks and their mapped
	// neighbours.
	writeBlocks(t, d, 0, 257, 'A')
	for i := uint64(0); i < 256; i++ {
		p := unmapList([2]uint64{i, 1})
		good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
		status(i, 24)
		if got := status(i+1, 24); got[0][0] != i+1 || got[0][2] != lbaMapped {
			t.Fatalf("after unmapping %d: %v", i, got)
		}
	}
	for _, lba := range []uint64{nb, nb + 1, 1 << 63, ^uint64(0)} {
		lbaOOB(t, exec(t, d, cdbGetLBAStatus(lba, 24), make([]byte, 24)))
	}
	good(t, exec(t, d, cdbGetLBAStatus(0, 0), nil))
}

func TestFullyProvisioned(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 1 << 20, FullyProvisioned: true})
	bs := d.BlockSize()
	checkSense(t, exec(t, d, cdbUnmap(false, 24), unmapList([2]uint64{0, 1})), scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	invalidField(t, exec(t, d, cdbGetLBAStatus(0, 24), make([]byte, 24)), 1, 4)
	invalidField(t, exec(t, d, cdbWS10(0x08, 0, 1), make([]byte, bs)), 1, 3)
	invalidField(t, exec(t, d, cdbWS16(0x08, 0, 1), make([]byte, bs)), 1, 3)
	good(t, exec(t, d, cdbWS16(0x01, 0, 1), nil)) // NDOB still works
	b := make([]byte, 32)
	good(t, exec(t, d, scsi.ReadCapacity16CDB(32), b))
	if b[14] != 0 {
		t.Fatalf("LBPME/LBPRZ set: % x", b[14])
	}
	sup := vpd(t, d, 0)
	if bytes.IndexByte(sup[4:], 0xb2) >= 0 {
		t.Fatal("Logical Block Provisioning page listed")
	}
	bl := vpd(t, d, 0xb0)
	if !allZero(bl[20:36]) {
		t.Fatalf("unmap limits on a fully provisioned disk: % x", bl[20:36])
	}
}
