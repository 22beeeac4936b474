package emul

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func TestInquiryStandard(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 1 << 20, Vendor: "ACME", Product: "Disk", Revision: "1.0", Serial: "S1"})
	buf := make([]byte, 260)
	res := exec(t, d, scsi.InquiryCDB(false, 0, 260), buf)
	good(t, res)
	if got := len(buf) - res.Resid; got != 96 || res.Wanted != 96 {
		t.Fatalf("returned %d bytes, wanted %d; want 96", got, res.Wanted)
	}
	want := []byte{
		0x00, 0x00, 0x06, 0x12, 91, 0x00, 0x00, 0x02,
		'A', 'C', 'M', 'E', ' ', ' ', ' ', ' ',
		'D', 'i', 's', 'k', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
		'1', '.', '0', ' ',
	}
	if !bytes.Equal(buf[:36], want) {
		t.Fatalf("standard data\n got % x\nwant % x", buf[:36], want)
	}
	// Version descriptors at 58: SAM-5, SPC-4, SBC-3 (libiscsi looks for
	// 04C0h to decide the device claims SBC-3).
	if !bytes.Equal(buf[58:66], []byte{0x00, 0xa0, 0x04, 0x60, 0x04, 0xc0, 0, 0}) {
		t.Fatalf("version descriptors % x", buf[58:74])
	}
	if !allZero(buf[36:58]) || !allZero(buf[66:96]) {
		t.Fatal("reserved or vendor-specific bytes are not zero")
	}
}

func TestInquiryAllocationLength(t *testing.T) {
	d := memDisk(t)
	full := make([]byte, 96)
	good(t, exec(t, d, scsi.InquiryCDB(false, 0, 96), full))
	for alloc := 0; alloc < 300; alloc++ {
		buf := make([]byte, 300)
		res := exec(t, d, scsi.InquiryCDB(false, 0, uint16(alloc)), buf)
		good(t, res)
		n := len(buf) - res.Resid
		if n != min(alloc, 96) || !bytes.Equal(buf[:n], full[:n]) {
			t.Fatalf("alloc %d: %d bytes", alloc, n)
		}
	}
	// 16-bit allocation length: 511 and 512 return the same data.
	a, b := make([]byte, 512), make([]byte, 512)
	ra := exec(t, d, scsi.InquiryCDB(false, 0, 511), a)
	rb := exec(t, d, scsi.InquiryCDB(false, 0, 512), b)
	if ra.Resid != rb.Resid || !bytes.Equal(a, b) {
		t.Fatal("511 and 512 differ")
	}
	// A buffer smaller than the data: Wanted reports what the device had.
	small := make([]byte, 10)
	res := exec(t, d, scsi.InquiryCDB(false, 0, 255), small)
	if res.Resid != 0 || res.Wanted != 96 {
		t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
	}
}

func TestInquiryInvalid(t *testing.T) {
	d := memDisk(t)
	// EVPD=0 with a page code (libiscsi Inquiry.EVPD).
	invalidField(t, exec(t, d, scsi.InquiryCDB(false, 1, 256), make([]byte, 256)), 2, 7)
	// Unknown VPD page.
	invalidField(t, exec(t, d, scsi.InquiryCDB(true, 0x87, 256), make([]byte, 256)), 2, 7)
	// CMDDT (obsolete) is not accepted.
	c := scsi.InquiryCDB(false, 0, 36)
	c[1] = 0x02
	invalidField(t, exec(t, d, c, make([]byte, 36)), 1, 1)
}

func vpd(t *testing.T, d *Disk, page byte) []byte {
	t.Helper()
	buf := make([]byte, 255)
	res := exec(t, d, scsi.InquiryCDB(true, page, 255), buf)
	good(t, res)
	b := buf[:len(buf)-res.Resid]
	if len(b) < 4 || b[1] != page || b[0] != 0 {
		t.Fatalf("page %02x header % x", page, b)
	}
	if int(binary.BigEndian.Uint16(b[2:]))+4 != len(b) {
		t.Fatalf("page %02x: page length %d for %d bytes", page, binary.BigEndian.Uint16(b[2:]), len(b))
	}
	return b
}

func TestVPDPages(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 1 << 30, Serial: "SER123", Vendor: "V",
		NAA: []byte{0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}})
	sup := vpd(t, d, 0x00)
	if want := []byte{0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}; !bytes.Equal(sup, want) {
		t.Fatalf("supported pages % x, want % x", sup, want)
	}
	for _, p := range sup[4:] {
		vpd(t, d, p)
	}
	if got := vpd(t, d, 0x80); !bytes.Equal(got, []byte{0, 0x80, 0, 6, 'S', 'E', 'R', '1', '2', '3'}) {
		t.Fatalf("serial page % x", got)
	}
	id := vpd(t, d, 0x83)
	want := []byte{0, 0x83, 0, 38,
		0x01, 0x03, 0, 16, 0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		0x02, 0x01, 0, 14, 'V', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'S', 'E', 'R', '1', '2', '3'}
	if !bytes.Equal(id, want) {
		t.Fatalf("device identification\n got % x\nwant % x", id, want)
	}
	bl := vpd(t, d, 0xb0)
	wantBL := make([]byte, 64)
	copy(wantBL, []byte{0, 0xb0, 0, 0x3c, 0, 0xff, 0, 1})
	binary.BigEndian.PutUint32(wantBL[8:], DefaultMaxTransferBytes/512)
	binary.BigEndian.PutUint32(wantBL[20:], 0xffffffff)
	binary.BigEndian.PutUint32(wantBL[24:], MaxUnmapDescriptors)
	binary.BigEndian.PutUint32(wantBL[28:], chunkSize/512)
	binary.BigEndian.PutUint32(wantBL[32:], 0x80000000)
	binary.BigEndian.PutUint64(wantBL[36:], 0xffff)
	if !bytes.Equal(bl, wantBL) {
		t.Fatalf("block limits\n got % x\nwant % x", bl, wantBL)
	}
	bdc := vpd(t, d, 0xb1)
	if len(bdc) != 64 || bdc[4] != 0 || bdc[5] != 1 {
		t.Fatalf("block device characteristics % x", bdc)
	}
	if got := vpd(t, d, 0xb2); !bytes.Equal(got, []byte{0, 0xb2, 0, 4, 0, 0xe4, 0x02, 0}) {
		t.Fatalf("logical block provisioning % x", got)
	}
}

func TestDerivedIdentity(t *testing.T) {
	a := newDisk(t, Config{SizeBytes: 1 << 20, Serial: "ABC", CompanyID: 0x123456})
	b := newDisk(t, Config{SizeBytes: 1 << 20, Serial: "ABC", CompanyID: 0x123456})
	c := newDisk(t, Config{SizeBytes: 1 << 20, Serial: "ABD", CompanyID: 0x123456})
	if !bytes.Equal(a.NAA(), b.NAA()) || bytes.Equal(a.NAA(), c.NAA()) {
		t.Fatal("NAA not derived from the serial")
	}
	n := a.NAA()
	if len(n) != 16 || n[0] != 0x61 || n[1] != 0x23 || n[2] != 0x45 || n[3]>>4 != 6 {
		t.Fatalf("NAA % x: want NAA 6 with company id 123456", n)
	}
	m1 := newDisk(t, Config{SizeBytes: 1 << 20})
	m2 := newDisk(t, Config{SizeBytes: 1 << 20})
	if m1.Serial() == m2.Serial() || m1.Serial() == "" {
		t.Fatalf("memory disks share serial %q", m1.Serial())
	}
}

func TestReadCapacity(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 8 << 20, BlockSize: 4096})
	buf := make([]byte, 8)
	good(t, exec(t, d, cdb10(0x25, 0, 0, 0), buf))
	if !bytes.Equal(buf, []byte{0, 0, 0x07, 0xff, 0, 0, 0x10, 0}) {
		t.Fatalf("READ CAPACITY(10) % x", buf)
	}
	// LBA without PMI is invalid (SBC-3); with PMI it is accepted.
	invalidField(t, exec(t, d, cdb10(0x25, 0, 5, 0), buf), 2, 7)
	c := cdb10(0x25, 0, 5, 0)
	c[8] = 1
	good(t, exec(t, d, c, buf))

	for alloc := uint32(0); alloc <= 40; alloc++ {
		b := make([]byte, 64)
		res := exec(t, d, scsi.ReadCapacity16CDB(alloc), b)
		good(t, res)
		if n := len(b) - res.Resid; n != int(min(alloc, 32)) {
			t.Fatalf("alloc %d: %d bytes", alloc, n)
		}
	}
	b := make([]byte, 32)
	good(t, exec(t, d, scsi.ReadCapacity16CDB(32), b))
	want := make([]byte, 32)
	copy(want, []byte{0, 0, 0, 0, 0, 0, 0x07, 0xff, 0, 0, 0x10, 0, 0, 0, 0xc0, 0})
	if !bytes.Equal(b, want) {
		t.Fatalf("READ CAPACITY(16)\n got % x\nwant % x", b, want)
	}
}

func TestReadCapacity10Overflow(t *testing.T) {
	// 4 TiB of 512-byte blocks: more than 2^32 blocks, still free in memory.
	d := newDisk(t, Config{SizeBytes: 4 << 40})
	buf := make([]byte, 8)
	good(t, exec(t, d, cdb10(0x25, 0, 0, 0), buf))
	if binary.BigEndian.Uint32(buf) != 0xffffffff {
		t.Fatalf("READ CAPACITY(10) % x, want FFFFFFFFh", buf)
	}
	b := make([]byte, 32)
	good(t, exec(t, d, scsi.ReadCapacity16CDB(32), b))
	if binary.BigEndian.Uint64(b) != 4<<40/512-1 {
		t.Fatalf("READ CAPACITY(16) % x", b[:8])
	}
	if d.AllocatedBytes() != 0 {
		t.Fatalf("a fresh memory disk allocated %d bytes", d.AllocatedBytes())
	}
}

func TestReportLUNs(t *testing.T) {
	d := memDisk(t)
	c := make([]byte, 12)
	c[0] = 0xa0
	binary.BigEndian.PutUint32(c[6:], 64)
	buf := make([]byte, 64)
	res := exec(t, d, c, buf)
	good(t, res)
	if got := buf[:len(buf)-res.Resid]; !bytes.Equal(got, []byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("REPORT LUNS % x", got)
	}
	c[2] = 0x10
	invalidField(t, exec(t, d, c, buf), 2, 7)
}

func TestRequestSense(t *testing.T) {
	d := memDisk(t)
	buf := make([]byte, 252)
	res := exec(t, d, []byte{0x03, 0, 0, 0, 252, 0}, buf)
	good(t, res)
	if got := buf[:len(buf)-res.Resid]; !bytes.Equal(got, scsi.FixedSense(scsi.SenseNoSense, scsi.ASCNoAdditionalSense)) {
		t.Fatalf("fixed % x", got)
	}
	res = exec(t, d, []byte{0x03, 1, 0, 0, 252, 0}, buf)
	good(t, res)
	if got := buf[:len(buf)-res.Resid]; !bytes.Equal(got, []byte{0x72, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("descriptor % x", got)
	}
}
